"""Sync state: a small SQLite (WAL) file beside the index.

It holds a mirror of the documents table's bookkeeping columns (what change detection needs) and
the run journal. The LanceDB documents table stays the source of truth: the mirror records the
table version it reflects, and is rebuilt from the table whenever that version moved without us
(a crash between the LanceDB commit and the mirror update, a restore, another tool). This lets a
re-sync that finds nothing changed answer from SQLite alone, without loading LanceDB at all.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.models import UNSUPPORTED_KINDS, FailedFile, KnownDocument
from app.paths import STATE_DB_NAME, local_index_folder

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    doc_uid TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    native_id TEXT NOT NULL,
    uri TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    mime TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,
    version_token TEXT NOT NULL DEFAULT '',
    content_hash TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    chunk_count INTEGER NOT NULL DEFAULT 0,
    indexed_at REAL NOT NULL DEFAULT 0,
    scanned_at_ns INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS docs_source_native ON docs(source_id, native_id);
-- Covers the token scan of change detection, so it reads only this index.
CREATE INDEX IF NOT EXISTS docs_tokens
    ON docs(source_id, native_id, version_token, scanned_at_ns, status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,
    report TEXT
);
-- Files whose current version could not be read for a reason that may pass (a timeout under
-- load, a crashed parser, an I/O error): retried on later passes, a bounded number of times,
-- while the previous good version (if any) stays in the index. `gave_up` = 1 once the retries
-- are spent: then the file waits until it changes (`token` moves) or the user asks to retry.
CREATE TABLE IF NOT EXISTS file_failures (
    doc_uid TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    native_id TEXT NOT NULL,
    uri TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    token TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 1,
    gave_up INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
"""

DOC_COLUMNS = ("doc_uid", "source_id", "native_id", "uri", "title", "mime", "size",
               "version_token", "content_hash", "status", "error", "chunk_count", "indexed_at",
               "scanned_at_ns", "kind")


def error_kind(metadata: Any) -> str:
    """The `error_kind` of a documents-table row's metadata (a JSON string or a dict)."""
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata or "{}")
        except ValueError:
            return ""
    return str(metadata.get("error_kind", "")) if isinstance(metadata, dict) else ""


class KnownDocs(Mapping[str, KnownDocument]):
    """native_id → what we know of a source's documents, read lazily.

    Change detection looks at every document's token, but at the rest of a row only for the
    few that changed; on a 100,000-file source, building a full record per file would cost
    more than the whole folder scan. `quick()` serves the token path from plain tuples.
    """

    def __init__(self, state: SyncState, source_id: str) -> None:
        self._state = state
        self._source_id = source_id
        self._quick: dict[str, tuple[str, str, int, str]] = {
            r[0]: r for r in state._db.execute(
                "SELECT native_id, version_token, scanned_at_ns, status FROM docs "
                "WHERE source_id=?", (source_id,))}
        self._full: dict[str, KnownDocument] = {}
        # native_id -> the token at which its retries were spent: unchanged until it moves.
        self.given_up: dict[str, str] = {
            r[0]: r[1] for r in state._db.execute(
                "SELECT native_id, token FROM file_failures WHERE source_id=? AND gave_up=1",
                (source_id,))}

    def quick(self, native_id: str) -> tuple[str, str, int, str] | None:
        """(native_id, version_token, scanned_at_ns, status), or None for an unknown document."""
        return self._quick.get(native_id)

    @property
    def quick_rows(self) -> Mapping[str, tuple[str, str, int, str]]:
        return self._quick

    def load(self, native_ids: Iterable[str]) -> dict[str, KnownDocument]:
        missing = [n for n in native_ids if n not in self._full and n in self._quick]
        if missing:
            self._full.update(self._state._known_rows(self._source_id, missing))
        return {n: self._full[n] for n in native_ids if n in self._full}

    def __getitem__(self, native_id: str) -> KnownDocument:
        if native_id not in self._full:
            if native_id not in self._quick:
                raise KeyError(native_id)
            self.load([native_id])
        return self._full[native_id]

    def __contains__(self, native_id: object) -> bool:
        return native_id in self._quick

    def __iter__(self) -> Iterator[str]:
        return iter(self._quick)

    def __len__(self) -> int:
        return len(self._quick)


