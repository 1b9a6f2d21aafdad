#!/usr/bin/env bash
# Set the machine up, start the local rig (databases, SSH runners, OpenBao), register the environment in
# Vault, wait until its databases answer, then run the sample manifest. Exits with the tool's exit code.
set -euo pipefail
# shellcheck source=bin/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$PROJECT_DIR"

banner "bring up"
"$PROJECT_DIR/bin/setup.sh"
"$PYTHON" -m environment_creators.rig up
# The manifest holds vault: references only; the secrets live in the rig's OpenBao.
"$PYTHON" -m environment_creators.localhost_manifest --out manifests/localhost.csv
vault_env
known_hosts="$("$PYTHON" -c 'from environment_creators.rig import Rig; print(Rig().info().known_hosts)')"
updater() { "$PYTHON" remote_database_updater.py "$@" --known-hosts "$known_hosts"; }

updater environment register -f manifests/localhost.csv --environment "$ENVIRONMENT"
updater wait-ready -f manifests/localhost.csv --environment "$ENVIRONMENT" --timeout 60
set +e
updater apply -f manifests/localhost.csv --environment "$ENVIRONMENT"
status=$?
set -e
updater environment show -f manifests/localhost.csv --environment "$ENVIRONMENT" || true
if [ "$status" -eq 0 ]; then
    echo "bring_up: the sample manifest ran; check it with bin/test.sh"
else
    echo "bring_up: remote_database_updater.py exited with $status" >&2
fi
exit "$status"
