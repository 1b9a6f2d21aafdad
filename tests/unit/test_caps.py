"""How many databases run at once through one runner, and the plan saying which cap decided it (issue 13: with
one runner and `--parallel 8`, only 4 ran and nothing said so).

Through the real executor on fake runners: the scripts meet at barriers of exactly the expected size, so they
must all run at once for the run to pass, and the harness's peak shows that no more ran.
"""

from __future__ import annotations

import pytest

from dbupdater import defaults
from dbupdater.events import RunPlanned
from dbupdater.execution.options import RunOptions
from dbupdater.execution.scheduler import caps, runner_cap
from dbupdater.model.errors import ExitCode

from .fakes import Harness, RecordingReporter, Repo, walk

R1 = "deploy@runner1"


def planned_caps(repo: Repo, **options: object) -> tuple[ExitCode, RunPlanned]:
    reporter = RecordingReporter()
    _, result = walk(repo.load(), RunOptions(**options), reporter)  # type: ignore[arg-type]
    (planned,) = reporter.of(RunPlanned)
    return result.exit_code, planned


def test_per_runner_defaults_to_parallel(harness: Harness, repo: Repo) -> None:
    # One runner, --parallel 6, no --per-runner: all six meet, so all six ran at once.
    script = repo.script("001.sql", "meet all 6")
    for n in range(6):
        repo.row(f"db{n}", script)
    code, planned = planned_caps(repo, parallel=6)
    assert code is ExitCode.OK
    assert harness.peak[R1] == 6
    assert planned.per_runner == 6
    assert planned.caps == {"run": "6 databases on 1 runner: all 6 at once",
                            f"runner {R1}": "6 databases, all 6 at once"}


def test_the_default_is_bounded_by_what_one_connection_carries(harness: Harness, repo: Repo) -> None:
    bound = defaults.PER_CONNECTION
    script = repo.script("001.sql", f"meet bound {bound}")
    for n in range(bound + 2):  # the first `bound` meet; the two after them start only when a slot is free
        repo.row(f"db{n}", script if n < bound else repo.script("002.sql", "ok"))
    code, planned = planned_caps(repo, parallel=bound + 4)
    assert code is ExitCode.OK
    assert harness.peak[R1] == bound
    assert planned.per_runner == bound
    assert planned.caps[f"runner {R1}"] == (
        f"{bound + 2} databases, {bound} at once (default: --parallel, at most {bound} through one SSH connection; "
        "raise it with --per-runner)")
    assert planned.caps["run"] == f"{bound + 2} databases on 1 runner: {bound} at once (the per-runner cap)"


def test_an_explicit_per_runner_is_named(harness: Harness, repo: Repo) -> None:
    script = repo.script("001.sql", "meet pair 2")
    for n in range(4):
        repo.row(f"db{n}", script)
    code, planned = planned_caps(repo, parallel=8, per_runner=2)
    assert code is ExitCode.OK
    assert harness.peak[R1] == 2
    assert planned.caps[f"runner {R1}"] == "4 databases, 2 at once (--per-runner 2)"


def test_an_explicit_per_runner_above_the_bound_is_honoured(harness: Harness, repo: Repo) -> None:
    many = defaults.PER_CONNECTION + 2
    script = repo.script("001.sql", f"meet many {many}")
    for n in range(many):
        repo.row(f"db{n}", script)
    code, planned = planned_caps(repo, parallel=many, per_runner=many)
    assert code is ExitCode.OK
    assert harness.peak[R1] == many
    assert planned.caps[f"runner {R1}"] == f"{many} databases, all {many} at once"


def test_parallel_binds_across_runners(harness: Harness, repo: Repo) -> None:
    # Two runners with three databases each, --parallel 4: four workers shared, at most 4 at once in all.
    script = repo.script("001.sql", "meet four 4")
    for n in range(6):  # the first four meet; the last two start when a worker is free
        repo.row(f"db{n}", script if n < 4 else repo.script("002.sql", "ok"), runner=f"runner{1 + n % 2}")
    code, planned = planned_caps(repo, parallel=4)
    assert code is ExitCode.OK
    assert harness.peak_total == 4
    assert planned.caps["run"] == "6 databases on 2 runners: 4 at once (--parallel 4)"
    assert planned.caps[f"runner {R1}"] == "3 databases, all 3 at once"


def test_strict_order_says_so(harness: Harness, repo: Repo) -> None:
    for n in range(3):
        repo.row(f"db{n}", repo.script(f"{n}.sql", "ok"))
    code, planned = planned_caps(repo, parallel=1)
    assert code is ExitCode.OK
    assert harness.peak[R1] == 1
    assert planned.caps["run"] == ("3 databases on 1 runner: one script at a time, the whole manifest in order "
                                   "(--parallel 1)")


def test_a_target_counts_against_the_runner_of_its_first_row() -> None:
    assert caps({"r1": 1}, 8, None) == {"run": "1 database on 1 runner: all 1 at once", "runner r1": "1 database"}


@pytest.mark.parametrize(("parallel", "per_runner", "expected"), [
    (8, None, min(8, defaults.PER_CONNECTION)), (3, None, 3), (32, None, defaults.PER_CONNECTION), (8, 2, 2),
    (4, 20, 20)])
def test_runner_cap(parallel: int, per_runner: int | None, expected: int) -> None:
    assert runner_cap(parallel, per_runner) == expected
