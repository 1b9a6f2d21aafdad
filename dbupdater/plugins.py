"""Importing every module of a plugin package once, so each registers itself (engines, transports).

The registries know no plugin by name: a new engine or transport is found because its module is there.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading

_loaded: set[str] = set()
_guard = threading.RLock()


def load_all(package_name: str, skip: set[str]) -> None:
    """Import every module of the package but `skip` (its infrastructure), once per process."""
    if package_name in _loaded:
        return
    with _guard:
        if package_name in _loaded:
            return
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            if module.name not in skip:
                importlib.import_module(f"{package_name}.{module.name}")
        _loaded.add(package_name)
