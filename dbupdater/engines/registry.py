"""Engines register themselves; the core looks them up here and knows none of them by name.

Every module and package of `dbupdater.engines` is imported once, on the first lookup, and registers its
engine (dbmate's way). An engine is light to import: a client's Python driver loads only when it is used.
Engines a later release implements are registered as planned, so a manifest naming them gets a clear "not
supported yet" instead of "unknown engine".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..plugins import load_all

if TYPE_CHECKING:
    from .base import Engine

_engines: dict[str, Engine] = {}
_planned: dict[str, Planned] = {}
_guard = threading.Lock()
INFRASTRUCTURE = {"base", "registry", "dialect", "rules", "capabilities"}


@dataclass(frozen=True)
class Planned:
    """An engine users may name that a later release implements."""

    name: str
    display: str
    aliases: tuple[str, ...]
    default_port: int


def register(engine: Engine) -> Engine:
    """Add an engine (an instance); its name must be new. Returns it, so a module can keep a handle."""
    with _guard:
        if engine.name in _engines:
            raise ValueError(f"engine {engine.name!r} is registered twice")
        _engines[engine.name] = engine
        _planned.pop(engine.name, None)
    return engine


def unregister(name: str) -> None:
    """For tests that register an engine of their own."""
    with _guard:
        _engines.pop(name, None)


def register_planned(planned: Planned) -> None:
    with _guard:
        if planned.name not in _engines:
            _planned[planned.name] = planned


def _load() -> None:
    load_all(__package__ or "dbupdater.engines", INFRASTRUCTURE)


def engines() -> dict[str, Engine]:
    """Every registered engine by name, in registration order."""
    _load()
    return dict(_engines)


def get(name: str) -> Engine:
    _load()
    return _engines[name]


def spelling(text: str) -> str:
    return text.lower().replace(" ", "").replace("_", "").replace("-", "")


def find(given: str) -> Engine | Planned | None:
    """The engine a database_type cell names (case, spaces, '-' and '_' ignored), planned ones too."""
    _load()
    wanted = spelling(given)
    candidates: list[Engine | Planned] = [*_engines.values(), *_planned.values()]
    for candidate in candidates:
        if wanted in {spelling(candidate.name), spelling(candidate.display), *map(spelling, candidate.aliases)}:
            return candidate
    return None


def for_port(port: int) -> Engine | Planned | None:
    """The engine whose default port this is: how the legacy manifest without database_type is read."""
    _load()
    candidates: list[Engine | Planned] = [*_engines.values(), *_planned.values()]
    for candidate in candidates:
        if candidate.default_port == port:
            return candidate
    return None


def accepted() -> str:
    """The spellings to suggest, as users write them."""
    _load()
    return ", ".join(name for engine in _engines.values() for name in (engine.display_names or (engine.display,)))


def legacy_ports() -> str:
    _load()
    candidates: list[Engine | Planned] = [*_engines.values(), *_planned.values()]
    return ", ".join(f"{c.default_port} {c.display}" for c in candidates)
