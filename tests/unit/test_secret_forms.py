"""The redactor masks a secret in every form the tool can know it to be printed in. Each expected form is
written out here as the engine or library writes it (not computed by the redactor's own code), so a form the
redactor forgets fails its own case."""

from __future__ import annotations

import html
import json
import urllib.parse

import pytest

from dbupdater.engines import registry
from dbupdater.model import secret as masking
from dbupdater.model.secret import MASK, Redactor

PASSWORD = "Pa'ss\\wo\"rd-42é"  # a quote, a backslash, a double quote and a non-ASCII letter
URL_PASSWORD = "Pa's/s w"  # a slash and a space: the three URL encodings differ

CASES = {
    "as written": PASSWORD,
    # SQL string literals, engine by engine
    "standard SQL, PostgreSQL, Oracle, SQL Server: ' doubled": "Pa''ss\\wo\"rd-42é",
    "a quoted identifier: \" doubled": "Pa'ss\\wo\"\"rd-42é",
    "MySQL QUOTE(): \\' and \\\\": "Pa\\'ss\\\\wo\"rd-42é",
    "mysql_real_escape_string: \\' \\\\ \\\"": "Pa\\'ss\\\\wo\\\"rd-42é",
    "PostgreSQL E'' (quote_literal of a value with a backslash): '' and \\\\": "Pa''ss\\\\wo\"rd-42é",
    "MySQL double-quoted string: \\\" and \\\\": "Pa'ss\\\\wo\\\"rd-42é",
    "backslashes doubled only": "Pa'ss\\\\wo\"rd-42é",
    # what the mysql client's --batch output makes of a QUOTE() result: its backslashes doubled again
    "QUOTE() through mysql --batch": "Pa\\\\'ss\\\\\\\\wo\"rd-42é",
    "mysql_real_escape_string through mysql --batch": "Pa\\\\'ss\\\\\\\\wo\\\\\"rd-42é",
    # libraries and formats
    "JSON, ASCII-escaped": json.dumps(PASSWORD)[1:-1],
    "JSON, not ASCII-escaped": json.dumps(PASSWORD, ensure_ascii=False)[1:-1],
    "Python repr": repr(PASSWORD)[1:-1],
    "URL-encoded (quote, safe='')": urllib.parse.quote(PASSWORD, safe=""),
    "HTML-escaped, quotes too": html.escape(PASSWORD),
    "HTML-escaped, quotes kept": html.escape(PASSWORD, quote=False),
}


def masking_of(*values: str) -> Redactor:
    """A redactor of its own (the process's one is left alone), masking these."""
    masks = Redactor()
    for value in values:
        masks.add(value)
    return masks


@pytest.fixture
def redactor() -> Redactor:
    return masking_of(PASSWORD)


@pytest.mark.parametrize("form", list(CASES.values()), ids=list(CASES))
def test_every_form_is_masked(redactor: Redactor, form: str) -> None:
    masked = redactor(f"ERROR 1064: near '{form}' at line 1")
    assert masked == f"ERROR 1064: near '{MASK}' at line 1", masked


@pytest.mark.parametrize("form", [urllib.parse.quote(URL_PASSWORD, safe=""), urllib.parse.quote(URL_PASSWORD),
                                  urllib.parse.quote_plus(URL_PASSWORD)], ids=["quote, safe=''", "quote", "quote_plus"])
def test_every_url_encoding_is_masked(form: str) -> None:
    masks = masking_of(URL_PASSWORD)
    assert masks(f"https://u:{form}@host/") == f"https://u:{MASK}@host/"


@pytest.mark.parametrize("engine", ["mysql", "postgresql", "oracle"])
def test_an_engines_file_format_forms_are_masked(engine: str) -> None:
    secret = "o:p\\q\"r's-77"
    masks = Redactor()
    given = registry.get(engine).secret_forms(secret)
    masks.add(secret, *given)
    assert given and all(masks(f"[{form}]") == f"[{MASK}]" for form in given), given


def test_pgpass_and_option_file_lines_as_a_script_would_print_them() -> None:
    secret = "o:p\\q\"r's-77"
    masks = Redactor()
    for engine in ("mysql", "postgresql"):
        masks.add(secret, *registry.get(engine).secret_forms(secret))
    assert masks('password="o:p\\\\q\\"r\'s-77"') == f'password="{MASK}"'
    assert masks("*:*:*:app:o\\:p\\\\q\"r's-77") == f"*:*:*:app:{MASK}"


def test_values_under_three_characters_are_not_masked() -> None:
    masks = masking_of("ab", "'\\")
    assert masks("ab '\\ '' \\\\") == "ab '\\ '' \\\\"
    masks.add("abc")
    assert masks("xabcx") == f"x{MASK}x"


def test_a_secret_of_punctuation_only_is_masked_in_every_form() -> None:
    """No run of letters to search for first: the forms are found by their shared characters or their own."""
    value = "'\\\"@#"
    masks = masking_of(value)
    for form in masking.forms(value):
        assert MASK in masks(f"<{form}>"), form


def test_overlapping_secrets_mask_the_longest_first() -> None:
    masks = masking_of("hunter2", "hunter2'xyz")
    assert masks("a hunter2''xyz b hunter2 c") == f"a {MASK} b {MASK} c"


def test_a_multi_line_secret_is_masked_line_by_line() -> None:
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAmZ8a1b2c3d4e5f6g7h8i9j0k1l2m3n4\n-----END KEY-----"
    masks = masking_of(key)
    assert masks("line: AmZ8a1b2c3d4e5f6g7h8i9j0k1l2m3n4") == f"line: {MASK}"


def test_one_search_per_secret_while_nothing_matches() -> None:
    """Why adding forms costs no time on the lines that hold none: a secret with a run of plain characters
    has one anchor for all its forms, and a dense one only a few."""
    for value in ("Pa'ss\\word\"42", "k8s-token_abcdef0123456789", "x'y\\z\"w@v#u"):
        found = set(masking.anchors(value, masking.forms(value)).values())
        assert len(found) <= 3, (value, found)
    assert len(set(masking.anchors("Pa'ss\\word\"42", masking.forms("Pa'ss\\word\"42")).values())) == 1


def test_restore_forgets_later_secrets_and_keeps_earlier_ones() -> None:
    masks = masking_of("first'one")
    saved = masks.values()
    masks.add("second'one")
    masks.restore(saved)
    assert masks("first''one second''one") == f"{MASK} second''one"
    masks.add("second'one")  # added again after a restore: masked again
    assert masks("second''one") == MASK
