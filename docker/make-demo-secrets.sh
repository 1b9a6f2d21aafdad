#!/bin/sh
# Make the private files of the demo stack (docker/compose.yaml) under docker/secrets/, mode 0600, git-ignored:
#   mariadb_root_password, mariadb_app_password, postgres_app_password   random, 32 characters
#   runner_ssh_key, runner_ssh_key.pub                                   the controller's key for the runners
# and docker/.env with DBU_UID/DBU_GID: the ids the controller image runs as, so that it can read these files
# (yours; 10001 when run as root, and the files are then given to 10001).
# Existing files are kept; delete one to make it anew. Needs ssh-keygen (package openssh-client).
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets

random_password() {
    # 32 letters and digits from the kernel's CSPRNG; no shell or CSV metacharacters to quote anywhere.
    LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32
}

for name in mariadb_root_password mariadb_app_password postgres_app_password; do
    if [ ! -s "secrets/$name" ]; then
        random_password > "secrets/$name"
        echo "made secrets/$name"
    fi
done

if [ ! -s secrets/runner_ssh_key ]; then
    rm -f secrets/runner_ssh_key secrets/runner_ssh_key.pub
    ssh-keygen -q -t ed25519 -N '' -C dbupdater-demo-controller -f secrets/runner_ssh_key
    echo "made secrets/runner_ssh_key and secrets/runner_ssh_key.pub"
fi

# The controller runs as the owner of these files. As root, hand them to an unprivileged id instead of
# building a controller that runs as root (the database and runner containers read them as root anyway).
uid=$(id -u)
gid=$(id -g)
if [ "$uid" = 0 ]; then
    uid=10001
    gid=10001
    chown "$uid:$gid" secrets/mariadb_root_password secrets/mariadb_app_password secrets/postgres_app_password \
        secrets/runner_ssh_key secrets/runner_ssh_key.pub
fi
if [ ! -s .env ]; then
    printf 'DBU_UID=%s\nDBU_GID=%s\n' "$uid" "$gid" > .env
    echo "made .env (DBU_UID=$uid, DBU_GID=$gid)"
fi

echo "next: docker compose up -d --wait, then write secrets/known_hosts (see README.md)"
