"""Kinds of step (see `execution.kinds`): what a run can do on a target. Each kind is a module of its own; a
command names the kinds it runs, and the Run walks them without knowing what they do."""

from __future__ import annotations

from .script import ExecStep, ScriptStep

__all__ = ["ExecStep", "ScriptStep"]
