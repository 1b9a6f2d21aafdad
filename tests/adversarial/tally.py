"""What the adversarial suite exercised, counted as it happens, so the README can state its coverage with
numbers the suite itself produced (the conftest writes them at the end of the session)."""

from __future__ import annotations

from collections import Counter

KINDS = ("faults exercised", "manifests generated", "injection payloads", "process scans", "concurrent runs",
         "known_hosts variants", "fencing races", "timeouts enforced", "secret forms", "hostile report inputs")

counts: Counter[str] = Counter()
faults: Counter[str] = Counter()  # fault kind -> times it was injected


def add(kind: str, amount: int = 1) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown count {kind!r}")
    counts[kind] += amount


def fault(name: str) -> None:
    """One fault injected into a real run (each kind is also counted by name)."""
    faults[name] += 1
    add("faults exercised")
