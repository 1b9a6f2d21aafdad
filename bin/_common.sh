# shellcheck shell=bash
# Sourced by the bin/ scripts: project paths and the banner helper.
PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="$PROJECT_DIR/.venv/bin/python"

banner() {
    if [ -x "$PYTHON" ]; then
        (cd "$PROJECT_DIR" && "$PYTHON" -m environment_creators.banner "$@") || printf '==== %s ====\n' "$*"
    else
        printf '==== %s ====\n' "$*"
    fi
}

# The environment name the local rig is recorded under in Vault.
# shellcheck disable=SC2034  # used by the scripts that source this file
ENVIRONMENT="${DBU_ENVIRONMENT:-local}"

# Point the tool at the rig's OpenBao: address and token file (the token itself never enters argv).
vault_env() {
    local line
    while IFS= read -r line; do
        case "$line" in
            VAULT_ADDR=*) export VAULT_ADDR="${line#VAULT_ADDR=}" ;;
            VAULT_TOKEN_FILE=*) export VAULT_TOKEN_FILE="${line#VAULT_TOKEN_FILE=}" ;;
        esac
    done < <("$PYTHON" -m environment_creators.rig vault-env)
    [ -n "${VAULT_ADDR:-}" ]
}
