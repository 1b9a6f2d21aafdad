#!/usr/bin/env bash
# Set the machine up, start the local rig, write the sample manifest and run it with the tool.
# Exits with the tool's exit code.
set -euo pipefail
# shellcheck source=bin/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$PROJECT_DIR"

banner "bring up"
"$PROJECT_DIR/bin/setup.sh"
"$PYTHON" -m environment_creators.rig up
"$PYTHON" -m environment_creators.localhost_manifest --out manifests/localhost.csv
known_hosts="$("$PYTHON" -c 'from environment_creators.rig import Rig; print(Rig().info().known_hosts)')"

set +e
"$PYTHON" remote_database_updater.py -f manifests/localhost.csv --known-hosts "$known_hosts"
status=$?
set -e
if [ "$status" -eq 0 ]; then
    echo "bring_up: the sample manifest ran; check it with bin/test.sh"
else
    echo "bring_up: remote_database_updater.py exited with $status" >&2
fi
exit "$status"
