"""Change detection: a listing plus what we know → what to do.

`ChangeDetector.diff` is pure apart from the hasher it is given, so every rule here is tested
without touching LanceDB. Rules:
- same version token (size, mtime_ns, inode for local files) and not "racy" → unchanged, no I/O;
- token moved, or racy (modified within the window of our last look at it, where a same-size edit
  could hide behind an equal timestamp) → hash the content; equal hash → touched (only the token is
  updated), else modified;
- gone from a complete listing → deleted; gone from a root or folder that could not be listed →
  kept, never deleted;
- a new item whose content hash equals a deleted document's → moved: its chunks are carried over
  and nothing is re-extracted or re-embedded;
- a file whose retries are spent (see `file_failures` in the sync state) is unchanged until its
  token moves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from app.models import KnownDocument, Listing, SourceItem

RACY_WINDOW_NS = 2_000_000_000


@dataclass(slots=True)
class ChangeSet:
    added: list[SourceItem] = field(default_factory=list)
    modified: list[tuple[SourceItem, KnownDocument]] = field(default_factory=list)
    deleted: list[KnownDocument] = field(default_factory=list)
    moved: list[tuple[SourceItem, KnownDocument]] = field(default_factory=list)
    touched: list[tuple[SourceItem, KnownDocument]] = field(default_factory=list)
    unchanged: int = 0
    settled: list[str] = field(default_factory=list)  # racy docs verified unchanged
    hashes: dict[str, str] = field(default_factory=dict)  # native_id → content hash computed

    @property
    def empty(self) -> bool:
        return not (self.added or self.modified or self.deleted or self.moved or self.touched)


def under_any(path: str, prefixes: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip(os.sep) + os.sep) for p in prefixes)


def _quick_rows(known: Mapping[str, KnownDocument]) -> Mapping[str, tuple[str, str, int, str]]:
    """native_id → (native_id, token, scanned_at_ns, status): the state's own fast rows, or
    built from full records (tests, callers holding plain dicts)."""
    rows = getattr(known, "quick_rows", None)
    if rows is not None:
        return rows
    return {n: (n, d.version_token, d.scanned_at_ns, d.status) for n, d in known.items()}


class ChangeDetector:
    def __init__(self, hasher: Callable[[SourceItem], str | None] | None,
                 racy_window_ns: int = RACY_WINDOW_NS) -> None:
        # hasher: content hash of an item, None if it cannot be read now. None disables hashing
        # (CHECKSUM_ENABLED=false): a moved token then always means modified.
        self.hasher = hasher
        self.racy_window_ns = racy_window_ns

    def diff(self, listing: Listing, known: Mapping[str, KnownDocument]) -> ChangeSet:
        changes = ChangeSet()
        seen: set[str] = set()
        quick = _quick_rows(known).get
        # Files whose retries are spent wait, unchanged, until their token moves.
        given_up = getattr(known, "given_up", None) or {}
        window = self.racy_window_ns
        for item in listing.items:
            native_id = item.native_id
            if native_id in seen:
                continue  # listed twice (overlapping hints): one document, one change
            seen.add(native_id)
            q = quick(native_id)
            if q is None:
                changes.added.append(item)
                continue
            _, token, scanned_at_ns, status = q
            if given_up and given_up.get(native_id) == item.version_token:
                changes.unchanged += 1
                continue
            if token == item.version_token and token:
                if status != "indexed":
                    # A file we already failed on, unchanged since: do not retry every pass.
                    changes.unchanged += 1
                    continue
                if item.mtime_ns < scanned_at_ns - window:
                    changes.unchanged += 1
                    continue
            doc = known[native_id]
            digest = self._hash(item, changes)
            if digest is not None and digest == doc.content_hash and doc.status == "indexed":
                if doc.version_token == item.version_token:
                    changes.unchanged += 1
                    changes.settled.append(doc.doc_uid)
                else:
                    changes.touched.append((item, doc))
            else:
                changes.modified.append((item, doc))
        complete = list(listing.complete_roots)
        blocked = [p for p, _ in listing.problems]
        gone = [n for n in known if n not in seen
                and under_any(n, complete) and not under_any(n, blocked)]
        if gone:
            loader = getattr(known, "load", None)
            docs = loader(gone) if loader else {n: known[n] for n in gone}
            changes.deleted.extend(docs[n] for n in gone if n in docs)
        if changes.deleted and changes.added and self.hasher is not None:
            self._pair_moves(changes)
        return changes

    def _hash(self, item: SourceItem, changes: ChangeSet) -> str | None:
        if self.hasher is None:
            return None
        digest = self.hasher(item)
        if digest is not None:
            changes.hashes[item.native_id] = digest
        return digest

    def _pair_moves(self, changes: ChangeSet) -> None:
        by_hash: dict[str, list[KnownDocument]] = {}
        for doc in changes.deleted:
            if doc.status == "indexed" and doc.content_hash:
                by_hash.setdefault(doc.content_hash, []).append(doc)
        if not by_hash:
            return
        sizes = {d.size for docs in by_hash.values() for d in docs}
        still_added: list[SourceItem] = []
        for item in changes.added:
            # Only a new file of a deleted file's exact size can be that file moved.
            digest = self._hash(item, changes) if item.size in sizes else None
            candidates = by_hash.get(digest or "")
            if candidates:
                changes.moved.append((item, candidates.pop()))
                if not candidates:
                    del by_hash[digest]  # type: ignore[arg-type]
            else:
                still_added.append(item)
        moved_uids = {doc.doc_uid for _, doc in changes.moved}
        changes.added = still_added
        changes.deleted = [d for d in changes.deleted if d.doc_uid not in moved_uids]