@dataclass(frozen=True, slots=True)
class FileFailure:
    """A failure that may pass, as recorded after a commit (see `file_failures`)."""

    doc_uid: str
    source_id: str
    native_id: str
    uri: str
    kind: str
    reason: str
    token: str
    attempts: int
    gave_up: bool


def bucket(status: str, kind: str) -> str:
    """Which count a documents-table row falls in: indexed, failed, skipped or unsupported."""
    if status == "skipped" and kind in UNSUPPORTED_KINDS:
        return "unsupported"
    return status if status in ("indexed", "failed", "skipped") else "failed"


class SyncState:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used from one thread at a time (the sync thread); the service guards it.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk when it returns. With NORMAL a power cut can drop the last
        # transactions, among them the run-journal row or the "dirty" mark that triggers repair.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(docs)")}
        if "kind" not in columns:  # a state from before `kind`: its skipped rows count as such
            with suppress(sqlite3.OperationalError):  # another process added it just now
                self._db.execute("ALTER TABLE docs ADD COLUMN kind TEXT NOT NULL DEFAULT ''")

    @classmethod
    def open(cls, state_dir: Path) -> SyncState:
        return cls(Path(state_dir) / STATE_DB_NAME)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SyncState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @property
    def mirrored_version(self) -> str | None:
        """Fingerprint of the documents-table version this mirror reflects."""
        return self.get_meta("documents_version")

    # -- reads ----------------------------------------------------------------------------------

    def known(self, source_id: str) -> KnownDocs:
        return KnownDocs(self, source_id)

    def _known_rows(self, source_id: str, native_ids: Iterable[str]) -> dict[str, KnownDocument]:
        out: dict[str, KnownDocument] = {}
        ids = list(native_ids)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = ",".join("?" * len(part))
            for r in self._db.execute(
                "SELECT doc_uid, native_id, version_token, content_hash, status, size, "
                f"scanned_at_ns, uri, error FROM docs WHERE source_id=? AND native_id IN ({q})",
                (source_id, *part)):
                out[r[1]] = KnownDocument(*r)
        return out

    def failed(self, source_id: str | None = None) -> list[FailedFile]:
        """Every file that is not indexed as it is now: failed, skipped and unsupported rows
        (`status` is the count it falls in, see `bucket`), and indexed files whose newer
        version could not be read (their previous version is kept)."""
        where, args = ("", ()) if not source_id else (" AND d.source_id=?", (source_id,))
        rows = [
            FailedFile(uid, sid, uri, bucket(status, kind), error, at, False,
                       retrying is not None and not gave_up)
            for uid, sid, uri, status, kind, error, at, retrying, gave_up in self._db.execute(
                "SELECT d.doc_uid, d.source_id, d.uri, d.status, d.kind, d.error, d.indexed_at, "
                "f.doc_uid, f.gave_up FROM docs d LEFT JOIN file_failures f "
                "ON f.doc_uid = d.doc_uid WHERE d.status != 'indexed'" + where, args)]
        for uid, sid, uri, reason, at, gave_up in self._db.execute(
                "SELECT f.doc_uid, f.source_id, d.uri, f.reason, f.updated_at, f.gave_up "
                "FROM file_failures f JOIN docs d ON d.doc_uid = f.doc_uid "
                "WHERE d.status = 'indexed'" + where, args):
            rows.append(FailedFile(uid, sid, uri, "failed", reason, at, True, not gave_up))
        rows.sort(key=lambda f: (f.source_id, f.uri))
        return rows

    def file_failures(self, doc_uids: Iterable[str]) -> dict[str, FileFailure]:
        out: dict[str, FileFailure] = {}
        ids = list(doc_uids)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = ",".join("?" * len(part))
            for r in self._db.execute(
                    "SELECT doc_uid, source_id, native_id, uri, kind, reason, token, attempts, "
                    f"gave_up FROM file_failures WHERE doc_uid IN ({q})", part):
                out[r[0]] = FileFailure(*r[:8], bool(r[8]))
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        """Per source: indexed, failed, skipped and unsupported documents and chunks (the rows
        app.models.Counts is made of). An indexed file whose newer version failed counts as
        indexed (it is searchable) and as failed (the ledger lists it), so these numbers match
        `failed()` and the documents table. A skipped row of a type the app does not read
        counts as unsupported, not skipped."""
        out: dict[str, dict[str, int]] = {}

        def row(sid: str) -> dict[str, int]:
            return out.setdefault(sid, {"indexed": 0, "failed": 0, "skipped": 0,
                                        "unsupported": 0, "chunks": 0})

        for sid, status, kind, n, chunks in self._db.execute(
            "SELECT source_id, status, kind, COUNT(*), SUM(chunk_count) FROM docs "
            "GROUP BY source_id, status, kind"):
            d = row(sid)
            d[bucket(status, kind)] += n
            d["chunks"] += chunks or 0
        for sid, n in self._db.execute(
                "SELECT f.source_id, COUNT(*) FROM file_failures f JOIN docs d "
                "ON d.doc_uid = f.doc_uid WHERE d.status = 'indexed' GROUP BY f.source_id"):
            row(sid)["failed"] += n
        return out

    def bucket_counts(self, doc_uids: Iterable[str]) -> dict[str, dict[str, int]]:
        """Per source, how many of these documents are in each count of `counts()` that the
        ledger lists (failed, skipped, unsupported): the files a person chose to ignore."""
        out: dict[str, dict[str, int]] = {}
        ids = list(doc_uids)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = ",".join("?" * len(part))
            for sid, status, kind, failing in self._db.execute(
                    "SELECT d.source_id, d.status, d.kind, f.doc_uid FROM docs d LEFT JOIN "
                    f"file_failures f ON f.doc_uid = d.doc_uid WHERE d.doc_uid IN ({q})", part):
                if status == "indexed" and failing is None:
                    continue  # indexed as it is now: nothing to hide
                key = "failed" if status == "indexed" else bucket(status, kind)
                d = out.setdefault(sid, {})
                d[key] = d.get(key, 0) + 1
        return out

    def last_runs(self) -> dict[str, dict[str, Any]]:
        """The latest pass of each source: when, how it ended, and the problems it reported."""
        out: dict[str, dict[str, Any]] = {}
        for sid, started, finished, outcome, report in self._db.execute(
            "SELECT source_id, started_at, finished_at, outcome, report FROM runs "
            "WHERE run_id IN (SELECT MAX(run_id) FROM runs GROUP BY source_id)"):
            problems: list[str] = []
            data: dict[str, Any] = {}
            if report:
                with suppress(ValueError):
                    data = json.loads(report)
                    problems = list(data.get("problems", []))
            out[sid] = {"started_at": started, "finished_at": finished, "outcome": outcome,
                        "problems": problems, "error": data.get("error", ""),
                        "maintenance_errors": list(data.get("maintenance_errors", []))}
        return out

    def maintenance_errors(self) -> dict[str, Any]:
        """What the last index upkeep could not do ({} when it all worked)."""
        with suppress(ValueError, TypeError):
            data = json.loads(self.get_meta("maintenance") or "{}")
            if isinstance(data, dict) and data.get("errors"):
                return data
        return {}

    # -- writes ---------------------------------------------------------------------------------

    def apply_commit(
        self, rows: Iterable[Mapping[str, Any]], removed: Iterable[str], version: str,
        *, failures: Iterable[FileFailure] = (), resolved: Iterable[str] = (),
    ) -> None:
        """Mirror one LanceDB commit: upsert rows, drop removed doc_uids, record the version;
        record failures that may pass, and forget those of documents now indexed (`resolved`)
        or removed."""
        removed = list(removed)
        with self._tx() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO docs({','.join(DOC_COLUMNS)}) "
                f"VALUES ({','.join('?' * len(DOC_COLUMNS))})",
                [tuple(r[c] for c in DOC_COLUMNS) for r in rows],
            )
            db.executemany("DELETE FROM docs WHERE doc_uid=?", [(u,) for u in removed])
            db.executemany("DELETE FROM file_failures WHERE doc_uid=?",
                           [(u,) for u in (*removed, *resolved)])
            now = time.time()
            db.executemany(
                "INSERT OR REPLACE INTO file_failures(doc_uid, source_id, native_id, uri, kind, "
                "reason, token, attempts, gave_up, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(f.doc_uid, f.source_id, f.native_id, f.uri, f.kind, f.reason, f.token,
                  f.attempts, int(f.gave_up), now) for f in failures])
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('documents_version', ?)",
                       (version,))

    def set_mirrored_version(self, version: str) -> None:
        """The documents table moved without a change to its rows (maintenance rewrote it):
        the mirror still reflects it."""
        self.set_meta("documents_version", version)

    def mark_scanned(self, updates: Iterable[tuple[str, int]]) -> None:
        """Record that (doc_uid) was seen unchanged at scanned_at_ns: ends its 'racy' window."""
        with self._tx() as db:
            db.executemany("UPDATE docs SET scanned_at_ns=? WHERE doc_uid=?",
                           [(ns, uid) for uid, ns in updates])

    def forget_tokens(self, doc_uids: Iterable[str]) -> None:
        """Make the next pass redo these documents (a mirror-only change: it can only add work),
        with a fresh budget of retries."""
        with self._tx() as db:
            db.executemany("UPDATE docs SET version_token='' WHERE doc_uid=?",
                           [(u,) for u in doc_uids])
            db.executemany("DELETE FROM file_failures WHERE doc_uid=?", [(u,) for u in doc_uids])

    def rebuild(self, rows: Iterable[Mapping[str, Any]], version: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM docs")
            db.executemany(
                f"INSERT INTO docs({','.join(DOC_COLUMNS)}) "
                f"VALUES ({','.join('?' * len(DOC_COLUMNS))})",
                [tuple(r[c] for c in DOC_COLUMNS) for r in rows],
            )
            db.execute("DELETE FROM file_failures WHERE doc_uid NOT IN (SELECT doc_uid FROM docs)")
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('documents_version', ?)",
                       (version,))

    def mirror_rows(self) -> dict[str, dict[str, Any]]:
        """doc_uid -> the mirror's row (for `lancedb-sync check`)."""
        cur = self._db.execute(f"SELECT {','.join(DOC_COLUMNS)} FROM docs")
        return {r[0]: dict(zip(DOC_COLUMNS, r, strict=True)) for r in cur}

    # -- the dirty mark ---------------------------------------------------------------------------

    def mark_dirty(self) -> None:
        """Set before an operation's first write to the index; cleared only when it ends well.
        Whatever stops it in between (an error, a full disk, a kill) leaves the mark, and the
        next writer repairs before it writes anything."""
        self.set_meta("dirty", "1")

    def mark_clean(self, chunks_version: str | None = None) -> None:
        """No operation is unfinished; `chunks_version` is the chunks table's version as this
        writer left it (a later change by anything else makes the next writer check)."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('dirty', '0')")
            if chunks_version is not None:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES "
                           "('chunks_version', ?)", (chunks_version,))

    def needs_repair(self) -> bool:
        return self.get_meta("dirty") == "1" or self.unfinished_runs() > 0

    # -- run journal ----------------------------------------------------------------------------

    def begin_run(self, source_id: str) -> int:
        cur = self._db.execute("INSERT INTO runs(source_id, started_at) VALUES (?, ?)",
                               (source_id, time.time()))
        self._db.execute("DELETE FROM runs WHERE run_id < ? - 1000", (cur.lastrowid,))
        return int(cur.lastrowid or 0)

    def end_run(self, run_id: int, outcome: str, report_json: str) -> None:
        self._db.execute("UPDATE runs SET finished_at=?, outcome=?, report=? WHERE run_id=?",
                         (time.time(), outcome, report_json, run_id))

    def unfinished_runs(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM runs WHERE finished_at IS NULL").fetchone()
        return int(row[0])

    def close_unfinished_runs(self, outcome: str) -> None:
        self._db.execute("UPDATE runs SET finished_at=?, outcome=? WHERE finished_at IS NULL",
                         (time.time(), outcome))


def read_meta(db_path: Path, key: str) -> str | None:
    """One value of the state's meta table, read-only, without taking part in its writes (a
    backup reads the model id while the service may be writing). None when absent or
    unreadable."""
    if not db_path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def table_version_fingerprint(index_uri: str, table: str) -> str | None:
    """The latest version of a Lance table on local disk, read from its `_versions` folder.

    Lance names manifests either `N.manifest` or, with v2 paths, `(u64::MAX - N).manifest`; both are
    handled. Returns None if the table does not exist or is not on a local path (then callers fall
    back to asking LanceDB).
    """
    base = local_index_folder(index_uri)
    if base is None:
        return None
    versions_dir = os.path.join(base, f"{table}.lance", "_versions")
    try:
        names = os.listdir(versions_dir)
    except OSError:
        return None
    best = -1
    for name in names:
        if not name.endswith(".manifest"):
            continue
        stem = name[:-9]
        if not stem.isdigit():
            continue
        n = int(stem)
        version = (2**64 - 1 - n) if len(stem) == 20 and n > 2**63 else n
        best = max(best, version)
    return str(best) if best >= 0 else None
