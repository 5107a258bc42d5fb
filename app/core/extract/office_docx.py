"""Word documents (.docx), through python-docx."""

from __future__ import annotations

import os

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from app.core.extract.office_zip import check_zip_container
from app.core.extract.tables import table_blocks
from app.core.extract.types import Block, Extracted

EXTENSIONS = frozenset({".docx"})
MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
LABEL = "Word document"


def _heading_level(style_name: str) -> int:
    """Heading level for Word's built-in heading styles, 0 for body text."""
    if style_name == "Title":
        return 1
    if style_name.startswith("Heading "):
        suffix = style_name[len("Heading ") :]
        if suffix.isdigit():
            return max(1, min(int(suffix), 6))
    return 0


def _table_lines(table: Table) -> list[str]:
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            # A merged cell is reported once per grid column it spans; keep it once.
            if previous is not None and cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        line = "\t".join(cells)
        if line.strip():
            lines.append(line)
    return lines


def extract(path: str | os.PathLike[str]) -> Extracted:
    check_zip_container(path, LABEL, ".docx")
    document = docx.Document(os.fspath(path))
    blocks: list[Block] = []
    title: str | None = None
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            if not text:
                continue
            style = item.style
            level = _heading_level(style.name if style is not None else "")
            if level:
                blocks.append(Block(text, "heading", level))
                if title is None and (style is not None and style.name == "Title"):
                    title = text
            else:
                blocks.append(Block(text, "para"))
        elif isinstance(item, Table):
            blocks.extend(table_blocks(_table_lines(item)))

    props = document.core_properties
    metadata = {
        key: value.strip()
        for key, value in (
            ("title", props.title),
            ("author", props.author),
            ("subject", props.subject),
            ("keywords", props.keywords),
        )
        if value and value.strip()
    }
    title = metadata.get("title") or title
    if title is None:
        title = next((b.text for b in blocks if b.kind == "heading"), None)
    return Extracted(tuple(blocks), MIME, title, metadata)
