"""A run document checked against the shipped JSON Schema (`schema/run.schema.json`) before anything reads it:
`report` reads files it did not write, and a document whose `results` is a string or whose exit code is 77 must
be refused naming the place (a JSON path), not end in a traceback or become the process's exit status.

jsonschema is a development dependency only (it brings a compiled extension, rpds-py, to every install), and
the schema uses a dozen keywords, so they are interpreted here; tests hold this interpreter to jsonschema's
verdicts. It is stricter in three ways the code needs: `format: date-time` is asserted (merging computes with
the times), numbers are finite and exact in a double (within 2**53: what JavaScript, the page's reader, holds),
and a keyword it does not know is an error in the schema rather than ignored.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any

from .document import moment, schema

Schema = dict[str, Any]
EXACT = 2**53
# Keywords that only describe; the rest below are asserted.
NOTES = frozenset({"$schema", "$id", "$defs", "title", "description"})
ASSERTED = frozenset({"$ref", "type", "const", "enum", "oneOf", "required", "properties", "additionalProperties",
                      "propertyNames", "items", "minItems", "maxItems", "pattern", "format", "minimum"})
BRIEF = 60  # characters of a value quoted in a message


class Invalid(ValueError):
    """Where the document breaks the schema (a JSON path such as `results[3].seconds`) and how."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.steps: list[str | int] = []  # from the place up, filled in as the check unwinds

    @property
    def path(self) -> str:
        text = ""
        for step in reversed(self.steps):
            if isinstance(step, int):
                text += f"[{step}]"
            elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", step):
                text += f".{step}" if text else step
            else:
                text += f"[{_brief(step)}]"
        return text

    def __str__(self) -> str:
        return f"{self.path or 'the document'}: {self.problem}"


def check(document: Any) -> None:
    """Raise `Invalid` for the first place where the document breaks the run document's schema."""
    root = _known(schema())
    _check(document, root, root)


@cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _known(root: Schema) -> Schema:
    """The schema, once every keyword in it was found to be one this reader asserts or may ignore."""
    rules: list[Any] = [root]
    while rules:
        rule = rules.pop()
        if isinstance(rule, list):
            rules += rule
        elif isinstance(rule, dict):
            unknown = set(rule) - NOTES - ASSERTED
            if unknown:
                raise ValueError(f"the run document's schema uses keywords this reader does not know: {unknown}")
            for name in ("items", "additionalProperties", "propertyNames", "oneOf", "$defs", "properties"):
                if name in ("$defs", "properties"):
                    rules += list(rule.get(name, {}).values())
                elif name in rule:
                    rules.append(rule[name])
    return root


# What json.loads makes of each JSON type (exactly these classes: it makes no subclasses).
_KINDS: dict[type, str] = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
                           list: "array", dict: "object"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _is(value: Any, kind: str, names: list[str]) -> bool:
    if kind in names:
        return True
    return "integer" in names and kind == "number" and (isinstance(value, int) or value.is_integer())


def _same(value: Any, expected: Any) -> bool:
    """JSON equality: true is not 1."""
    return _kind(value) == _kind(expected) and value == expected


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= BRIEF else text[:BRIEF] + "..."


def _resolve(root: Schema, reference: str) -> Schema:
    if not reference.startswith("#/"):
        raise ValueError(f"the schema refers outside itself ({reference})")
    found: Schema = root
    for part in reference[2:].split("/"):
        found = found[part]
    return found


def _check(value: Any, rule: Schema, root: Schema) -> None:
    if "$ref" in rule:
        _check(value, _resolve(root, rule["$ref"]), root)
    kind = _kind(value)
    _check_kind(value, kind, rule, root)
    if kind == "object":
        _check_object(value, rule, root)
    elif kind == "array":
        _check_array(value, rule, root)
    elif kind == "string":
        _check_string(value, rule)
    elif kind == "number":
        _check_number(value, rule)


def _inside(step: str | int, value: Any, rule: Schema, root: Schema) -> None:
    try:
        _check(value, rule, root)
    except Invalid as exc:
        exc.steps.append(step)
        raise


def _check_kind(value: Any, kind: str, rule: Schema, root: Schema) -> None:
    if "type" in rule:
        names = [rule["type"]] if isinstance(rule["type"], str) else rule["type"]
        if not _is(value, kind, names):
            found = "null" if value is None else f"{kind} {_brief(value)}"
            raise Invalid(f"expected {' or '.join(names)}, found {found}")
    if "const" in rule and not _same(value, rule["const"]):
        raise Invalid(f"expected {rule['const']!r}, found {_brief(value)}")
    if "enum" in rule and not any(_same(value, option) for option in rule["enum"]):
        raise Invalid(f"{_brief(value)} is not one of {', '.join(map(repr, rule['enum']))}")
    if "oneOf" in rule:
        failed: list[Invalid] = []
        for option in rule["oneOf"]:
            try:
                _check(value, option, root)
            except Invalid as exc:
                failed.append(exc)
        if len(rule["oneOf"]) - len(failed) != 1:
            reasons = "; ".join(str(exc) for exc in failed) or "it matches more than one form"
            raise Invalid(f"{_brief(value)} is not of exactly one of the allowed forms ({reasons})")


def _check_object(value: dict[str, Any], rule: Schema, root: Schema) -> None:
    for name in rule.get("required", ()):
        if name not in value:
            problem = Invalid("missing")
            problem.steps.append(name)
            raise problem
    properties = rule.get("properties", {})
    names, others = rule.get("propertyNames"), rule.get("additionalProperties")
    for name, item in value.items():
        if names is not None:
            _inside(name, name, names, root)
        if name in properties:
            _inside(name, item, properties[name], root)
        elif others is not None:
            _inside(name, item, others, root)


def _check_array(value: list[Any], rule: Schema, root: Schema) -> None:
    if len(value) < rule.get("minItems", 0):
        raise Invalid(f"{len(value)} items, fewer than {rule['minItems']}")
    if "maxItems" in rule and len(value) > rule["maxItems"]:
        raise Invalid(f"{len(value)} items, more than {rule['maxItems']}")
    if "items" in rule:
        for index, item in enumerate(value):
            _inside(index, item, rule["items"], root)


def _check_string(value: str, rule: Schema) -> None:
    if "pattern" in rule and not _pattern(rule["pattern"]).search(value):
        raise Invalid(f"{_brief(value)} does not match {rule['pattern']}")
    if rule.get("format") == "date-time":
        try:
            moment(value)
        except (ValueError, OverflowError):
            raise Invalid(f"{_brief(value)} is not a time (e.g. 2024-05-01T12:00:00.000Z)") from None


def _check_number(value: float, rule: Schema) -> None:
    if not math.isfinite(value) or abs(value) > EXACT:
        raise Invalid(f"{_brief(value)} is beyond the numbers a run document holds (at most 2**53)")
    if "minimum" in rule and value < rule["minimum"]:
        raise Invalid(f"{_brief(value)} is below {rule['minimum']}")
