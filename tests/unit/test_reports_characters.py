"""junit.xml, report.html and run.json hold any text a run document may hold: every character XML 1.0 does not
allow (U+0000-U+0008, U+000B, U+000C, U+000E-U+001F, U+FFFE, U+FFFF, lone surrogates) is shown as an escape,
and the page's data is the document itself. Property tests (Hypothesis) put arbitrary text into every free-text
field of a document at once; the files are parsed by strict readers (expat through ElementTree, junitparser,
the standard library's HTML parser and json)."""

from __future__ import annotations

import html.parser
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from junitparser import JUnitXml

from dbupdater.reporting.characters import JSON_UNSAFE, XML_FORBIDDEN, json_text, visible, xml_text
from dbupdater.reporting.document import schema
from dbupdater.reporting.html import report_html
from dbupdater.reporting.junit import junit_xml
from dbupdater.reporting.reading import Reading
from dbupdater.reporting.runfolder import render

from .run_documents import canonical, document, free_text_paths, result, with_text, write

EXAMPLES = int(os.environ.get("DBU_FUZZ_EXAMPLES", "0") or 0)
PROPERTY = settings(max_examples=EXAMPLES or 150, deadline=None, database=None, derandomize=not EXAMPLES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# What broke a writer or a reader once, or could: XML's forbidden characters, markup, escapes, bidi, BOM.
SPECIAL = ["\x00", "\x01", "\x0b", "\x0c", "\x1b[31m", "\x7f", "\x85", "\x9f", "\ufffe", "\uffff", "\ud800",
           "\udfff", "\udc80", "\ud83d", "\ufdd0", "\U0001fffe", "\U0010ffff", "\u202e", "\ufeff", "\r\n", "\r",
           "]]>", "</script>", "<!--", "-->", "&#xFFFF;", "&amp;", "<b>", '"', "'", "\\", "\\u0000",
           "__proto__", "__DBUPDATER_RUN_DATA__", "__DBUPDATER_TITLE__", "[/red]", "%s"]
CHARACTERS = st.one_of(st.characters(codec=None, exclude_categories=()), st.sampled_from(SPECIAL),
                       st.integers(0xD800, 0xDFFF).map(chr), st.integers(0, 0x9F).map(chr))
TEXT = st.one_of(st.lists(CHARACTERS, max_size=12).map("".join), st.sampled_from(SPECIAL))
BASE = document()
PATHS = list(free_text_paths(BASE))


def texts() -> st.SearchStrategy[dict[tuple[Any, ...], str]]:
    return st.lists(TEXT, min_size=len(PATHS), max_size=len(PATHS)).map(lambda found: dict(zip(PATHS, found)))


class _Page(html.parser.HTMLParser):
    """The page as an HTML parser reads it: the data block's text and the title."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.data: list[str] = []
        self.title: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and ("id", "run-data") in attrs:
            self._in = "data"
        elif tag == "title":
            self._in = "title"

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "data":
            self.data.append(data)
        elif self._in == "title":
            self.title.append(data)


def well_formed_junit(data: bytes) -> ET.Element:
    """Parsed by expat (strict XML 1.0) and by junitparser; no forbidden character inside."""
    root = ET.fromstring(data)
    JUnitXml.fromstring(data.decode("utf-8"))
    assert not XML_FORBIDDEN.search(data.decode("utf-8"))
    return root


def read_page(page: str) -> tuple[str, Any]:
    """The page's title, and the document it embeds as the page's script reads it (the data block through JSON)."""
    assert not XML_FORBIDDEN.search(page) and not JSON_UNSAFE.search(page)
    page.encode("utf-8")  # strict: no lone surrogate
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert len(parser.title) == 1 and parser.data
    return parser.title[0], json.loads("".join(parser.data))


def page_data(page: str) -> Any:
    return read_page(page)[1]


def test_the_characters_xml_forbids_are_escaped_in_junit() -> None:
    """PostgreSQL's `RAISE EXCEPTION 'bad %', U&'\\FFFF'`: the client's error text held U+FFFF, and junit.xml
    was not well-formed (CI systems then drop the whole test report)."""
    failed = result(2, "failed", errors=["ERROR:  bad \uffff", "lone \ud800 and \ufffe and \x01"],
                    reason="exit 3 \uffff")
    data = junit_xml(document(results=[result(1, "applied", script="ok\ufffe.sql"), failed]))
    root = well_formed_junit(data)
    case = root.find(".//testcase[2]/failure")
    assert case is not None and "bad \\uffff" in (case.text or "") and "lone \\ud800" in (case.text or "")
    assert case.get("message") == "exit 3 \\uffff"
    assert root.find(".//testcase[1]").get("name") == "ok\\ufffe.sql"  # type: ignore[union-attr]


def test_the_page_and_run_json_keep_every_string_as_data() -> None:
    text = "bad \uffff \ud800 \x85 </script>"
    original = document(results=[result(1, "failed", errors=[text], target=text)])
    page = report_html(original)
    assert page_data(page) == original
    files = render(original)
    assert json.loads(files["run.json"].decode("utf-8")) == original
    well_formed_junit(files["junit.xml"])


def test_a_title_holding_the_data_mark_stays_a_title() -> None:
    original = document()
    original["run"]["command"] = "__DBUPDATER_RUN_DATA__"
    original["run"]["id"] = "__DBUPDATER_TITLE__ \ud800"
    title, data = read_page(report_html(original))
    assert data == original
    assert title == "dbupdater __DBUPDATER_RUN_DATA__ __DBUPDATER_TITL: exit 1"


def test_escapes_are_what_the_console_shows() -> None:
    assert xml_text("a\x00b\uffff\ud800\t\n\r") == "a\\x00b\\uffff\\ud800\t\n\r"
    assert visible("a\x1b[2Jb\ud800\u202e") == "a\\x1b[2Jb\\ud800\\u202e"
    assert json.loads(json_text({"k\ud800": "\uffff\x85"})) == {"k\ud800": "\uffff\x85"}
    assert json_text("\ufffe").isascii()


@PROPERTY
@given(texts())
def test_any_text_in_every_field_gives_well_formed_files(found: dict[tuple[Any, ...], str]) -> None:
    changed = with_text(BASE, found)
    files = render(changed)
    root = well_formed_junit(files["junit.xml"])
    assert [case.get("name") for case in root.iter("testcase")] == [
        xml_text(r["script"]) for target in dict.fromkeys(r["target"] for r in changed["results"])
        for r in changed["results"] if r["target"] == target]
    assert page_data(files["report.html"].decode("utf-8")) == canonical(changed)
    assert json.loads(files["run.json"].decode("utf-8")) == canonical(changed)


@PROPERTY
@given(texts())
def test_any_text_read_back_by_report_renders(tmp_path_factory: Any, found: dict[tuple[Any, ...], str]) -> None:
    changed = with_text(BASE, found)
    jsonschema.validate(changed, schema())
    path = write(tmp_path_factory.mktemp("doc"), changed)
    read = Reading().document(path)
    assert read == canonical(changed)
    files = render(read)
    well_formed_junit(files["junit.xml"])
    assert page_data(files["report.html"].decode("utf-8")) == canonical(changed)


def test_a_document_with_every_field_is_valid() -> None:
    jsonschema.validate(BASE, schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert len(PATHS) > 60 and all(re.fullmatch(r"[ -~]*", str(path)) for path in PATHS)


def test_run_json_of_a_file_name_python_could_not_decode(tmp_path: Path) -> None:
    """A manifest path with a byte that is not UTF-8 reaches the document as a surrogate (surrogateescape):
    the run folder used to fail to be written at all (UnicodeEncodeError)."""
    original = document()
    original["manifest"]["source"] = os.fsdecode(b"/srv/ci/manifest-\xff.csv")
    files = render(original)
    assert json.loads(files["run.json"])["manifest"]["source"] == original["manifest"]["source"]
    assert "\\udcff" in files["run.json"].decode("ascii", "replace")
