"""A run document checked against the shipped JSON Schema (`schema/run.schema.json`) before anything reads it:
`report` reads files it did not write, and a document whose `results` is a string or whose exit code is 77 must
be refused naming the place (a JSON path), not end in a traceback or become the process's exit status.

jsonschema does the checking. Two things beyond it the code needs: `format: date-time` is asserted (merging
computes with the times), and numbers are exact in a double (within 2**53: what JavaScript, the page's reader,
holds; NaN and Infinity never get this far, `reading` refuses them as they are parsed).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from .document import moment, schema

EXACT = 2**53
BRIEF = 60  # characters of a value quoted in a message
# JSON's names for what json.loads makes (exactly these classes: it makes no subclasses).
_KINDS: dict[type, str] = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
                           list: "array", dict: "object"}


class Invalid(ValueError):
    """Where the document breaks the schema (a JSON path such as `results[3].seconds`) and how."""

    def __init__(self, problem: str, steps: list[str | int] | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.steps = steps or []  # from the document's root down to the place

    @property
    def path(self) -> str:
        text = ""
        for step in self.steps:
            if isinstance(step, int):
                text += f"[{step}]"
            elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", step):
                text += f".{step}" if text else step
            else:
                text += f"[{_brief(step)}]"
        return text

    def __str__(self) -> str:
        return f"{self.path or 'the document'}: {self.problem}"


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= BRIEF else text[:BRIEF] + "..."


@cache
def _validator() -> Any:
    # Imported on first use: `report` alone reads documents, and jsonschema's import costs every command.
    from jsonschema import Draft202012Validator, FormatChecker

    formats = FormatChecker(formats=())
    formats.checks("date-time", raises=(ValueError, OverflowError))(
        lambda value: not isinstance(value, str) or moment(value) is not None)
    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema(), format_checker=formats)


def _problem(error: Any) -> str:
    """jsonschema's words, in JSON's terms where it would speak Python's (None, True, 'str')."""
    value, expected = error.instance, error.validator_value
    kind = _KINDS.get(type(value), type(value).__name__)
    if error.validator == "type":
        names = [expected] if isinstance(expected, str) else expected
        return f"expected {' or '.join(names)}, found {'null' if value is None else f'{kind} {_brief(value)}'}"
    if error.validator == "const":
        return f"expected {expected!r}, found {_brief(value)}"
    if error.validator == "enum":
        return f"{_brief(value)} is not one of {', '.join(map(repr, expected))}"
    if error.validator == "format":
        return f"{_brief(value)} is not a time (e.g. 2024-05-01T12:00:00.000Z)"
    return str(error.message)


def check(document: Any) -> None:
    """Raise `Invalid` for a place where the document breaks the run document's schema (the deepest, most
    telling one, as jsonschema's `best_match` picks it)."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(document))
    if error is not None:
        steps: list[str | int] = list(error.absolute_path)
        if "propertyNames" in error.schema_path:  # a member's name is wrong: named at that member
            steps.append(error.instance)
        if error.validator == "required":  # named at the member that is missing, not at its object
            missing = next(name for name in error.validator_value if name not in error.instance)
            raise Invalid("missing", [*steps, missing])
        raise Invalid(_problem(error), steps)
    _exact(document, [])


def _exact(value: Any, steps: list[str | int]) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            _exact(item, [*steps, name])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _exact(item, [*steps, index])
    elif isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > EXACT:
        raise Invalid(f"{_brief(value)} is beyond the numbers a run document holds (at most 2**53)", steps)
