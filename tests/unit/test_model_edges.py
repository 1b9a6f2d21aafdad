"""Edges of the model's own parsing and display: shard specs and text a terminal must be able to show."""

from __future__ import annotations

import pytest

from dbupdater.model.errors import UsageError
from dbupdater.model.secret import printable
from dbupdater.model.shards import Shard


@pytest.mark.parametrize("text", ["²/4", "1/²", "1/1234567890", "0/1", "3/2", "1/", "/1", "\u0661/\u0662", " 1/2"])
def test_a_shard_is_ascii_digits_and_bounded(text: str) -> None:
    with pytest.raises(UsageError, match="expected I/N"):
        Shard.parse(text)  # before: `²` passed isdigit() and int() raised ValueError (exit 4)


def test_a_shard_within_bounds() -> None:
    assert Shard.parse("999999999/999999999") == Shard(999999999, 999999999)


def test_lone_surrogates_are_shown_escaped_and_noncharacters_kept() -> None:
    shown = printable("name-\udcff-\ufffe-\uffff-\x1b[31m")
    assert shown == "name-\\udcff-\ufffe-\uffff-\\x1b[31m"
    shown.encode("utf-8")  # a terminal or log in UTF-8 can carry it: no UnicodeEncodeError
