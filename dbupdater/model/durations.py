"""Durations as people write them in a manifest cell or an option: `90`, `90s`, `15m`, `2h`, `1.5h`.

ASCII digits only (`str.isdigit` accepts `²` and `٣`), and bounded: a timeout of a thousand years is a typo.
"""

from __future__ import annotations

import re

FORM = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,3})?)\s*(s|m|h)?", re.ASCII)
UNITS = {None: 1, "s": 1, "m": 60, "h": 3600}
LONGEST = 7 * 24 * 3600.0


def parse_duration(text: str) -> float:
    """Seconds; ValueError with a sentence saying what is accepted."""
    match = FORM.fullmatch(text.strip().lower())
    seconds = float(match.group(1)) * UNITS[match.group(2)] if match else 0.0
    if not match or not 0 < seconds <= LONGEST:
        raise ValueError(f"{text!r} is not a duration: write seconds (90), or 90s, 15m, 2h (above 0, at most 7 days)")
    return seconds
