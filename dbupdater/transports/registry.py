"""Transport kinds register themselves; the core looks them up here and knows none of them by name.

A kind says which manifest columns it needs, which command-line options it adds (SSH: known_hosts and
host-key trust), and how to open a connection for one runner. Its module must import fast: the network
code loads only when `open` is called, so `--help` and `validate` load no paramiko.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from ..plugins import load_all

if TYPE_CHECKING:
    from ..model.specs import RunnerSpec
    from .base import Transport

_kinds: dict[str, TransportKind] = {}
INFRASTRUCTURE = {"base", "registry", "shells"}


class TransportKind(ABC):
    name: str  # the manifest's transport cell
    display: str
    supported: bool = True
    default: bool = False  # the kind of rows whose transport cell is empty
    # Whether rows need sql_runner_host / sql_runner_userid (a local runner needs neither).
    needs_host: bool = True
    default_port: int = 0
    # Whether a row may leave sql_runner_userid and sql_runner_port empty for the kind to find them in its own
    # configuration when it connects (SSH: ~/.ssh/config's User and Port, else OpenSSH's defaults). The row's
    # spec then carries port 0 and user "", and the manifest's cells, when given, still win.
    login_from_config: bool = False
    # Manifest columns only this kind reads.
    columns: tuple[str, ...] = ()

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:  # noqa: B027 - most kinds add none
        """Command-line options of this kind (one group shared by every kind)."""

    def options(self, args: argparse.Namespace) -> Any:
        """This kind's options from parsed arguments (defaults when the command has none of them)."""
        return None

    @abstractmethod
    def open(self, spec: RunnerSpec, options: Any) -> Transport:
        """Connect to one runner; raises TransportError (or HostKeyRefused) when it cannot."""


def register(kind: TransportKind) -> TransportKind:
    if kind.name in _kinds and _kinds[kind.name].supported:
        raise ValueError(f"transport {kind.name!r} is registered twice")
    _kinds[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """For tests that register a kind of their own."""
    _kinds.pop(name, None)


def default() -> TransportKind:
    _load()
    return next(kind for kind in _kinds.values() if kind.default)


def _load() -> None:
    load_all(__package__ or "dbupdater.transports", INFRASTRUCTURE)


def kinds() -> dict[str, TransportKind]:
    _load()
    return dict(_kinds)


def find(name: str) -> TransportKind | None:
    _load()
    return _kinds.get(name.lower())


def get(name: str) -> TransportKind:
    _load()
    return _kinds[name]


def options(args: argparse.Namespace) -> dict[str, Any]:
    """Every kind's options from the parsed command line, keyed by kind."""
    return {name: kind.options(args) for name, kind in kinds().items() if kind.supported}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("runner connections")
    for kind in kinds().values():
        if kind.supported:
            kind.add_arguments(group)


def open_transport(spec: RunnerSpec, options: dict[str, Any]) -> Transport:
    return get(spec.transport).open(spec, options.get(spec.transport))
