"""Delimited text tables (.csv, .tsv), through the standard library's csv module."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from app.core.extract.decode import decode_text
from app.core.extract.tables import row_lines, table_blocks
from app.core.extract.types import Extracted

EXTENSIONS = frozenset({".csv", ".tsv"})
# The sniffer is regex-heavy; a few hundred lines are plenty to guess a dialect from.
_SNIFF_CHARS = 16 * 1024
_DELIMITERS = ",;\t|"


def _dialect(sample: str, ext: str) -> type[csv.Dialect] | csv.Dialect:
    default = csv.excel_tab if ext == ".tsv" else csv.excel
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        return default  # too regular or too irregular to sniff; trust the extension


def _has_header(sample: str) -> bool:
    try:
        return csv.Sniffer().has_header(sample)
    except csv.Error:
        return False


def extract(path: str | os.PathLike[str]) -> Extracted:
    ext = Path(path).suffix.lower()
    text = decode_text(Path(path).read_bytes())
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # a cut-off last line would mislead the sniffer
    dialect = _dialect(sample, ext)
    rows = csv.reader(io.StringIO(text, newline=""), dialect)

    lines = list(row_lines(rows))
    header = lines[0] if lines and _has_header(sample) else None
    body = lines[1:] if header is not None else lines
    blocks = table_blocks(body, header=header)
    mime = "text/tab-separated-values" if ext == ".tsv" else "text/csv"
    return Extracted(tuple(blocks), mime, None, {"rows": str(len(lines))})
