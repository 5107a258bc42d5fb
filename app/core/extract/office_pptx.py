"""PowerPoint presentations (.pptx), through python-pptx: one page per slide."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pptx

from app.core.extract.office_zip import check_zip_container
from app.core.extract.types import Block, Extracted

EXTENSIONS = frozenset({".pptx"})
MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
LABEL = "PowerPoint presentation"


def _shapes(shapes: Any) -> Iterator[Any]:
    """Every shape on a slide, with group shapes flattened in drawing order."""
    for shape in shapes:
        if hasattr(shape, "shapes"):
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _frame_text(frame: Any) -> str:
    return "\n".join(p.text.strip() for p in frame.paragraphs if p.text.strip())


def _table_text(table: Any) -> str:
    rows = ("\t".join(" ".join(cell.text.split()) for cell in row.cells) for row in table.rows)
    return "\n".join(row for row in rows if row.strip())


def _slide_blocks(slide: Any, page: int) -> list[Block]:
    blocks: list[Block] = []
    title_shape = slide.shapes.title
    title_id = None
    if title_shape is not None and title_shape.has_text_frame:
        title_id = title_shape.shape_id
        title = " ".join(title_shape.text_frame.text.split())
        if title:
            blocks.append(Block(title, "heading", 1, page))
    for shape in _shapes(slide.shapes):
        if shape.shape_id == title_id:
            continue
        if getattr(shape, "has_table", False):
            text = _table_text(shape.table)
            if text:
                blocks.append(Block(text, "table", page=page))
        elif getattr(shape, "has_text_frame", False):
            text = _frame_text(shape.text_frame)
            if text:
                blocks.append(Block(text, "para", page=page))
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        text = _frame_text(notes) if notes is not None else ""
        if text:
            blocks.append(Block(text, "para", page=page))
    return blocks


def extract(path: str | os.PathLike[str]) -> Extracted:
    check_zip_container(path, LABEL, ".pptx")
    presentation = pptx.Presentation(os.fspath(path))
    blocks: list[Block] = []
    for number, slide in enumerate(presentation.slides, start=1):
        blocks.extend(_slide_blocks(slide, number))
    props = presentation.core_properties
    metadata = {
        key: value.strip()
        for key, value in (("title", props.title), ("author", props.author))
        if value and value.strip()
    }
    metadata["slides"] = str(len(presentation.slides))
    title = metadata.get("title") or next((b.text for b in blocks if b.kind == "heading"), None)
    return Extracted(tuple(blocks), MIME, title, metadata)
