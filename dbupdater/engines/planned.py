"""Engines users may already name, which a later release implements: a manifest naming them is refused as
"not supported yet" (exit 2), not as an unknown engine, and the legacy manifest's port 1521 / 1433 is read."""

from __future__ import annotations
