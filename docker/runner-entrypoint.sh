#!/bin/sh
# Entry point of the dbupdater runner image (docker/Dockerfile.runner).
#
#   runner-entrypoint [COMMAND...]   prepare sshd (host key, authorized keys, password opt-in), print the
#                                    host key as a known_hosts line, then exec COMMAND (default: sshd -D -e)
#   runner-entrypoint known-hosts    print only the known_hosts line (docker exec RUNNER runner-entrypoint ...)
#
# Environment:
#   RUNNER_AUTHORIZED_KEYS_FILE  public keys allowed to log in as `runner` (default
#                                /run/secrets/runner_authorized_keys); required unless passwords are enabled
#   RUNNER_KNOWN_HOSTS_NAME      name(s) the controller connects to, comma-separated (default: hostname)
#   RUNNER_KNOWN_HOSTS_PORT      port the controller connects to (default 22; set it for a published port)
#   RUNNER_PASSWORD_FILE         enable password authentication with the first line of this file
set -eu

RUNNER_USER=runner
HOST_KEY_DIR=/etc/ssh/host_keys
HOST_KEY=$HOST_KEY_DIR/ssh_host_ed25519_key
AUTHORIZED_KEYS=/etc/ssh/authorized_keys/$RUNNER_USER
PASSWORD_CONF=/etc/ssh/sshd_config.d/05-runner-password.conf
authorized_keys_source=${RUNNER_AUTHORIZED_KEYS_FILE:-/run/secrets/runner_authorized_keys}
known_hosts_name=${RUNNER_KNOWN_HOSTS_NAME:-$(uname -n)}
known_hosts_port=${RUNNER_KNOWN_HOSTS_PORT:-22}

say() { printf 'runner: %s\n' "$*"; }
die() { printf 'runner: error: %s\n' "$*" >&2; exit 1; }

known_hosts_line() {
    [ -s "$HOST_KEY.pub" ] || die "no host key yet at $HOST_KEY.pub (the container has not started sshd)"
    if [ "$known_hosts_port" = 22 ]; then
        hosts=$known_hosts_name
    else
        hosts=$(printf '%s\n' "$known_hosts_name" | tr ',' '\n' | sed "s/.*/[&]:$known_hosts_port/" | paste -sd, -)
    fi
    printf '%s %s\n' "$hosts" "$(cut -d' ' -f1,2 "$HOST_KEY.pub")"
}

if [ "${1:-}" = known-hosts ]; then
    known_hosts_line
    exit 0
fi

# 1. Host key: made at the first start of this container (or of its host-key volume), never in the image.
install -d -m 0700 "$HOST_KEY_DIR"
if [ ! -s "$HOST_KEY" ] || [ ! -s "$HOST_KEY.pub" ]; then
    rm -f "$HOST_KEY" "$HOST_KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C "dbupdater-runner" -f "$HOST_KEY"
    say "generated a new host key"
fi
chmod 0600 "$HOST_KEY"

# 2. Password authentication: off unless RUNNER_PASSWORD_FILE names a file. The password goes to chpasswd on
#    standard input, never on a command line.
if [ -n "${RUNNER_PASSWORD_FILE:-}" ]; then
    [ -r "$RUNNER_PASSWORD_FILE" ] || die "RUNNER_PASSWORD_FILE $RUNNER_PASSWORD_FILE is not readable"
    password=$(head -n 1 "$RUNNER_PASSWORD_FILE")
    [ -n "$password" ] || die "RUNNER_PASSWORD_FILE $RUNNER_PASSWORD_FILE is empty"
    printf '%s:%s\n' "$RUNNER_USER" "$password" | chpasswd
    unset password
    printf 'PasswordAuthentication yes\n' > "$PASSWORD_CONF"
    say "password authentication enabled for $RUNNER_USER"
else
    usermod --password '*' "$RUNNER_USER"
    rm -f "$PASSWORD_CONF"
fi

# 3. Authorized keys: a root-owned 0644 copy, so sshd's StrictModes accepts it whoever owns the mounted file.
if [ -r "$authorized_keys_source" ]; then
    install -m 0644 -o root -g root "$authorized_keys_source" "$AUTHORIZED_KEYS"
    say "authorized keys for $RUNNER_USER: $(grep -c '^[^#]' "$AUTHORIZED_KEYS" || true) from $authorized_keys_source"
elif [ -n "${RUNNER_PASSWORD_FILE:-}" ]; then
    rm -f "$AUTHORIZED_KEYS"
else
    die "no public keys at $authorized_keys_source: mount an authorized_keys file there (or set RUNNER_AUTHORIZED_KEYS_FILE)"
fi

# 4. sshd's privilege separation directory, and a configuration check before starting.
install -d -m 0755 /run/sshd
/usr/sbin/sshd -t

# 5. The host key, for the controller's known_hosts. Compare the fingerprint with the one the controller
#    shows when it refuses an unknown key, or take the line with `docker exec` (a channel that is not SSH).
say "host key fingerprint: $(ssh-keygen -l -f "$HOST_KEY.pub")"
say "known_hosts line: $(known_hosts_line)"

if [ "$#" -eq 0 ]; then
    set -- /usr/sbin/sshd -D -e
fi
exec "$@"
