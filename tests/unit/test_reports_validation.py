"""The run document's schema as `report` asserts it (`reporting.validation`, since jsonschema is a development
dependency only), held to jsonschema's verdicts on generated documents: whatever it accepts, jsonschema accepts;
whatever jsonschema refuses, it refuses, naming the place. It refuses more only where the code needs it: times
that are not times, numbers beyond 2**53."""

from __future__ import annotations

import copy
import os
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbupdater.reporting.document import schema
from dbupdater.reporting.validation import Invalid, check

from .run_documents import document

EXAMPLES = int(os.environ.get("DBU_FUZZ_EXAMPLES", "0") or 0)
PROPERTY = settings(max_examples=EXAMPLES or 400, deadline=None, database=None, derandomize=not EXAMPLES,
                    suppress_health_check=[HealthCheck.too_slow])
BASE = document(shard="2/4")
VALIDATOR = jsonschema.Draft202012Validator(schema())
STRICTER = ("is not a time", "beyond the numbers")

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False,
                    allow_infinity=False, min_value=-1e15, max_value=1e15), st.text(max_size=8),
                    st.sampled_from(["applied", "failed", "not run", "warning", "2024-05-01T12:00:00.000Z",
                                     "1/4", "sha256:" + "0" * 64, "dbupdater", "dbupdater-run", 0, 1, 130, 77]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)


def places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += places(item, (*path, index))
    return found


PLACES = places(BASE)[1:]


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """The document with a few places replaced by any JSON value, or removed."""
    changed = copy.deepcopy(BASE)
    for path in draw(st.lists(st.sampled_from(PLACES), min_size=1, max_size=3)):
        holder: Any = changed
        try:
            for step in path[:-1]:
                holder = holder[step]
            if isinstance(holder, dict) and draw(st.booleans()) and draw(st.booleans()):
                holder.pop(path[-1], None)
            else:
                holder[path[-1]] = draw(VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change took this place away
    return changed


def verdict(value: Any) -> str | None:
    try:
        check(value)
    except Invalid as exc:
        return str(exc)
    return None


@PROPERTY
@given(mutated())
def test_the_reader_agrees_with_jsonschema(changed: dict[str, Any]) -> None:
    mine = verdict(changed)
    theirs = next(VALIDATOR.iter_errors(changed), None)
    if mine is None:
        assert theirs is None, theirs.message if theirs else ""
    elif theirs is None:
        assert any(word in mine for word in STRICTER), mine


def test_a_valid_document_passes() -> None:
    check(BASE)
    VALIDATOR.validate(BASE)


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


def test_a_keyword_the_reader_does_not_know_is_an_error_not_ignored() -> None:
    from dbupdater.reporting.validation import _known

    _known(schema())  # every keyword of the shipped schema is asserted or descriptive
    with pytest.raises(ValueError, match="maxLength"):
        _known({"type": "object", "properties": {"run": {"type": "string", "maxLength": 3}}})
