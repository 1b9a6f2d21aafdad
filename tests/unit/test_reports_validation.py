"""The run document's schema as `report` asserts it (`reporting.validation`, jsonschema underneath): each
problem named by its place, in JSON's terms; and the two checks beyond the schema the code needs: times that are
not times, numbers beyond 2**53."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dbupdater.reporting.validation import Invalid, check

from .run_documents import document

BASE = document(shard="2/4")


def verdict(value: Any) -> str | None:
    try:
        check(value)
    except Invalid as exc:
        return str(exc)
    return None


def test_a_valid_document_passes() -> None:
    check(BASE)


@pytest.mark.parametrize(("change", "says"), [
    (lambda d: d["run"].update(id=5), "run.id: expected string, found number 5"),
    (lambda d: d.update(results="x"), "results: expected array, found string 'x'"),
    (lambda d: d.update(results=None), "results: expected array, found null"),
    (lambda d: d["run"].update(seconds="1.5"), "run.seconds: expected number, found string '1.5'"),
    (lambda d: d["run"].update(exit_code="1"), "run.exit_code: '1' is not one of 0, 1, 2, 3, 4, 5, 130"),
    (lambda d: d["run"].update(exit_code=77), "run.exit_code: 77 is not one of"),
    (lambda d: d["run"].update(exit_code=10**30), "run.exit_code: 1000000000000000000000000000000 is not one of"),
    (lambda d: d["run"].update(exit_code=True), "run.exit_code: True is not one of"),
    (lambda d: d["summary"].update(exit_code=-1), "summary.exit_code: -1 is not one of"),
    (lambda d: d["results"][1].update(seconds=10**20), "results[1].seconds: 100000000000000000000 is beyond"),
    (lambda d: d["results"][1]["output"].update(lines=[{"stream": 1, "text": ""}]),
     "results[1].output.lines[0].stream: expected string, found number 1"),
    (lambda d: d["results"][0].pop("status"), "results[0].status: missing"),
    (lambda d: d["run"].update(started_at="yesterday Z"), "run.started_at: 'yesterday Z' is not a time"),
    (lambda d: d["run"].update(shard="1/99999999999"), r"run.shard: '1/99999999999' does not match"),
    (lambda d: d["summary"]["counts"].update({"exploded": 1}), "summary.counts.exploded: 'exploded' is not one of"),
    (lambda d: d["summary"]["counts"].update({"a b": 1}), "summary.counts['a b']: 'a b' is not one of"),
    (lambda d: d.update(format="x"), "format: expected 'dbupdater-run', found 'x'"),
])
def test_the_problem_is_named_by_its_place(change: Any, says: str) -> None:
    changed = copy.deepcopy(BASE)
    change(changed)
    problem = verdict(changed)
    assert problem is not None and says in problem, problem


def test_times_that_are_not_times_and_inexact_numbers_are_refused_beyond_the_schema() -> None:
    for change, says in ((lambda d: d["run"].update(started_at="yesterday"),
                          "run.started_at: 'yesterday' is not a time"),
                         (lambda d: d["run"].update(seconds=2**60), "run.seconds: 1152921504606846976 is beyond")):
        changed = copy.deepcopy(BASE)
        change(changed)
        assert (verdict(changed) or "").startswith(says), verdict(changed)
