"""Excel workbooks (.xlsx), through openpyxl in streaming mode: one page per sheet."""

from __future__ import annotations

import os

import openpyxl

from app.core.extract.office_zip import check_zip_container
from app.core.extract.tables import row_lines, table_blocks
from app.core.extract.types import Block, Extracted

EXTENSIONS = frozenset({".xlsx"})
MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LABEL = "Excel workbook"


def extract(path: str | os.PathLike[str]) -> Extracted:
    check_zip_container(path, LABEL, ".xlsx")
    # read_only streams rows instead of building every cell object; data_only gives the values
    # Excel last computed rather than formula source.
    workbook = openpyxl.load_workbook(os.fspath(path), read_only=True, data_only=True)
    try:
        blocks: list[Block] = []
        sheets = workbook.worksheets
        for number, sheet in enumerate(sheets, start=1):
            rows = table_blocks(row_lines(sheet.iter_rows(values_only=True)), number)
            if rows:
                blocks.append(Block(sheet.title, "heading", 1, number))
                blocks.extend(rows)
        props = workbook.properties
        metadata = {
            key: value.strip()
            for key, value in (("title", props.title), ("author", props.creator))
            if value and value.strip()
        }
        metadata["sheets"] = str(len(sheets))
    finally:
        workbook.close()  # read-only mode keeps the zip open until closed
    return Extracted(tuple(blocks), MIME, metadata.get("title"), metadata)
