#!/usr/bin/env bash
# Remove the environment's state from Vault, stop and remove the local rig and the sample manifest.
set -euo pipefail
# shellcheck source=bin/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$PROJECT_DIR"

banner "bring down"
if [ -x "$PYTHON" ]; then
    if [ -f manifests/localhost.csv ] && vault_env 2>/dev/null; then
        "$PYTHON" remote_database_updater.py environment remove -f manifests/localhost.csv \
            --environment "$ENVIRONMENT" || echo "bring_down: could not remove the environment state (continuing)" >&2
    fi
    "$PYTHON" -m environment_creators.rig down
else
    python3 -m environment_creators.rig down
fi
rm -f "$PROJECT_DIR/manifests/localhost.csv"
echo "bring_down: done"
