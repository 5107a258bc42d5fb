"""OpenDocument text (.odt), read straight from its zip with the standard library."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
import zipfile

from app.core.extract.office_zip import check_zip_container
from app.core.extract.tables import table_blocks
from app.core.extract.types import Block, Extracted, ExtractionError

EXTENSIONS = frozenset({".odt"})
MIME = "application/vnd.oasis.opendocument.text"
LABEL = "OpenDocument text file"

_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_MANIFEST_ENCRYPTION = b"encryption-data"

# Inline elements whose content is not part of the running text.
_SKIPPED_INLINE = frozenset({_TEXT + "note", _TEXT + "bookmark-ref", _OFFICE + "annotation"})


def _inline_text(element: ET.Element) -> str:
    parts = [element.text or ""]
    for child in element:
        tag = child.tag
        if tag == _TEXT + "s":
            parts.append(" " * int(child.get(_TEXT + "c", "1")))
        elif tag == _TEXT + "tab":
            parts.append("\t")
        elif tag == _TEXT + "line-break":
            parts.append("\n")
        elif tag not in _SKIPPED_INLINE:
            parts.append(_inline_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _table_lines(table: ET.Element) -> list[str]:
    lines = []
    for row in table.iter(_TABLE + "table-row"):
        cells = []
        for cell in row:
            if cell.tag in (_TABLE + "table-cell", _TABLE + "covered-table-cell"):
                paragraphs = (_inline_text(p) for p in cell.iter(_TEXT + "p"))
                cells.append(" ".join(" ".join(paragraphs).split()))
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            lines.append("\t".join(cells))
    return lines


def _walk(element: ET.Element, blocks: list[Block]) -> None:
    for child in element:
        tag = child.tag
        if tag == _TEXT + "h":
            text = " ".join(_inline_text(child).split())
            level = int(child.get(_TEXT + "outline-level", "1") or 1)
            if text:
                blocks.append(Block(text, "heading", max(1, min(level, 6))))
        elif tag == _TEXT + "p":
            text = _inline_text(child).strip()
            if text:
                blocks.append(Block(text, "para"))
        elif tag == _TABLE + "table":
            blocks.extend(table_blocks(_table_lines(child)))
        else:
            _walk(child, blocks)  # lists, sections, frames: containers of the above


def _title(archive: zipfile.ZipFile) -> str | None:
    try:
        meta = ET.fromstring(archive.read("meta.xml"))
    except KeyError:
        return None
    node = meta.find(f".//{_DC_TITLE}")
    return node.text.strip() if node is not None and node.text and node.text.strip() else None


def extract(path: str | os.PathLike[str]) -> Extracted:
    check_zip_container(path, LABEL, ".odt")
    with zipfile.ZipFile(os.fspath(path)) as archive:
        try:
            manifest = archive.read("META-INF/manifest.xml")
        except KeyError:
            manifest = b""
        if _MANIFEST_ENCRYPTION in manifest:
            raise ExtractionError(
                "encrypted", f"This {LABEL} is password-protected; remove the password to index it."
            )
        root = ET.fromstring(archive.read("content.xml"))
        title = _title(archive)
    blocks: list[Block] = []
    body = root.find(f"{_OFFICE}body")
    _walk(body if body is not None else root, blocks)
    if title is None:
        title = next((b.text for b in blocks if b.kind == "heading"), None)
    return Extracted(tuple(blocks), MIME, title, {"title": title} if title else {})
