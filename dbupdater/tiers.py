"""Tiers (environments.toml): the stages a change is promoted through, each with its manifest, its state path in
Vault and its policy.

One table per tier:

    [prod]
    manifest = "manifests/prod.csv"          # relative to the file's folder
    state_path = "secret/ENVIRONMENTS/{environment}/{database}"
    record_state = true                       # record the environment's state in Vault (false: no Vault needed)
    require_approval = true                   # apply only an approved saved plan (plan --save, apply --plan)
    protected = true                          # a flag weakening the policy is refused (default: require_approval)
    warnings_are_errors = true
    parallel = 4                              # at most (and by default) this many databases at once
    per_runner = 2
    keep_going = false                        # whether --keep-going is allowed
    script_timeout = "30m"                    # at most (and by default) this long per script
    transports = ["ssh"]                      # rows with another transport are refused
    waves = ["1", "10%", "100%"]              # targets in manifest order: 1 first, then up to 10%, then the rest
    pause_between_waves = false               # ask the operator on a terminal before each later wave
    backup_before = true                      # stored: used when backups land
    strict = true                             # blank scripts are refused (exit 2), as with --strict

A policy is what a tier promises its operators; the command line may tighten it, and on a protected tier it
may not loosen it (exit 2, naming the policy): that is the difference between a tier and a CSV. Parsed with
tomllib (Python 3.11+: on 3.10 a tiers file is refused, saying so; everything without one works), every
problem named with the file, the tier and the key.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model.durations import parse_duration
from .model.errors import UsageError

if sys.version_info >= (3, 11):  # tomllib: the standard library's TOML reader, from Python 3.11
    import tomllib

FILE = "environments.toml"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
WAVE = re.compile(r"^(?:(?P<count>[1-9][0-9]{0,8})|(?P<percent>[0-9]{1,3}(?:\.[0-9]+)?)%)$")
KEYS = {"manifest", "state_path", "require_approval", "protected", "warnings_are_errors", "parallel", "per_runner",
        "keep_going", "script_timeout", "transports", "waves", "pause_between_waves", "backup_before",
        "description", "record_state", "strict"}


class TierError(UsageError):
    """environments.toml cannot be used as written, or a flag would weaken a protected tier (exit 2)."""


@dataclass(frozen=True)
class Waves:
    """How a tier's targets are split into waves, in manifest order: each entry is how many targets (a count,
    or a percentage of them, rounded up) have been started by the end of that wave. The last is 100%."""

    specs: tuple[str, ...]

    @classmethod
    def parse(cls, specs: Sequence[str], where: str) -> Waves:
        if not specs:
            raise TierError(f"{where}: waves is empty; leave it out for one wave")
        for spec in specs:
            found = WAVE.match(str(spec).strip()) if isinstance(spec, str) else None
            if found is None:
                raise TierError(f"{where}: wave {spec!r} is neither a number of targets (\"1\") nor a percentage "
                                "(\"10%\")")
            percent = found["percent"]
            if percent is not None and not 0 < float(percent) <= 100:
                raise TierError(f"{where}: wave {spec!r}: a percentage is above 0 and at most 100")
        if str(specs[-1]).strip() != "100%":
            raise TierError(f"{where}: the last wave must be \"100%\" (every target), so that no target is left out "
                            f"without anyone saying so; got {specs[-1]!r}")
        return cls(tuple(str(spec).strip() for spec in specs))

    def ends(self, targets: int) -> list[int]:
        """The cumulative number of targets started by the end of each wave (waves that would add no target
        are dropped, so every wave has at least one)."""
        ends: list[int] = []
        for spec in self.specs:
            end = (math.ceil(targets * float(spec[:-1]) / 100) if spec.endswith("%") else int(spec))
            end = min(targets, max(end, ends[-1] if ends else 0))
            if end > (ends[-1] if ends else 0):
                ends.append(end)
        return ends

    def split(self, keys: Sequence[Any]) -> list[list[Any]]:
        """`keys` (targets in manifest order) as waves."""
        waves, start = [], 0
        for end in self.ends(len(keys)):
            waves.append(list(keys[start:end]))
            start = end
        return waves


@dataclass(frozen=True)
class Policy:
    """What a tier allows. None: no rule of the tier's (the command line's value, or the default)."""

    require_approval: bool = False
    protected: bool = False
    warnings_are_errors: bool = False
    parallel: int | None = None
    per_runner: int | None = None
    keep_going: bool = True
    script_timeout: float | None = None
    transports: tuple[str, ...] | None = None
    waves: Waves | None = None
    pause_between_waves: bool = False
    backup_before: bool = False
    strict: bool = False  # blank scripts refused (exit 2) instead of recorded as no-ops

    def data(self) -> dict[str, Any]:
        """As run.json and saved plans hold it."""
        return {"require_approval": self.require_approval, "protected": self.protected,
                "warnings_are_errors": self.warnings_are_errors, "parallel": self.parallel,
                "per_runner": self.per_runner, "keep_going": self.keep_going, "script_timeout": self.script_timeout,
                "transports": None if self.transports is None else list(self.transports),
                "waves": None if self.waves is None else list(self.waves.specs),
                "pause_between_waves": self.pause_between_waves, "backup_before": self.backup_before,
                "strict": self.strict}


@dataclass(frozen=True)
class Tier:
    name: str
    manifest: Path
    policy: Policy
    state_path: str | None = None
    description: str = ""
    record_state: bool = True


@dataclass(frozen=True)
class Tiers:
    source: Path
    tiers: Mapping[str, Tier] = field(default_factory=dict)

    def get(self, name: str) -> Tier:
        try:
            return self.tiers[name]
        except KeyError:
            known = ", ".join(self.tiers) or "none"
            raise TierError(f"{self.source}: no tier {name!r} (tiers: {known})") from None


def find(config: Path | None, cwd: Path | None = None) -> Tiers | None:
    """The tiers of `--config FILE`, or of environments.toml in the current directory; None without one."""
    if config is not None:
        if not config.is_file():
            raise TierError(f"--config {config}: no such file")
        return load(config)
    default = (cwd or Path.cwd()) / FILE
    return load(default) if default.is_file() else None


def load(path: Path) -> Tiers:
    if sys.version_info < (3, 11):  # pragma: no cover - the runtime here is 3.11
        raise TierError(f"{path}: tiers need Python 3.11 or later (its standard library reads TOML); this is "
                        f"Python {sys.version_info.major}.{sys.version_info.minor}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TierError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TierError(f"{path}: cannot read it: {exc}") from None
    tiers: dict[str, Tier] = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise TierError(f"{path}: {name!r} is not a table; each tier is a table such as [prod]")
        if not NAME.match(name):
            raise TierError(f"{path}: tier name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        tiers[name] = _tier(path, name, table)
    return Tiers(path, tiers)


def _tier(path: Path, name: str, table: dict[str, Any]) -> Tier:
    where = f"{path} [{name}]"
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise TierError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})")

    def typed(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = table.get(key, default)
        if value is not default and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise TierError(f"{where}: {key} = {value!r} is not a {names}")
        return value

    manifest = typed("manifest", str, None)
    if not manifest:
        raise TierError(f"{where}: manifest is missing (the tier's manifest CSV, relative to {path.parent})")
    manifest_path = Path(manifest).expanduser()
    if not manifest_path.is_absolute():
        manifest_path = path.resolve().parent / manifest_path
    counts = {}
    for key in ("parallel", "per_runner"):
        value = typed(key, int, None)
        if value is not None and value < 1:
            raise TierError(f"{where}: {key} = {value} must be at least 1")
        counts[key] = value
    timeout = typed("script_timeout", (str, int, float), None)
    seconds = None
    if timeout is not None:
        try:
            seconds = parse_duration(str(timeout))
        except ValueError as exc:
            raise TierError(f"{where}: script_timeout: {exc}") from None
    transports = typed("transports", list, None)
    if transports is not None and not all(isinstance(t, str) and t for t in transports):
        raise TierError(f"{where}: transports must be a list of names such as [\"ssh\", \"local\"]")
    waves = typed("waves", list, None)
    approval = typed("require_approval", bool, False)
    policy = Policy(
        require_approval=approval, protected=typed("protected", bool, approval),
        warnings_are_errors=typed("warnings_are_errors", bool, False), parallel=counts["parallel"],
        per_runner=counts["per_runner"], keep_going=typed("keep_going", bool, True), script_timeout=seconds,
        transports=None if transports is None else tuple(t.strip().lower() for t in transports),
        waves=None if waves is None else Waves.parse(waves, f"{where} waves"),
        pause_between_waves=typed("pause_between_waves", bool, False),
        backup_before=typed("backup_before", bool, False), strict=typed("strict", bool, False))
    state_path = typed("state_path", str, None)
    return Tier(name, manifest_path, policy, state_path, typed("description", str, ""),
                typed("record_state", bool, True))


@dataclass(frozen=True)
class Given:
    """What the command line asked for, None where it said nothing (so the tier's value applies)."""

    parallel: int | None = None
    per_runner: int | None = None
    keep_going: bool = False
    script_timeout: float | None = None


@dataclass(frozen=True)
class Effective:
    """The values a run uses once the tier's policy and the command line are combined."""

    parallel: int | None
    per_runner: int | None
    keep_going: bool
    script_timeout: float | None
    overridden: tuple[str, ...] = ()  # words for each policy an unprotected tier let the command line loosen


def combine(tier: Tier, given: Given) -> Effective:
    """The tier's policy with the command line's values. A value that loosens a rule of a protected tier is
    refused (exit 2, naming the rule and the tier); on an unprotected tier it wins and is said."""
    policy = tier.policy
    loosened: list[str] = []

    def bounded(key: str, asked: float | None, limit: float | None, flag: str) -> float | None:
        if limit is None:
            return asked
        if asked is None:
            return limit
        if asked > limit:
            loosened.append(f"{key} = {limit:g} (asked {flag} {asked:g})")
        return asked

    parallel = bounded("parallel", given.parallel, policy.parallel, "--parallel")
    per_runner = bounded("per_runner", given.per_runner, policy.per_runner, "--per-runner")
    timeout = bounded("script_timeout", given.script_timeout, policy.script_timeout, "--script-timeout")
    if given.keep_going and not policy.keep_going:
        loosened.append("keep_going = false (asked --keep-going)")
    if loosened and policy.protected:
        raise TierError(f"tier {tier.name} is protected and its policy forbids this: {'; '.join(loosened)}. "
                        f"Change the policy in environments.toml (reviewed like code) rather than on the command line")
    return Effective(None if parallel is None else int(parallel), None if per_runner is None else int(per_runner),
                     given.keep_going, timeout, tuple(loosened))


def check_rows(tier: Tier, rows: Sequence[Any]) -> None:
    """Rows the tier's policy does not allow (exit 2 before anything runs, naming each line): a transport it
    does not list; on a protected tier, a row's script_timeout beyond the policy's."""
    policy = tier.policy
    problems: list[str] = []
    if policy.transports is not None:
        problems += [f"line {row.line}: transport {row.runner.transport!r} (policy transports = "
                     f"{list(policy.transports)})" for row in rows if row.runner.transport not in policy.transports]
    if policy.protected and policy.script_timeout is not None:
        problems += [f"line {row.line}: script_timeout {row.script_timeout:g} s (policy script_timeout = "
                     f"{policy.script_timeout:g} s)" for row in rows
                     if row.script_timeout is not None and row.script_timeout > policy.script_timeout]
    if problems:
        raise TierError(f"{tier.manifest}: tier {tier.name} does not allow "
                        + "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else ""))
