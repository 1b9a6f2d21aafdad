"""Reading a manifest: the CSV file (or named fields) into cells, then `rows.parse` validates them all.

The csv module rather than pandas: a manifest is a few hundred rows of text, and importing pandas cost 150 ms
of every run's start.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from .. import scriptfile
from ..model.errors import ManifestError, Problem
from ..model.specs import Manifest
from .references import References
from .rows import parse


def load(path: Path, script_encoding: str = scriptfile.DEFAULT, references: References | None = None, *,
         strict: bool = False) -> Manifest:
    """Read a manifest CSV: every cell as text, UTF-8 with or without BOM, cells and names trimmed.

    `script_encoding` is the encoding of scripts whose row leaves the encoding column empty; `references`
    resolves credential references (without one, `vault:` cells are problems); `strict` refuses blank scripts.
    """
    source = str(path)
    records: list[tuple[int, list[str]]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, strict=True)
            line = 1
            for cells in reader:
                records.append((line, [cell.strip() for cell in cells]))
                line = reader.line_num + 1  # a quoted cell may span lines: the next record starts after it
    except FileNotFoundError:
        raise ManifestError(source, [Problem("file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(source, [Problem(f"cannot read the file as UTF-8 CSV: {exc}")]) from None
    except csv.Error as exc:
        raise ManifestError(source, [Problem(f"not a well-formed CSV: {exc}", line)]) from None
    if not records:
        raise ManifestError(source, [Problem("the file is empty")])
    (_, header), body = records[0], records[1:]
    ragged = [Problem(f"line {line} has {len(cells)} fields but the header has {len(header)}", line)
              for line, cells in body if len(cells) > len(header)]
    if ragged:
        raise ManifestError(source, ragged)
    return parse(source, path.resolve().parent, header, [(line, cells) for line, cells in body if any(cells)],
                 script_encoding, references, strict=strict)


def from_mapping(source: str, base_dir: Path, cells: Mapping[str, str], script_encoding: str = scriptfile.DEFAULT,
                 references: References | None = None) -> Manifest:
    """A one-row manifest from named fields (the single-script entry point), validated the same way."""
    header = list(cells)
    return parse(source, base_dir, header, [(1, [cells[name].strip() for name in header])], script_encoding,
                 references)
