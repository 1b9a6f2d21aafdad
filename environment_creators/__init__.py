"""A private, throw-away environment (databases plus SSH runner hosts) for trying and testing dbupdater.

Names are resolved lazily so that ``python -m environment_creators.rig`` does not import the module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import RigError
    from .info import DbInfo, RigInfo, RunnerInfo
    from .rig import Rig

__all__ = ["DbInfo", "Rig", "RigError", "RigInfo", "RunnerInfo"]

_HOMES = {"Rig": ".rig", "RigError": ".errors", "DbInfo": ".info", "RigInfo": ".info", "RunnerInfo": ".info"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
