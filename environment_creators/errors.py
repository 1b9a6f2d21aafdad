"""The one exception the rig raises, so callers and tests catch a single type."""

from __future__ import annotations


class RigError(Exception):
    """The rig could not do what was asked; the message says what to fix."""
