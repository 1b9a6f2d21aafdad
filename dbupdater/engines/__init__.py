"""Engines: one package per database, each wrapping its native client the same way (see `base.Engine`).

The core reaches them only through `registry`; a new engine is one new package that registers itself.
"""

from __future__ import annotations

from .base import Delivery, Engine, EngineOption, OutputLog, Severity
from .registry import Planned, engines, get

__all__ = ["Delivery", "Engine", "EngineOption", "OutputLog", "Planned", "Severity", "engines", "get"]
