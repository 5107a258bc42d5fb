"""What every extractor returns, and the errors it raises.

These types cross a process boundary (the sandbox workers pickle them), so they stay plain
frozen dataclasses and exceptions with picklable arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "para", "code", "table"]


@dataclass(frozen=True, slots=True)
class Block:
    """One structural unit of a document: a heading, a paragraph, a code block, a table row group.

    `page` is 1-based for paged formats (PDF pages, PPTX slides, XLSX sheets numbered in order),
    None otherwise. `level` is the heading level (1 = top) for headings, 0 otherwise.
    """

    text: str
    kind: BlockKind = "para"
    level: int = 0
    page: int | None = None


@dataclass(frozen=True, slots=True)
class Extracted:
    blocks: tuple[Block, ...]
    mime: str
    title: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def char_count(self) -> int:
        return sum(len(b.text) for b in self.blocks)


# Why a file could not be indexed. `status` is what the documents table records:
# "failed" means something is wrong with the file or the parser (the user may act on it);
# "skipped" means the file is fine but has nothing we can index (or is deliberately left out).
ERROR_KINDS: dict[str, tuple[str, bool]] = {
    # kind: (status, permanent)  permanent = retrying without a change to the file will not help
    "encrypted": ("failed", True),
    "corrupt": ("failed", True),
    "binary": ("failed", True),
    "unsupported": ("skipped", True),
    "empty": ("skipped", True),
    "no_text": ("skipped", True),
    "too_large": ("skipped", True),
    "generated": ("skipped", True),  # minified code, search indexes, lock files, libraries
    # Not permanent: a timeout or a memory kill under load, a parser crash, an I/O error may
    # pass. These are retried on later passes (MAX_RETRIES times for one version of the file)
    # and never remove a previously indexed version.
    "unreadable": ("failed", False),
    "vanished": ("skipped", False),
    "timeout": ("failed", False),
    "crashed": ("failed", False),
    "memory": ("failed", False),
    "internal": ("failed", False),
    "changing": ("failed", False),
}


class ExtractionError(Exception):
    """A file could not be turned into text. `reason` is written for a person, not a developer."""

    def __init__(self, kind: str, reason: str) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown extraction error kind {kind!r}")
        super().__init__(kind, reason)
        self.kind = kind
        self.reason = reason

    @property
    def status(self) -> str:
        return ERROR_KINDS[self.kind][0]

    @property
    def permanent(self) -> bool:
        return ERROR_KINDS[self.kind][1]

    def __str__(self) -> str:
        return self.reason
