"""The small data types that cross layers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple


class SourceType(StrEnum):
    LOCAL_FILESYSTEM = "local"
    NOTION = "notion"
    DROPBOX = "dropbox"
    GOOGLE_DRIVE = "gdrive"
    S3 = "s3"


@dataclass(frozen=True)
class SourceConfig:
    """One configured source, as the seed names it.

    For a local source `config` holds `watch_paths` (folders), `file_patterns` (globs; default:
    every supported format), `exclude_patterns` (.gitignore-style, relative to the folder).
    """

    source_type: SourceType
    source_id: str
    config: Mapping[str, Any] = field(default_factory=dict)
    poll_interval: int | None = None
    enabled: bool = True


def file_uri(path: str) -> str:
    """`file://` URI of an absolute path (what Path.as_uri() returns, faster on POSIX)."""
    if os.name == "posix":
        from urllib.parse import quote

        return "file://" + quote(os.fsencode(path))
    return Path(path).as_uri()


class SourceItem(NamedTuple):
    """One file (or page, or object) as a source lists it, before anything is read.

    Local sources leave `uri` empty while listing (it costs more than the stat on a big tree);
    `resolved_uri` fills it in for the few items that get written.
    """

    native_id: str
    uri: str
    name: str
    size: int
    mtime_ns: int
    version_token: str
    path: str | None = None  # local path when the bytes can be read from disk
    # "file", or what else sits at that path ("fifo", "socket", "device"): never opened, it is
    # recorded as skipped with the reason.
    kind: str = "file"

    @property
    def resolved_uri(self) -> str:
        return self.uri or (file_uri(self.path) if self.path else "")


@dataclass(frozen=True, slots=True)
class Listing:
    """What a source listed. `complete_roots` are the roots that were listed in full; deletions are
    only inferred under them. `problems` are roots that could not be listed, with the reason."""

    items: tuple[SourceItem, ...]
    complete_roots: tuple[str, ...]
    problems: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class KnownDocument:
    """What the sync state remembers of one document (a mirror of its documents-table row)."""

    doc_uid: str
    native_id: str
    version_token: str
    content_hash: str
    status: str
    size: int
    scanned_at_ns: int
    uri: str = ""
    error: str = ""


@dataclass(slots=True)
class SyncReport:
    source_id: str
    added: int = 0
    modified: int = 0
    deleted: int = 0
    moved: int = 0
    unchanged: int = 0
    touched: int = 0
    failed: int = 0
    skipped: int = 0
    unsupported: int = 0  # file types the app does not read (not in `skipped`)
    chunks_written: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    retrying: int = 0  # failures that may pass: tried again on a later pass
    problems: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (uri, reason)
    retry_paths: list[str] = field(default_factory=list)  # local paths of `retrying` files
    maintenance_errors: list[str] = field(default_factory=list)
    error: str = ""  # why the pass stopped, when it ended in an error

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted or self.moved or self.failed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "added": self.added,
            "modified": self.modified,
            "deleted": self.deleted,
            "moved": self.moved,
            "unchanged": self.unchanged,
            "touched": self.touched,
            "failed": self.failed,
            "skipped": self.skipped,
            "unsupported": self.unsupported,
            "chunks_written": self.chunks_written,
            "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3),
            "cancelled": self.cancelled,
            "retrying": self.retrying,
            "problems": list(self.problems),
            "failures": [{"uri": u, "reason": r} for u, r in self.failures],
            "maintenance_errors": list(self.maintenance_errors),
            **({"error": self.error} if self.error else {}),
        }


@dataclass(slots=True)
class Progress:
    """Where a pass is. `done` counts documents committed (searchable), `parsed` those read so
    far; rate and ETA follow `done`, since embedding, not parsing, sets the pace."""

    source_id: str
    phase: str  # scanning | indexing | maintaining | done
    done: int = 0
    total: int = 0
    failed: int = 0
    current: str = ""
    rate: float = 0.0  # documents committed per second
    eta_s: float | None = None
    parsed: int = 0
    skipped: int = 0  # read and left out by design (empty, no text, unsupported, generated)


# Error kinds of skipped rows that mean "a kind of file we do not read" rather than "this file
# has nothing to index" (app/core/extract/types.py names every kind).
UNSUPPORTED_KINDS = frozenset({"unsupported"})


@dataclass(frozen=True, slots=True)
class Counts:
    """The one set of counts every face shows (tray, windows, CLI, API), for one source or a
    sum of them. Computed in one place (`Counts.of`), from the sync state's rows, the files the
    person chose to ignore, and the pass under way.

    - `indexed`: documents searchable now.
    - `in_progress`: files the pass under way has yet to commit (0 when idle).
    - `failed`: files that could not be read and that a person can act on (damaged, encrypted,
      unreadable, timed out); an indexed file whose newer version failed counts here too.
    - `skipped`: left out by design: empty, no text (a scanned PDF, an image-only file), too
      large, generated (minified code, search indexes, lock files, vendored libraries).
    - `unsupported`: file types the app does not read (images, archives, binaries).
    - `ignored`: failed or skipped files the person chose to hide from the list.
    """

    indexed: int = 0
    in_progress: int = 0
    failed: int = 0
    skipped: int = 0
    unsupported: int = 0
    ignored: int = 0
    chunks: int = 0

    @property
    def needs_attention(self) -> bool:
        """Only failures a person can act on raise an alarm; skipped files never do."""
        return self.failed > 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, ...]:
        return (self.indexed, self.in_progress, self.failed, self.skipped, self.unsupported,
                self.ignored, self.chunks)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def total(cls, many: Any) -> Counts:
        out = cls()
        for c in many:
            out = out + c
        return out

    @classmethod
    def of(cls, rows: Mapping[str, int] | None, *, ignored: Mapping[str, int] | None = None,
           pass_total: int = 0, pass_done: int = 0) -> Counts:
        """One source's counts: `rows` as SyncState.counts() gives them (indexed, failed,
        skipped, unsupported, chunks), `ignored` the ignored files by the bucket they were in,
        and the pass under way (its total and committed files)."""
        rows = rows or {}
        ignored = ignored or {}

        def left(key: str) -> int:
            return max(0, int(rows.get(key, 0)) - int(ignored.get(key, 0)))

        return cls(indexed=int(rows.get("indexed", 0)),
                   in_progress=max(0, pass_total - pass_done),
                   failed=left("failed"), skipped=left("skipped"),
                   unsupported=left("unsupported"), ignored=sum(ignored.values()),
                   chunks=int(rows.get("chunks", 0)))


@dataclass(frozen=True, slots=True)
class FailedFile:
    """One entry of the failed-files ledger. `previous_kept`: the file's current version could
    not be read, but an earlier version is indexed and stays searchable. `retrying`: the
    failure may pass and the file is tried again on later passes."""

    doc_uid: str
    source_id: str
    uri: str
    status: str  # failed | skipped | unsupported (the count it falls in, see Counts)
    error: str
    indexed_at: float
    previous_kept: bool = False
    retrying: bool = False


@dataclass(frozen=True, slots=True)
class SearchFilters:
    source_id: str | None = None
    file_type: str | None = None  # extension ("pdf") or mime prefix ("text/")
    path_prefix: str | None = None
    modified_after: datetime | None = None

    @property
    def needs_documents(self) -> bool:
        return bool(self.file_type or self.path_prefix or self.modified_after)


@dataclass(frozen=True, slots=True)
class SearchHit:
    doc_uid: str
    source_id: str
    title: str
    uri: str
    snippet: str
    page: int | None
    heading: str
    score: float
    chunk_id: str
    mime: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
