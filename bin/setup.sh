#!/usr/bin/env bash
# Idempotent machine setup for the local rig: Debian packages (as root) and the project's venv.
# Safe to run again: apt is skipped when everything is installed, pip when pyproject.toml is unchanged.
set -euo pipefail

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$PROJECT_DIR/.venv"
STAMP="$VENV/.dbu-setup-stamp"
PACKAGES=(mariadb-server mariadb-client openssh-server openssh-client postgresql iproute2 python3-venv procps
          chromium chromium-driver)  # chromium: the HTML report's browser test

say() { printf 'setup: %s\n' "$*"; }

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

# Is anything listening on a TCP port? Read from /proc so it works before iproute2/procps are installed.
port_listening() {
    local hex
    hex="$(printf ':%04X ' "$1")"
    { cat /proc/net/tcp; cat /proc/net/tcp6 2>/dev/null || true; } | awk -v p="$hex" '$4 == "0A" && index($2 " ", p) { f = 1 } END { exit !f }'
}

stop_service() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl stop "$1" || true
    elif command -v service >/dev/null 2>&1; then
        service "$1" stop || true
    fi
}

missing=()
for package in "${PACKAGES[@]}"; do
    installed "$package" || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        say "missing packages: ${missing[*]}"
        say "install them as root, then run this again:"
        say "  sudo apt-get install -y ${missing[*]}"
        exit 1
    fi
    # Default ports already in use before we install belong to the user; only stop what this install starts.
    mysql_before=no; port_listening 3306 && mysql_before=yes
    pg_before=no; port_listening 5432 && pg_before=yes
    # The rig runs its own private servers; the system ones must not start on the default ports.
    policy=/usr/sbin/policy-rc.d
    own_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# temporary, from dbupdater bin/setup.sh\nexit 101\n' > "$policy"
        chmod 0755 "$policy"
        own_policy=yes
    fi
    cleanup_policy() { if [ -n "$own_policy" ]; then rm -f "$policy"; fi; }
    trap cleanup_policy EXIT
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    cleanup_policy
    trap - EXIT
    if [ "$mysql_before" = no ] && port_listening 3306; then
        say "stopping the system mariadb service the install started (the rig runs its own)"
        stop_service mariadb
    fi
    if [ "$pg_before" = no ] && port_listening 5432; then
        say "stopping the system postgresql service the install started (the rig runs its own)"
        stop_service postgresql
    fi
else
    say "packages: all present"
fi

if [ ! -e "$VENV/pyvenv.cfg" ]; then
    say "creating $VENV"
    python3 -m venv "$VENV"
fi

wanted="$(sha256sum "$PROJECT_DIR/pyproject.toml" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
    say "venv: up to date"
else
    say "venv: installing the project and its dev dependencies (log: $VENV/pip-install.log)"
    if ! (cd "$PROJECT_DIR" && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -e '.[dev,all]') > "$VENV/pip-install.log" 2>&1; then
        tail -n 30 "$VENV/pip-install.log" >&2
        say "venv: pip install failed; full log in $VENV/pip-install.log" >&2
        exit 1
    fi
    printf '%s\n' "$wanted" > "$STAMP"
    say "venv: done"
fi
