"""A private OpenBao server in dev mode: the rig's Vault API, seeded with the rig's own credentials.

Dev mode keeps everything in memory and starts unsealed, which is all a throw-away rig needs. The price is
that a restarted server is empty, so ``ensure`` reseeds whenever the seed does not read back.

The server starts with a throw-away bootstrap root token in ``BAO_DEV_ROOT_TOKEN_ID`` (its environment, never
its argv, so ``ps`` cannot show it), which creates the rig's root token (chosen by the rig, kept in rig.json)
and is then revoked: the value /proc shows for the server's life is useless;
``-dev-no-store-token`` keeps it out of ~/.vault-token; and the banner lines that print it and the unseal
key are rewritten by ``sed`` before anything reaches the log file.

What the seed holds (the same three secrets in a KV v2 mount and a KV v1 mount, so both can be tested):

    secret/dbupdater-rig/<name>/runner     user, password, private_key (the runner key file's text)
    secret/dbupdater-rig/<name>/mysql      user, password (the app user), admin_user, admin_password
    secret/dbupdater-rig/<name>/postgres   same keys as mysql
    kv1/dbupdater-rig/<name>/...           the same, KV version 1

Policy ``dbupdater-rig-read`` reads those and manages ``secret/ENVIRONMENTS/*``; the AppRole role
``dbupdater`` (auth mount ``approle/``) carries it. Its role_id is chosen by the rig and kept in rig.json,
so it survives a reseed; secret_ids are generated per use.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from . import prerequisites
from .errors import RigError
from .info import MASK, DbInfo, RigInfo
from .layout import Layout
from .system import (
    clean_env,
    find_pids,
    log,
    make_dir,
    pid_runs,
    port_free,
    read_pid,
    tail,
    terminate,
    wait_for,
    write_file,
)

KV2_MOUNT = "secret"  # dev mode mounts KV v2 here
KV1_MOUNT = "kv1"
APPROLE_MOUNT = "approle"
POLICY = "dbupdater-rig-read"
ROLE = "dbupdater"
ENVIRONMENTS = "ENVIRONMENTS"
SECRET_NAMES = ("runner", "mysql", "postgres")

# The server's stdout and stderr both go through sed so the dev banner's secrets never reach the log.
_FILTER = r"""log=$1; shift
exec >>"$log" 2>&1
"$@" 2>&1 | sed -u -e 's/^\(Root Token\|Unseal Key\):.*/\1: (hidden by the rig)/'
"""
# Variables that would reconfigure the server or the CLI behind our back.
_OWN_ENV_PREFIXES = ("BAO_", "VAULT_")


def prefix(rig_name: str) -> str:
    """Where one rig's secrets live inside each KV mount."""
    return f"dbupdater-rig/{rig_name}"


def policy_text(secret_prefix: str) -> str:
    """Read the rig's secrets (both KV versions); full use of ``secret/ENVIRONMENTS/*`` for environment tests."""
    return "\n".join([
        f'path "{KV2_MOUNT}/data/{secret_prefix}/*" {{ capabilities = ["read"] }}',
        f'path "{KV2_MOUNT}/metadata/{secret_prefix}/*" {{ capabilities = ["read", "list"] }}',
        f'path "{KV1_MOUNT}/{secret_prefix}/*" {{ capabilities = ["read"] }}',
        f'path "{KV2_MOUNT}/data/{ENVIRONMENTS}/*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}',
        f'path "{KV2_MOUNT}/metadata/{ENVIRONMENTS}/*" {{ capabilities = ["read", "list", "delete"] }}',
    ]) + "\n"


def seed_values(info: RigInfo) -> dict[str, dict[str, str]]:
    """Secret name -> key/value pairs, exactly as written to (and read back from) both KV mounts."""
    try:
        private_key = Path(info.runner_key_file).read_text()
    except OSError as exc:
        raise RigError(f"cannot read the runner key {info.runner_key_file} for OpenBao: {exc}") from exc

    def db(d: DbInfo) -> dict[str, str]:
        return {"user": d.app_user, "password": d.app_password, "admin_user": d.admin_user,
                "admin_password": d.admin_password}

    return {"runner": {"user": info.runner_user, "password": info.runner_password, "private_key": private_key},
            "mysql": db(info.mysql), "postgres": db(info.postgres)}


def client(addr: str, token: str | None = None, *, timeout: int = 10) -> Any:
    """An hvac client that ignores proxy settings from the environment (the server is on loopback)."""
    import hvac
    import requests

    session = requests.Session()
    session.trust_env = False
    return hvac.Client(url=addr, token=token, session=session, timeout=timeout)


