"""What a consistent index is, and how far an index is from it.

`inspect_index` is pure: it takes the documents' bookkeeping columns, the chunks' key columns and
(optionally) the sync state's mirror, and lists every way they break the commit protocol's
promises (docs/data-model.md):

- each document row once; each chunk id once;
- every chunk belongs to a document row whose status is `indexed` and whose `content_hash` is the
  chunk's (otherwise it is an orphan, or a piece of a version that was never committed);
- an indexed document has exactly `chunk_count` chunks, and at least one;
- the sync state's mirror holds the same documents with the same status, hash and count.

`Store.repair` turns a report into fixes; `lancedb-sync check` prints it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# How many ids of each kind a report carries by name (the counts are always complete).
SAMPLE = 20


@dataclass(slots=True)
class MirrorReport:
    """Differences between the sync state's mirror and the documents table."""

    version_behind: bool = False  # the mirror reflects an older table version
    missing: list[str] = field(default_factory=list)  # in the table, not in the mirror
    extra: list[str] = field(default_factory=list)  # in the mirror, not in the table
    different: list[str] = field(default_factory=list)  # status, hash or count differ

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.different)


@dataclass(slots=True)
class IntegrityReport:
    documents: int = 0
    chunks: int = 0
    duplicate_documents: list[str] = field(default_factory=list)
    duplicate_chunks: dict[str, int] = field(default_factory=dict)  # chunk_id -> copies
    duplicate_chunk_docs: set[str] = field(default_factory=set)
    orphan_chunks: int = 0  # chunks whose document has no row
    orphan_documents: list[str] = field(default_factory=list)
    unindexed_chunks: int = 0  # chunks of a document that is failed or skipped
    unindexed_documents: list[str] = field(default_factory=list)
    hash_mismatch: list[str] = field(default_factory=list)
    count_mismatch: list[str] = field(default_factory=list)
    without_chunks: list[str] = field(default_factory=list)
    mirror: MirrorReport | None = None

    @property
    def index_clean(self) -> bool:
        return not (self.duplicate_documents or self.duplicate_chunks or self.orphan_chunks
                    or self.unindexed_chunks or self.hash_mismatch or self.count_mismatch
                    or self.without_chunks)

    @property
    def clean(self) -> bool:
        return self.index_clean and (self.mirror is None or self.mirror.clean)

    @property
    def redo(self) -> set[str]:
        """Documents the next pass must extract again, even if their bytes did not change."""
        return (set(self.duplicate_documents) | self.duplicate_chunk_docs
                | set(self.unindexed_documents) | set(self.hash_mismatch)
                | set(self.count_mismatch) | set(self.without_chunks))

    def as_dict(self) -> dict[str, Any]:
        def ids(values: Iterable[str]) -> dict[str, Any]:
            values = sorted(values)
            return {"count": len(values), "examples": values[:SAMPLE]}

        out: dict[str, Any] = {
            "clean": self.clean, "documents": self.documents, "chunks": self.chunks,
            "duplicate_documents": ids(self.duplicate_documents),
            "duplicate_chunk_ids": {
                "count": len(self.duplicate_chunks),
                "extra_rows": sum(n - 1 for n in self.duplicate_chunks.values()),
                "examples": sorted(self.duplicate_chunks)[:SAMPLE]},
            "orphan_chunks": {"count": self.orphan_chunks,
                              **_named(ids(self.orphan_documents))},
            "chunks_of_unindexed_documents": {"count": self.unindexed_chunks,
                                              **_named(ids(self.unindexed_documents))},
            "content_hash_mismatch": ids(self.hash_mismatch),
            "chunk_count_mismatch": ids(self.count_mismatch),
            "indexed_without_chunks": ids(self.without_chunks),
        }
        if self.mirror is not None:
            m = self.mirror
            out["mirror"] = {"clean": m.clean, "version_behind": m.version_behind,
                             "missing": ids(m.missing), "extra": ids(m.extra),
                             "different": ids(m.different)}
        return out

    def problems(self) -> list[str]:
        """One line per kind of problem, for people."""
        lines = []
        if self.duplicate_documents:
            lines.append(f"{len(self.duplicate_documents)} documents have more than one row")
        if self.duplicate_chunks:
            extra = sum(n - 1 for n in self.duplicate_chunks.values())
            lines.append(f"{len(self.duplicate_chunks)} chunk ids are stored more than once "
                         f"({extra} extra rows)")
        if self.orphan_chunks:
            lines.append(f"{self.orphan_chunks} chunks belong to no document "
                         f"({len(self.orphan_documents)} missing document rows)")
        if self.unindexed_chunks:
            lines.append(f"{self.unindexed_chunks} chunks belong to "
                         f"{len(self.unindexed_documents)} documents marked failed or skipped")
        if self.hash_mismatch:
            lines.append(f"{len(self.hash_mismatch)} documents have chunks of another version")
        if self.count_mismatch:
            lines.append(f"{len(self.count_mismatch)} documents have a different number of "
                         "chunks than their row says")
        if self.without_chunks:
            lines.append(f"{len(self.without_chunks)} indexed documents have no chunks")
        m = self.mirror
        if m is not None and not m.clean:
            parts = []
            if m.missing:
                parts.append(f"{len(m.missing)} documents missing")
            if m.extra:
                parts.append(f"{len(m.extra)} documents that are not in the index")
            if m.different:
                parts.append(f"{len(m.different)} documents that differ")
            lines.append("the sync state disagrees with the index: " + ", ".join(parts))
        return lines


