"""Turning rows of cells into table blocks, shared by every format that has tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from app.core.extract.types import Block

# Small enough that a table block makes a sensible search chunk, large enough that a big
# sheet does not become thousands of tiny blocks.
ROWS_PER_TABLE_BLOCK = 50


def cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 12.0 reads as 12 to a person
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())


def row_lines(rows: Iterable[Iterable[object]]) -> Iterable[str]:
    """Tab-joined, non-empty lines, with trailing empty cells dropped."""
    for row in rows:
        cells = [cell_text(v) for v in row]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            yield "\t".join(cells)


def table_blocks(
    lines: Iterable[str], page: int | None = None, header: str | None = None
) -> list[Block]:
    """Group lines into table blocks; `header`, if given, starts every group.

    Repeating the header keeps each table chunk self-explanatory in search results.
    """
    blocks: list[Block] = []
    group: list[str] = []

    def emit() -> None:
        rows = [header, *group] if header is not None else group
        blocks.append(Block("\n".join(rows), "table", page=page))

    for line in lines:
        group.append(line)
        if len(group) == ROWS_PER_TABLE_BLOCK:
            emit()
            group = []
    if group or (header is not None and not blocks):
        emit()
    return blocks
