"""PDF documents, through PDFium (pypdfium2)."""

from __future__ import annotations

import os
import re

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from app.core.extract.markup import normalize_newlines
from app.core.extract.registry import PDF_NO_TEXT_REASON
from app.core.extract.types import Block, Extracted, ExtractionError

EXTENSIONS = frozenset({".pdf"})
MIME = "application/pdf"

_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n")
# PDFium marks soft hyphens and unmappable glyphs with these; they are noise in an index.
_NOISE = str.maketrans({"\ufffe": None, "\x00": None, "\x02": "-"})


def _open(path: str) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise ExtractionError(
                "encrypted", "This PDF is password-protected; remove the password to index it."
            ) from None
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise ExtractionError(
                "encrypted",
                "This PDF uses an unsupported kind of encryption; save an unencrypted copy "
                "to index it.",
            ) from None
        if code == pdfium_c.FPDF_ERR_FILE:
            if not os.path.exists(path):
                raise FileNotFoundError(path) from None
            raise ExtractionError(
                "unreadable", "This PDF could not be opened for reading; check its permissions."
            ) from None
        raise ExtractionError(
            "corrupt",
            "This PDF file appears to be damaged or truncated (PDFium could not read its "
            "structure); try opening and re-saving it.",
        ) from None


def _page_blocks(text: str, page_number: int) -> list[Block]:
    text = normalize_newlines(text).translate(_NOISE)
    return [
        Block(part.strip(), "para", page=page_number)
        for part in _BLANK_LINE.split(text)
        if part.strip()
    ]


def extract(path: str | os.PathLike[str]) -> Extracted:
    doc = _open(os.fspath(path))
    try:
        blocks: list[Block] = []
        for index in range(len(doc)):
            page = doc[index]
            try:
                textpage = page.get_textpage()
                try:
                    blocks.extend(_page_blocks(textpage.get_text_range(), index + 1))
                finally:
                    textpage.close()
            finally:
                page.close()
        metadata = {
            key.lower(): value.strip()
            for key, value in doc.get_metadata_dict(skip_empty=True).items()
            if key in ("Title", "Author", "Subject", "Keywords") and value.strip()
        }
        metadata["pages"] = str(len(doc))
    finally:
        doc.close()
    if not any(b.text.strip() for b in blocks):
        raise ExtractionError("no_text", PDF_NO_TEXT_REASON)
    return Extracted(tuple(blocks), MIME, metadata.get("title"), metadata)
