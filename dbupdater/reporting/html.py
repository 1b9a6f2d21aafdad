"""report.html from a run document: one self-contained page (styles and script inline, no network), so it
opens from `file://`, from a CI artifact, or attached to a mail.

The document travels inside the page as JSON and the page's script draws it with `textContent` only, so no
value of a manifest or of a client's output can become markup. `<`, `>` and `&` are escaped in the JSON,
so the data cannot close its own `<script>` element either, and so is every character a page must not hold
(see `characters`): the page's script reads the very strings of the document back.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from .characters import json_text, visible
from .document import Document

DATA_MARK = "__DBUPDATER_RUN_DATA__"
TITLE_MARK = "__DBUPDATER_TITLE__"


@cache
def template() -> str:
    return resources.files(__package__).joinpath("assets", "report.html").read_text(encoding="utf-8")


def _embedded(document: Document) -> str:
    text = json_text(document, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def report_html(document: Document) -> str:
    run = document["run"]
    title = f"dbupdater {run['command']} {run['id'][:16]}: exit {run['exit_code']}"
    # Split at the marks rather than replaced: a document's text may hold a mark's words too.
    head, _, rest = template().partition(TITLE_MARK)
    middle, _, tail = rest.partition(DATA_MARK)
    return head + _escaped(visible(title)) + middle + _embedded(document) + tail
