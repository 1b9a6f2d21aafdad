#!/usr/bin/env bash
# Check the rig's databases after bin/bring_up.sh ran the sample manifest.
set -euo pipefail
# shellcheck source=bin/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$PROJECT_DIR"

banner "test"
"$PYTHON" -m environment_creators.verify
