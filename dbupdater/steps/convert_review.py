"""`copy-db --plan DIR` across engines: what the copy would make, written for a person to review before
anything runs (the DDL, what is not carried, the source's views and routines as MySQL wrote them), and a
summary on the console."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..conversion.model import OBJECTS_FILE, ConversionPlan

SHOWN = 10  # lines of what is not carried shown in the summary (the file has them all)


def text_of(value: str | Iterable[str]) -> str:
    """A plan's text, whether it comes as one string or as lines."""
    if isinstance(value, str):
        return value if not value or value.endswith("\n") else value + "\n"
    return "".join(f"{line}\n" for line in value)


def review(plan: ConversionPlan, folder: Path) -> list[str]:
    """Write the review files into `folder` (made if needed, files replaced); the summary, in lines."""
    folder.mkdir(parents=True, exist_ok=True)
    not_carried = text_of(plan.not_carried())
    files = {"schema.sql": text_of(plan.ddl()), "not-carried.txt": not_carried,
             OBJECTS_FILE: text_of(plan.objects_sql())}
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    rows = sum(table.source.rows_estimate for table in plan.tables)
    lines = [f"{len(plan.tables)} table{'s' if len(plan.tables) != 1 else ''} of {plan.source.database} into schema "
             f"{plan.schema}, about {rows:,} rows (the source's estimate); {len(plan.types_sql)} enum types"]
    missing = [line for line in not_carried.splitlines() if line.strip()]
    if missing:
        lines.append(f"not carried ({len(missing)}):")
        lines.extend(f"  {line}" for line in missing[:SHOWN])
        if len(missing) > SHOWN:
            lines.append(f"  ... and {len(missing) - SHOWN} more in not-carried.txt")
    else:
        lines.append("not carried: nothing")
    unfollowed = [table for table in plan.tables if not table.followable]
    if unfollowed:
        lines.append(f"tables --follow cannot keep in step ({len(unfollowed)}):")
        lines.extend(f"  {table.name}: {table.not_followed_reason or 'no primary or unique key'}"
                     for table in unfollowed)
    lines.append(f"written: {', '.join(str(folder / name) for name in files)}; nothing was run on the destination")
    return lines
