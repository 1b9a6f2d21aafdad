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
