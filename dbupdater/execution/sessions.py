"""One runner for the whole run: its connection, its private directory, its credentials files, and each
distinct script copied there once, ahead of its turn."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .. import scriptfile
from ..engines import Engine
from ..engines import registry as engines
from ..model.command import Client
from ..model.secret import redact
from ..model.specs import DatabaseSpec
from ..transports import Transport, TransportError

log = logging.getLogger("dbupdater")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Scripts copied ahead in one call: at most this many, each at most this size (a larger one streams on its own).
BATCH_FILES = 64
BATCH_FILE_BYTES = 64 * 1024
BATCH_BYTES = 1 << 20
FRESH_EVERY = 3600.0  # seconds between touches of a runner's private directory (stale: a day untouched)


@dataclass
class _Upload:
    remote: str
    done: threading.Event = field(default_factory=threading.Event)
    error: TransportError | None = None


@dataclass
class RunnerSession:
    """One runner for the whole run: its connection, its private directory, one credentials file per login,
    and each distinct script uploaded once however many targets run it. Shared by worker threads."""

    transport: Transport
    workdir: str
    _credentials: dict[tuple[str, bytes], str] = field(default_factory=dict)  # (engine, content): path
    _uploads: dict[tuple[Path, str], _Upload] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _prefetching: threading.Thread | None = None
    _stop_prefetch: threading.Event = field(default_factory=threading.Event)
    _closed: threading.Event = field(default_factory=threading.Event)
    _clients: dict[str, Client] = field(default_factory=dict)
    _probing: threading.Lock = field(default_factory=threading.Lock)  # not _lock: a probe is a round trip

    def __post_init__(self) -> None:
        threading.Thread(target=self._keep_fresh, name=f"dbupdater-fresh {self.transport.label}",
                         daemon=True).start()

    def _keep_fresh(self) -> None:
        """Touch the private directory every FRESH_EVERY seconds: runs that connect later remove directories
        of dead runs by their age (shells.STALE_MINUTES), and a run with one very long script is not dead."""
        while not self._closed.wait(FRESH_EVERY):
            try:
                self.transport.run(self.transport.shell.touch(self.workdir), lambda stream, line: None)
            except TransportError:
                return

    def credentials(self, db: DatabaseSpec) -> str:
        """The path of a 0600 file holding the login's credentials in the client's own form, written once per
        distinct content: targets that log in the same way (one user and password for many databases of one
        server, on MySQL) share one file, where each used to cost a call of its own."""
        engine = engines.get(db.engine)
        content = engine.credentials(db)
        key = (engine.name, content)
        with self._lock:
            path = self._credentials.get(key)
            if path is None:
                path = self.transport.shell.join(self.workdir, f"login{len(self._credentials) + 1}.cred")
                if db.password:
                    redact.add(db.password.reveal(), *engine.secret_forms(db.password.reveal()))
                self.transport.put_bytes(content, path)
                self._credentials[key] = path
        return path

    def client(self, engine: Engine) -> Client:
        """The engine's client as this runner has it: asked once per run (`Engine.client_probe`), under a lock
        of its own so that parallel targets ask once without holding up uploads and credentials. A probe that
        cannot run (the client is missing) names no build; the script's own call then reports it as usual."""
        with self._probing:
            known = self._clients.get(engine.name)
            if known is None:
                platform = self.transport.shell.platform
                probe = engine.client_probe(platform)
                build = ""
                if probe is not None:
                    lines: list[str] = []
                    result = self.transport.run(probe, lambda stream, line: lines.append(line))
                    build = engine.client_build(result, lines)
                    log.debug("%s on %s: %s", engine.client, self.transport.label, build or "build unknown")
                known = self._clients[engine.name] = Client(build, platform)
        return known

    def _claim(self, script: Path, encoding: str) -> tuple[_Upload, bool]:
        """The script's upload, and whether the caller must make it (the first to ask)."""
        with self._lock:
            upload = self._uploads.get((script, encoding))
            if upload is not None:
                return upload, False
            name = f"{len(self._uploads) + 1:05d}-{SAFE_NAME.sub('_', script.name)}"
            upload = self._uploads[(script, encoding)] = _Upload(f"{self.workdir}/{name}")
            return upload, True

    def _copy(self, script: Path, encoding: str, upload: _Upload) -> None:
        log.debug("uploading %s (%s) to %s", script.name, encoding, self.transport.label)
        try:
            with scriptfile.utf8(script, encoding) as (source, size):
                self.transport.put_stream(source, size, upload.remote, script.name)
        except (OSError, ValueError) as exc:  # the file changed since it was validated
            upload.error = TransportError(f"{script.name} cannot be read as {encoding}: {exc}")
        except TransportError as exc:
            upload.error = exc
        finally:
            upload.done.set()

    def upload(self, script: Path, encoding: str) -> str:
        """The script's path on the runner, copying it (streamed, as UTF-8) the first time any target needs it."""
        upload, owner = self._claim(script, encoding)
        if owner:
            self._copy(script, encoding, upload)
        else:
            upload.done.wait()
        if upload.error is not None:
            raise upload.error
        return upload.remote

    def _copy_batch(self, scripts: list[tuple[Path, str]]) -> None:
        """Copy the scripts no one copies yet: small ones together (`put_files`, up to BATCH_BYTES a call),
        others streamed one by one."""
        small: list[tuple[bytes, _Upload, str]] = []
        claimed: list[_Upload] = []
        try:
            for script, encoding in scripts:
                upload, owner = self._claim(script, encoding)
                if not owner:
                    continue
                claimed.append(upload)
                try:
                    with scriptfile.utf8(script, encoding) as (source, size):
                        data = source.read(size) if size <= BATCH_FILE_BYTES else None
                except (OSError, ValueError):
                    data = None  # _copy reads it again and says why it cannot
                if data is None or len(data) != size:
                    self._copy(script, encoding, upload)
                    continue
                if small and sum(len(held) for held, _, _ in small) + len(data) > BATCH_BYTES:
                    self._put_files(small)
                    small = []
                small.append((data, upload, script.name))
            self._put_files(small)
        finally:  # whatever went wrong, no step waits for ever for a copy this batch claimed
            for upload in claimed:
                if not upload.done.is_set():
                    upload.error = upload.error or TransportError("the copy was abandoned")
                    upload.done.set()

    def _put_files(self, files: list[tuple[bytes, _Upload, str]]) -> None:
        if not files:
            return
        log.debug("uploading %s to %s", ", ".join(name for _, _, name in files), self.transport.label)
        try:
            self.transport.put_files([(data, upload.remote, name) for data, upload, name in files])
        except TransportError as exc:
            for _, upload, _ in files:
                upload.error = exc
        finally:
            for _, upload, _ in files:
                upload.done.set()

    def prefetch(self, scripts: list[tuple[Path, str]]) -> None:
        """Copy the scripts the run will need, in order, in the background: each later copy overlaps the
        scripts running before it (one connection carries both). Small scripts go in batches that double in
        size (1, 2, 4 ... BATCH_FILES): the first is there soon, and a thousand tiny scripts take a few dozen
        calls instead of a thousand."""
        def work() -> None:
            pending, size = list(scripts), 1
            while pending and not self._stop_prefetch.is_set():
                batch, pending = pending[:size], pending[size:]
                self._copy_batch(batch)
                if any(self._uploads[key].error is not None for key in batch):
                    return  # the step that needs the script reports it
                size = min(size * 2, BATCH_FILES)
        self._prefetching = threading.Thread(target=work, name=f"dbupdater-copy {self.transport.label}", daemon=True)
        self._prefetching.start()

    def stop_prefetch(self) -> None:
        self._stop_prefetch.set()

    def close(self) -> None:
        """Stop copying, remove the private directory and disconnect."""
        self._closed.set()
        self._stop_prefetch.set()
        if self._prefetching is not None:  # a copy under way: let a small one end; a big one fails at the rm
            self._prefetching.join(timeout=5)
        try:
            self.transport.remove(self.workdir)
        except TransportError:
            pass  # the runner is gone; its private directory goes with its /tmp policy
        finally:
            self.transport.close()
