"""The approaches compared, in report order; ``--only`` selects them by letter."""

from __future__ import annotations

from pathlib import Path

from ..settings import Settings
from ..testbed import Testbed
from .ansible import Ansible
from .base import Approach
from .floor import Floor, FloorParallel
from .sequential import Sequential
from .sqitch import Sqitch
from .tool import Tool, ToolBefore

ALL: tuple[type[Approach], ...] = (Floor, FloorParallel, Tool, ToolBefore, Sequential, Ansible, Sqitch)

__all__ = ["ALL", "Approach", "selected"]


def selected(bed: Testbed, settings: Settings, logs: Path) -> list[Approach]:
    return [cls(bed, settings, logs) for cls in ALL if cls.key in settings.approaches]
