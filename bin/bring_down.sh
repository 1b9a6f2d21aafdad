#!/usr/bin/env bash
# Stop and remove the local rig and the sample manifest (it holds rig passwords).
set -euo pipefail
# shellcheck source=bin/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$PROJECT_DIR"

banner "bring down"
if [ -x "$PYTHON" ]; then
    "$PYTHON" -m environment_creators.rig down
else
    python3 -m environment_creators.rig down
fi
rm -f "$PROJECT_DIR/manifests/localhost.csv"
echo "bring_down: done"