def _needle(layout: Layout) -> str:
    return f"-config={layout.openbao_config}"


def stop(layout: Layout) -> None:
    """Stop this rig's server (pid file first, then anything still carrying our config path) and wait."""
    pid = read_pid(layout.openbao_pid)
    pids = [pid] if pid is not None and pid_runs(pid, _needle(layout)) else []
    pids += find_pids(re.escape(_needle(layout)) + "( |$)")
    if pids:
        log.info("OpenBao: stopping")
        terminate(pids, timeout=10)
    layout.openbao_pid.unlink(missing_ok=True)


class OpenBao:
    def __init__(self, layout: Layout, info: RigInfo) -> None:
        self.layout = layout
        self.info = info

    @property
    def listen(self) -> str:
        return self.info.vault_addr.removeprefix("http://")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def ports(self) -> list[int]:
        """The API port and the cluster port dev mode always opens one above it."""
        return [self.port, self.port + 1]

    # --- lifecycle ---------------------------------------------------------------------------------------

    def ensure(self, *, timeout: float = 30) -> None:
        """Running, answering and seeded; writes the 0600 token file for shell scripts."""
        if not self.info.vault_addr or not self.info.vault_token:
            raise RigError("rig.json has no OpenBao settings; run up again")
        make_dir(self.layout.openbao, mode=0o700)
        write_file(self.layout.openbao_token, self.info.vault_token, mode=0o600)
        self._ensure_running(timeout)
        if self.seeded():
            return
        log.info("OpenBao: seeding %s/%s and %s/%s", KV2_MOUNT, self.info.vault_prefix, KV1_MOUNT,
                 self.info.vault_prefix)
        self._seed()
        if not self.seeded():
            raise RigError(f"OpenBao on {self.info.vault_addr}: the seed does not read back")

    def is_running(self) -> bool:
        return pid_runs(read_pid(self.layout.openbao_pid), _needle(self.layout))

    def stop(self) -> None:
        stop(self.layout)

    def answers(self) -> bool:
        """True when ``/v1/sys/health`` says initialised, unsealed and active (HTTP 200)."""
        if not self.info.vault_addr:
            return False
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.info.vault_addr}/v1/sys/health", timeout=2) as response:
                return int(response.status) == 200
        except (OSError, ValueError):
            return False

    def healthy(self) -> bool:
        return self.is_running() and self.answers()

    def _ensure_running(self, timeout: float) -> None:
        if self.is_running():
            self._wait_until_answering(timeout)
            return
        stop(self.layout)  # a half-started server from an earlier attempt
        busy = [p for p in self.ports() if not port_free("127.0.0.1", p)]
        if busy:
            raise RigError(f"OpenBao port(s) {', '.join(f'127.0.0.1:{p}' for p in busy)} already in use; pick "
                           "another --base-port")
        bao = prerequisites.check_openbao()
        lay = self.layout
        write_file(lay.openbao_config, f"pid_file = {json.dumps(str(lay.openbao_pid))}\n",
                   mode=0o600)
        env = {k: v for k, v in clean_env().items() if not k.startswith(_OWN_ENV_PREFIXES)}
        # The server's environment is readable in /proc by root for its whole life: it gets a throw-away
        # bootstrap token, which mints the rig's real root token and is then revoked.
        bootstrap = secrets.token_urlsafe(24)
        env.update({"HOME": str(lay.openbao), "BAO_DEV_ROOT_TOKEN_ID": bootstrap})
        argv = ["setsid", "-f", "sh", "-c", _FILTER, "openbao-rig", str(lay.openbao_log), str(bao), "server",
                "-dev", f"-dev-listen-address={self.listen}", "-dev-no-store-token", _needle(lay)]
        with open(lay.openbao_log, "a", encoding="utf-8"):  # exists from the start: a tail always has a file
            lay.openbao_log.chmod(0o600)
        log.info("OpenBao: starting on %s", self.info.vault_addr)
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=env, cwd=lay.openbao, check=True)
        self._wait_until_answering(timeout)
        self._replace_bootstrap_token(bootstrap)

    def _replace_bootstrap_token(self, bootstrap: str) -> None:
        import hvac.exceptions
        import requests

        try:
            api = self.client(bootstrap)
            api.auth.token.create(id=self.info.vault_token, policies=["root"], no_parent=True,
                                  display_name="dbupdater-rig")
            api.auth.token.revoke_self()
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            detail = str(exc).replace(self.info.vault_token, MASK).replace(bootstrap, MASK)
            raise RigError(f"OpenBao on {self.info.vault_addr}: setting the rig's root token failed "
                           f"({type(exc).__name__}: {detail})") from None

    def _wait_until_answering(self, timeout: float) -> None:
        misses = 0

        def died() -> str | None:
            # /proc/PID/cmdline reads empty for an instant while a process execs (setsid -> sh -> bao), so
            # one miss under load is not a death: only several polls in a row without the server are.
            nonlocal misses
            misses = 0 if find_pids(re.escape(_needle(self.layout)) + "( |$)") else misses + 1
            return "the server exited" if misses >= 5 else None

        try:
            wait_for(lambda: self.is_running() and self.answers(), timeout=timeout,
                     what=f"OpenBao on {self.info.vault_addr}", failed=died)
        except RigError as exc:
            raise RigError(f"{exc}; log {self.layout.openbao_log}:\n{self.log_tail()}") from exc

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server log; the token is masked here too, in case anything ever printed it."""
        text = tail(self.layout.openbao_log, lines)
        return text.replace(self.info.vault_token, MASK) if self.info.vault_token else text

    # --- seed --------------------------------------------------------------------------------------------

    def client(self, token: str | None = None) -> Any:
        """An hvac client for this server, authenticated with the root token unless another is given."""
        return client(self.info.vault_addr, token if token is not None else self.info.vault_token)

    def seeded(self) -> bool:
        """True when every secret, the policy and the AppRole role_id read back as the rig wants them."""
        import hvac.exceptions
        import requests

        try:
            api = self.client()
            for name, values in seed_values(self.info).items():
                path = f"{self.info.vault_prefix}/{name}"
                v2 = api.secrets.kv.v2.read_secret_version(path=path, mount_point=KV2_MOUNT,
                                                           raise_on_deleted_version=True)
                v1 = api.secrets.kv.v1.read_secret(path=path, mount_point=KV1_MOUNT)
                if v2["data"]["data"] != values or v1["data"] != values:
                    return False
            if api.sys.read_policy(POLICY)["data"]["rules"] != policy_text(self.info.vault_prefix):
                return False
            role_id = api.auth.approle.read_role_id(ROLE, mount_point=APPROLE_MOUNT)["data"]["role_id"]
        except (RigError, hvac.exceptions.VaultError, requests.RequestException, KeyError, TypeError):
            return False
        return bool(role_id == self.info.vault_role_id)

    def _seed(self) -> None:
        import hvac.exceptions
        import requests

        info = self.info
        try:
            api = self.client()
            mounts = api.sys.list_mounted_secrets_engines()
            mounts = mounts.get("data", mounts)
            if f"{KV2_MOUNT}/" not in mounts:
                api.sys.enable_secrets_engine("kv", path=KV2_MOUNT, options={"version": "2"})
            if f"{KV1_MOUNT}/" not in mounts:
                api.sys.enable_secrets_engine("kv", path=KV1_MOUNT, options={"version": "1"},
                                              description="dbupdater rig: KV version 1")
            for name, values in seed_values(info).items():
                path = f"{info.vault_prefix}/{name}"
                api.secrets.kv.v2.create_or_update_secret(path=path, secret=values, mount_point=KV2_MOUNT)
                api.secrets.kv.v1.create_or_update_secret(path=path, secret=values, mount_point=KV1_MOUNT)
            api.sys.create_or_update_policy(POLICY, policy_text(info.vault_prefix), pretty_print=False)
            auths = api.sys.list_auth_methods()
            if f"{APPROLE_MOUNT}/" not in auths.get("data", auths):
                api.sys.enable_auth_method("approle", path=APPROLE_MOUNT)
            api.auth.approle.create_or_update_approle(ROLE, token_policies=[POLICY], token_ttl="1h",
                                                      token_max_ttl="4h", secret_id_ttl="24h",
                                                      mount_point=APPROLE_MOUNT)
            api.auth.approle.update_role_id(ROLE, info.vault_role_id, mount_point=APPROLE_MOUNT)
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            detail = str(exc).replace(info.vault_token, MASK)
            raise RigError(f"seeding OpenBao on {info.vault_addr} failed ({type(exc).__name__}: {detail}); "
                           "run down and up again") from exc

    def new_secret_id(self) -> str:
        """A fresh AppRole secret_id for role ``dbupdater`` (valid 24h), e.g. one per test."""
        response = self.client().auth.approle.generate_secret_id(ROLE, mount_point=APPROLE_MOUNT)
        return str(response["data"]["secret_id"])

