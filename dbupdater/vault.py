"""HashiCorp Vault (or OpenBao): secrets by reference and a small key/value store for environment state.

Configured like the vault CLI, from the environment: VAULT_ADDR, VAULT_TOKEN (else ~/.vault-token),
VAULT_NAMESPACE, VAULT_CACERT / VAULT_CAPATH, VAULT_CLIENT_CERT / VAULT_CLIENT_KEY, VAULT_SKIP_VERIFY,
VAULT_CLIENT_TIMEOUT; the BAO_* spellings of OpenBao too; VAULT_TOKEN_FILE (ours) names a file holding the
token, so scripts need not put it in the environment. With VAULT_ROLE_ID and VAULT_SECRET_ID the tool
logs in with AppRole (mount VAULT_APPROLE_MOUNT, default `approle`) instead of using a token.

A path is `<mount>/<path>`; whether the mount is KV version 1 or 2 is asked from Vault (as `vault kv` does),
so references never spell out `data/`. hvac is imported only when a run actually uses Vault.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model.errors import UnreachableError, UnresolvedReference, UsageError
from .model.secret import Secret, redact

if TYPE_CHECKING:
    import hvac
    import requests

PREFIX = "vault:"
_CAS_ATTEMPTS = 20  # check-and-set retries before a contended update gives up
RENEW_BELOW = 300  # seconds of token life left at which a renewable token is renewed
# Characters a URL gives a meaning of its own (a query, a fragment, an escape the server decodes into `..`), a
# backslash, and characters that are not text.
UNSAFE = re.compile(r"[?#%\\\x00-\x1f\x7f]")


class VaultUnavailable(UnreachableError):
    """Vault cannot be reached, is sealed, or no longer accepts our token."""


class TokenRejected(VaultUnavailable):
    """The token expired or was revoked: permanent until a person acts, so never retried."""


class VaultNotFound(UnresolvedReference):
    """A path or key that does not exist (a problem of the input, not of Vault)."""


@dataclass(frozen=True)
class Location:
    mount: str  # with a trailing slash, as Vault reports it
    path: str  # inside the mount
    version: int  # KV 1 or 2

    @property
    def full(self) -> str:
        return self.mount + self.path


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def path_problem(path: str) -> str | None:
    """Why a path could name something other than the secret it spells, or None. The server resolves `.` and
    `..` segments (`secret/../../sys/seal` is `sys/seal`: out of the secret engine, into Vault's own API) and
    empty ones; hvac sends the path into a URL, where the characters of UNSAFE change what it names."""
    segments = path.split("/")
    if any(segment in (".", "..") for segment in segments):
        return "a '.' or '..' segment would leave the secret the path names"
    if "" in segments:
        return "an empty segment ('//')"
    unsafe = UNSAFE.search(path)
    if unsafe:
        return f"the character {unsafe.group()!r} has a meaning of its own in a Vault URL"
    return None


def parse_reference(cell: str) -> tuple[str, str]:
    """`vault:<mount>/<path>#<key>` -> (path, key), refused before anything is asked of Vault when the path
    could reach outside the secret it spells."""
    body = cell[len(PREFIX):]
    path, sep, key = body.rpartition("#")
    path = path.strip("/")
    if not sep or not path or not key:
        raise UnresolvedReference(f"{cell}: expected vault:<mount>/<path>#<key>")
    if "/" not in path:
        raise UnresolvedReference(f"{cell}: the path needs a mount and a secret, e.g. vault:secret/app/db#password")
    problem = path_problem(path)
    if problem:
        raise UnresolvedReference(f"{cell}: {problem}; nothing was read from Vault")
    return path, key


class Vault:
    """One authenticated client for the whole process; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._client: hvac.Client | None = None
        self._mounts: dict[str, tuple[str, int]] = {}
        self._cache: dict[str, dict[str, Any]] = {}
        self._answers = threading.local()  # each thread's last HTTP status from Vault (see `_answered`)
        self.address = _env("VAULT_ADDR", "BAO_ADDR") or "https://127.0.0.1:8200"

    # -- connection -------------------------------------------------------------------------------
    def client(self) -> hvac.Client:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> hvac.Client:
        from .extras import require

        require("vault")  # hvac, or a UsageError saying how to install it
        import hvac
        import requests

        skip_verify = (_env("VAULT_SKIP_VERIFY", "BAO_SKIP_VERIFY") or "").lower() in ("1", "true", "yes")
        verify: bool | str = not skip_verify
        ca = _env("VAULT_CACERT", "BAO_CACERT") or _env("VAULT_CAPATH", "BAO_CAPATH")
        if ca and not skip_verify:
            verify = ca
        cert_file, key_file = _env("VAULT_CLIENT_CERT", "BAO_CLIENT_CERT"), _env("VAULT_CLIENT_KEY", "BAO_CLIENT_KEY")
        timeout = int(float(_env("VAULT_CLIENT_TIMEOUT", "BAO_CLIENT_TIMEOUT") or "15"))
        session = requests.Session()
        session.hooks["response"].append(self._answered)
        client = hvac.Client(url=self.address, namespace=_env("VAULT_NAMESPACE", "BAO_NAMESPACE"), verify=verify,
                             cert=(cert_file, key_file) if cert_file and key_file else None, timeout=timeout,
                             session=session)
        self._login(client)
        return client

    def _answered(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """hvac's exceptions do not keep the HTTP status, and one without a message would say only "None"."""
        self._answers.status = response.status_code

    def _login(self, client: hvac.Client) -> None:
        role_id, secret_id = _env("VAULT_ROLE_ID"), _env("VAULT_SECRET_ID")
        token: str | None
        if role_id and secret_id:
            redact.add(secret_id)
            mount = _env("VAULT_APPROLE_MOUNT") or "approle"
            response = self._call(lambda: client.auth.approle.login(role_id, secret_id, mount_point=mount),
                                  f"AppRole login at {mount}/")
            token = str(response["auth"]["client_token"])
        else:
            token = _env("VAULT_TOKEN", "BAO_TOKEN") or _token_file()
            if not token:
                raise VaultUnavailable(f"no Vault token for {self.address}: set VAULT_TOKEN or VAULT_TOKEN_FILE (or "
                                       "`vault login`, which writes ~/.vault-token), or VAULT_ROLE_ID and "
                                       "VAULT_SECRET_ID for AppRole")
        redact.add(token)
        client.token = token

    def _call(self, action: Any, what: str, *, token_call: bool = False) -> Any:
        """Run one hvac call, turning transport and auth failures into VaultUnavailable.

        Vault answers 403 both for a policy that denies a path and for a token that is no longer valid; a
        call about the token itself (token_call) can only mean the latter.
        """
        import hvac.exceptions
        import requests

        try:
            return action()
        except hvac.exceptions.Forbidden:
            if token_call:
                raise TokenRejected(f"Vault at {self.address} rejected the token ({what}): it may have expired "
                                    "or been revoked") from None
            raise
        except hvac.exceptions.InvalidPath:
            raise
        except hvac.exceptions.Unauthorized:
            raise TokenRejected(f"Vault at {self.address} rejected the token ({what}): it may have expired or "
                                "been revoked") from None
        except hvac.exceptions.VaultDown:
            raise VaultUnavailable(f"Vault at {self.address} is sealed or in maintenance ({what})") from None
        except hvac.exceptions.VaultError as exc:
            raise VaultUnavailable(redact(f"Vault at {self.address} failed ({what}): {self._why(exc)}")) from None
        except requests.exceptions.RequestException as exc:
            raise VaultUnavailable(f"Vault at {self.address} is unreachable ({what}): "
                                   f"{type(exc).__name__}") from None

    def _why(self, exc: Exception) -> str:
        """What the server answered: Vault's error messages; else the HTTP status, and the first line of a body
        that is not Vault's JSON (a proxy's error page: hvac makes the whole page the message), or that there
        was no message (hvac would say "None": Vault's answer to a method a path does not allow)."""
        method, url = getattr(exc, "method", None), getattr(exc, "url", None)
        on = f", on {str(method).upper()} {url}" if method and url else ""
        if getattr(exc, "errors", None):
            return f"{exc.args[0]}{on}"
        status = getattr(self._answers, "status", None)
        answer = f"HTTP {status}" if status else type(exc).__name__
        body = str(getattr(exc, "text", None) or "").strip()
        if getattr(exc, "json", None) is None and body:
            first = body.splitlines()[0]
            return f"it answered {answer}, not in Vault's format ({first[:120]}{'...' if len(first) > 120 else ''})" \
                   f"{on}"
        return f"it answered {answer} without an error message{on}"

    # -- KV -----------------------------------------------------------------------------------------
    def locate(self, path: str) -> Location:
        """Split a path into its mount and the rest, and learn the mount's KV version (cached per mount)."""
        path = path.strip("/")
        problem = path_problem(path)
        if problem:  # references are checked as they are read; this guards every other path (state paths)
            raise UsageError(f"Vault path {path!r}: {problem}")
        with self._lock:
            for mount, (prefix, version) in self._mounts.items():
                if path.startswith(mount):
                    return Location(prefix, path[len(prefix):], version)
        client = self.client()
        import hvac.exceptions

        try:
            info = self._call(lambda: client.adapter.get(f"/v1/sys/internal/ui/mounts/{urllib.parse.quote(path)}"),
                              f"locating {path}")
            data = info["data"]
            prefix = str(data["path"])
            version = 2 if str((data.get("options") or {}).get("version", "1")) == "2" else 1
            if data.get("type") not in ("kv", "generic"):
                raise UnresolvedReference(f"{path}: mount {prefix} is a {data.get('type')} engine, not key/value")
        except (hvac.exceptions.InvalidPath, hvac.exceptions.Forbidden):
            # Older servers or narrow policies: take the first segment as the mount and assume KV 2.
            prefix, version = path.split("/", 1)[0] + "/", 2
        with self._lock:
            self._mounts[prefix] = (prefix, version)
        return Location(prefix, path[len(prefix):], version)

    def read(self, path: str) -> dict[str, Any] | None:
        """The key/value data at a path, or None when there is nothing."""
        return self._read(self.locate(path), path)[0]

    def _read(self, where: Location, path: str) -> tuple[dict[str, Any] | None, int]:
        """The data (None when absent or deleted) and, on KV 2, the version a check-and-set write names (0: none)."""
        import hvac.exceptions

        kv = self.client().secrets.kv
        try:
            if where.version == 2:
                response = self._call(lambda: kv.v2.read_secret_version(
                    path=where.path, mount_point=where.mount, raise_on_deleted_version=False), f"reading {path}")
                body = response["data"]
                data = None if body.get("data") is None else dict(body["data"])  # None: a deleted version
                return data, int(body["metadata"]["version"])
            response = self._call(lambda: kv.v1.read_secret(path=where.path, mount_point=where.mount),
                                  f"reading {path}")
            return dict(response["data"] or {}), 0
        except hvac.exceptions.InvalidPath:
            return None, 0
        except hvac.exceptions.Forbidden:
            self.check()  # an expired or revoked token is Vault being unusable, not a problem of this path
            raise UnresolvedReference(f"permission denied reading {path}: the token's policy does not allow "
                                      "it") from None

    def write(self, path: str, data: dict[str, Any], *, cas: int | None = None) -> bool:
        """Write an entry; with cas (KV 2 only), only if it is still at that version: False when it is not."""
        import hvac.exceptions

        where = self.locate(path)
        kv = self.client().secrets.kv

        def put() -> bool:
            try:
                if where.version == 2:
                    kv.v2.create_or_update_secret(path=where.path, secret=data, cas=cas, mount_point=where.mount)
                else:
                    kv.v1.create_or_update_secret(path=where.path, secret=data, mount_point=where.mount)
            except hvac.exceptions.InvalidRequest as exc:
                if cas is not None and "check-and-set" in str(exc):
                    return False
                raise
            return True

        try:
            return bool(self._call(put, f"writing {path}"))
        except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidPath):
            self.check()
            raise VaultUnavailable(f"permission denied writing {path}: the token's policy does not allow it") \
                from None

    def update(self, path: str, change: Callable[[dict[str, Any] | None], dict[str, Any]]) -> dict[str, Any]:
        """Read, change and write one entry without losing a concurrent writer's change.

        On KV 2 the write carries check-and-set with the version that was read; when another controller
        (a shard, a second run) wrote in between, the change is applied again to what it wrote. KV 1 has no
        versions, so there the last writer wins.
        """
        where = self.locate(path)
        for attempt in range(_CAS_ATTEMPTS):
            current, version = self._read(where, path)
            data = change(current)
            if self.write(path, data, cas=version if where.version == 2 else None):
                return data
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise VaultUnavailable(f"writing {path}: another writer changed it {_CAS_ATTEMPTS} times in a row while "
                               "this run tried to update it")

    def delete(self, path: str) -> None:
        import hvac.exceptions

        where = self.locate(path)
        kv = self.client().secrets.kv
        try:
            if where.version == 2:
                self._call(lambda: kv.v2.delete_metadata_and_all_versions(path=where.path, mount_point=where.mount),
                           f"deleting {path}")
            else:
                self._call(lambda: kv.v1.delete_secret(path=where.path, mount_point=where.mount), f"deleting {path}")
        except hvac.exceptions.InvalidPath:
            pass
        except hvac.exceptions.Forbidden:
            self.check()
            raise VaultUnavailable(f"permission denied deleting {path}: the token's policy does not allow it") \
                from None

    def check(self) -> None:
        """Is Vault still there and our token still good? Renews a renewable token that is running out.

        Called before each script of a run that uses Vault, so a run stops cleanly instead of failing later
        to record its state.
        """
        client = self.client()
        data = self._call(lambda: client.auth.token.lookup_self(), "checking the token", token_call=True)["data"]
        ttl = int(data.get("ttl") or 0)
        if data.get("renewable") and 0 < ttl < RENEW_BELOW:
            self._call(lambda: client.auth.token.renew_self(), "renewing the token", token_call=True)

    # -- references ---------------------------------------------------------------------------------
    def resolve(self, cell: str) -> Secret:
        path, key = parse_reference(cell)
        with self._lock:
            data = self._cache.get(path)
        if data is None:
            try:
                found = self.read(path)
            except UnresolvedReference as exc:
                raise UnresolvedReference(f"{cell}: {exc}") from None
            if found is None:
                raise VaultNotFound(f"{cell}: no secret at {path} in Vault {self.address}")
            data = found
            with self._lock:
                self._cache[path] = data
        if key not in data:
            known = ", ".join(sorted(data)) or "none"
            raise VaultNotFound(f"{cell}: the secret at {path} has no key {key!r} (keys: {known})")
        value = data[key]
        return Secret(value if isinstance(value, str) else str(value))


def _token_file() -> str | None:
    path = Path(_env("VAULT_TOKEN_FILE") or "~/.vault-token").expanduser()
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


_shared: Vault | None = None
_shared_lock = threading.Lock()


def shared() -> Vault:
    """The process's Vault client, created on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Vault()
        return _shared


def reset() -> None:
    """Forget the shared client (tests, and long-lived processes after the environment changed)."""
    global _shared
    with _shared_lock:
        _shared = None


def used() -> bool:
    return _shared is not None and _shared._client is not None
