"""Structure-following chunking.

Blocks (headings, paragraphs, code, tables, with their page) become chunks of about `size`
characters. A chunk never spans two pages, and a new section (a heading) starts a new chunk once
the current one holds a useful amount of text. Each chunk keeps its page and its heading path
("Tutorial › Lists"). Only a block longer than a whole chunk is cut, at a sentence or word
boundary, with `overlap` characters repeated so no sentence is lost between neighbours.
Offsets (`char_start`, `char_end`) point into the document text: the blocks joined by blank lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from app.core.extract.types import Block

_SEPARATOR = "\n\n"
_SENTENCE_END = re.compile(r"[.!?。]\s+|\n")


@dataclass(frozen=True, slots=True)
class ChunkText:
    ordinal: int
    text: str
    page: int | None
    heading: str
    char_start: int
    char_end: int


class Chunker:
    def __init__(self, size: int = 1000, overlap: int = 100) -> None:
        if overlap >= size:
            raise ValueError("overlap must be smaller than size")
        self.size = size
        self.overlap = overlap
        # A heading closes the running chunk only when that chunk is worth keeping on its own.
        self.min_section = max(1, size // 4)

    def chunk(self, blocks: Iterable[Block]) -> list[ChunkText]:
        out: list[ChunkText] = []
        headings: list[tuple[int, str]] = []
        parts: list[str] = []
        buf_len = 0
        buf_start = 0
        buf_page: int | None = None
        buf_heading = ""
        pos = 0  # offset of the next block in the document text

        def flush() -> None:
            nonlocal parts, buf_len
            if parts:
                text = _SEPARATOR.join(parts)
                if text.strip():
                    out.append(ChunkText(len(out), text, buf_page, buf_heading, buf_start,
                                         buf_start + len(text)))
            parts = []
            buf_len = 0

        for block in blocks:
            text = block.text.strip()
            if not text:
                continue
            start = pos
            pos += len(text) + len(_SEPARATOR)
            if parts and block.page != buf_page:
                flush()
            if block.kind == "heading":
                if buf_len >= self.min_section:
                    flush()
                level = max(1, block.level or 1)
                while headings and headings[-1][0] >= level:
                    headings.pop()
                headings.append((level, text[:200]))
            if not parts:
                buf_start = start
                buf_page = block.page
                buf_heading = " › ".join(h for _, h in headings)
            needed = buf_len + (len(_SEPARATOR) if parts else 0) + len(text)
            if needed <= self.size:
                parts.append(text)
                buf_len = needed
                continue
            if parts and (len(text) <= self.size or buf_len >= self.min_section):
                flush()
                buf_start = start
                buf_page = block.page
                buf_heading = " › ".join(h for _, h in headings)
            if len(text) <= self.size:
                parts.append(text)
                buf_len = len(text)
                continue
            if parts:
                # A short lead-in (often just the heading) opens the long block's first piece.
                text = _SEPARATOR.join([*parts, text])
                start = buf_start
                parts = []
            pieces = list(self._split_long(text))
            for piece_start, piece in pieces[:-1]:
                out.append(ChunkText(len(out), piece, block.page, buf_heading,
                                     start + piece_start, start + piece_start + len(piece)))
            # The tail stays open so the next short block can join it.
            tail_start, tail = pieces[-1]
            parts = [tail]
            buf_len = len(tail)
            buf_start = start + tail_start
            buf_page = block.page
        flush()
        return out

    def _split_long(self, text: str) -> Iterable[tuple[int, str]]:
        """Cut one long block into windows of `size` with `overlap`, at natural boundaries."""
        n = len(text)
        start = 0
        while start < n:
            end = min(n, start + self.size)
            if end < n:
                window = text[start:end]
                cut = _last_boundary(window, self.size // 2)
                if cut:
                    end = start + cut
            piece = text[start:end].strip()
            if piece:
                yield start + (len(text[start:end]) - len(text[start:end].lstrip())), piece
            if end >= n:
                break
            next_start = end - self.overlap
            # Begin the overlap at a word start so no chunk opens mid-word.
            space = text.find(" ", next_start, end)
            start = space + 1 if space != -1 else next_start
            if start <= (end - self.size):
                start = end


def _last_boundary(window: str, floor: int) -> int:
    """Index just after the last sentence end (else whitespace) past `floor`; 0 if none."""
    best = 0
    for m in _SENTENCE_END.finditer(window, floor):
        best = m.end()
    if best:
        return best
    space = window.rfind(" ", floor)
    return space + 1 if space != -1 else 0
