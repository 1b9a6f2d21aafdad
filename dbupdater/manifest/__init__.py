"""Manifests: read a CSV, validate every row at once, resolve credential references into typed rows.

The whole manifest is checked before anything runs, and every problem is reported at once with its line
and column: a deployment that stops at row 7 of 9 because row 8 had a typo is the failure mode we exist to
prevent. Which engines, transports and their columns exist is asked of the registries.
"""

from __future__ import annotations

from .reader import from_mapping, load
from .references import References, is_reference
from .rows import parse

__all__ = ["References", "from_mapping", "is_reference", "load", "parse"]