def _named(d: dict[str, Any]) -> dict[str, Any]:
    return {"documents": d["count"], "examples": d["examples"]}


def inspect_index(
    docs: Mapping[str, list[Any]],
    chunks: Mapping[str, list[Any]],
    mirror: Mapping[str, Mapping[str, Any]] | None = None,
) -> IntegrityReport:
    """`docs`: columns doc_uid, status, content_hash, chunk_count (and version_token when a
    mirror is given); `chunks`: columns chunk_id, doc_uid, content_hash."""
    report = IntegrityReport(documents=len(docs["doc_uid"]), chunks=len(chunks["chunk_id"]))
    rows: dict[str, tuple[str, str, int]] = {}
    seen_docs: Counter[str] = Counter()
    for uid, status, chash, count in zip(docs["doc_uid"], docs["status"], docs["content_hash"],
                                         docs["chunk_count"], strict=True):
        seen_docs[uid] += 1
        rows[uid] = (status, chash or "", count or 0)
    report.duplicate_documents = sorted(u for u, n in seen_docs.items() if n > 1)

    ids = Counter(chunks["chunk_id"])
    report.duplicate_chunks = {cid: n for cid, n in ids.items() if n > 1}
    per_doc: Counter[str] = Counter()
    orphans: set[str] = set()
    unindexed: set[str] = set()
    mismatched: set[str] = set()
    dup_docs: set[str] = set()
    dups = report.duplicate_chunks
    for cid, uid, chash in zip(chunks["chunk_id"], chunks["doc_uid"], chunks["content_hash"],
                               strict=True):
        row = rows.get(uid)
        if row is None:
            report.orphan_chunks += 1
            orphans.add(uid)
            continue
        if row[0] != "indexed":
            report.unindexed_chunks += 1
            unindexed.add(uid)
            continue
        if dups and cid in dups:
            dup_docs.add(uid)
        per_doc[uid] += 1
        if row[1] != (chash or ""):
            mismatched.add(uid)
    report.orphan_documents = sorted(orphans)
    report.unindexed_documents = sorted(unindexed)
    report.hash_mismatch = sorted(mismatched)
    report.duplicate_chunk_docs = dup_docs
    for uid, (status, _h, count) in rows.items():
        if status != "indexed":
            continue
        have = per_doc.get(uid, 0)
        if have == 0:
            report.without_chunks.append(uid)
        elif have != count:
            report.count_mismatch.append(uid)
    report.without_chunks.sort()
    report.count_mismatch.sort()
    if mirror is not None:
        report.mirror = compare_mirror(rows, mirror)
    return report


def compare_mirror(rows: Mapping[str, tuple[str, str, int]],
                   mirror: Mapping[str, Mapping[str, Any]]) -> MirrorReport:
    m = MirrorReport()
    m.missing = sorted(set(rows) - set(mirror))
    m.extra = sorted(set(mirror) - set(rows))
    for uid, (status, chash, count) in rows.items():
        mine = mirror.get(uid)
        if mine is None:
            continue
        # A row flagged for redo carries an empty hash in the mirror on purpose.
        hash_ok = mine["content_hash"] in (chash, "")
        if mine["status"] != status or not hash_ok or (mine["chunk_count"] or 0) != count:
            m.different.append(uid)
    m.different.sort()
    return m
