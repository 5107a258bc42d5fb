"""One sync pass over one source: list → detect changes → extract → chunk → embed → commit.

`Indexer` owns the sync state and opens the heavy parts (LanceDB, the embedding model, the parser
workers) only when a pass has real work: a re-sync that finds nothing changed reads the folder
and the SQLite state, and nothing else.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.config import Settings
from app.core.chunking import Chunker
from app.core.detect import ChangeDetector, ChangeSet
from app.core.errors import one_line
from app.core.extract.types import Extracted, ExtractionError
from app.core.faults import fault
from app.core.hashing import chunk_id, hash_file, hash_text
from app.core.lock import IndexWriterLock
from app.core.model_switch import ModelChangeError, embedder_model_id, model_change_message
from app.core.state import FileFailure, SyncState, table_version_fingerprint
from app.models import KnownDocument, Progress, SourceConfig, SourceItem, SyncReport

if TYPE_CHECKING:
    from app.core.embedding import CachedEmbedder
    from app.core.extract.sandbox import ExtractorPool
    from app.core.store import Store

log = logging.getLogger(__name__)

BATCH_DOCS = 256
BATCH_CHUNKS = 4096
BATCH_SECONDS = 3.0
# Files handed to the parsers ahead of the embedder, so parsing goes on during a commit.
IN_FLIGHT = 256


@dataclass(slots=True)
class _Outcome:
    item: SourceItem
    known: KnownDocument | None
    digest: str
    extracted: Extracted | None = None
    error: ExtractionError | None = None
    chunks: list[Any] | None = None


@dataclass(slots=True)
class _Batch:
    outcomes: list[_Outcome] = field(default_factory=list)
    n_chunks: int = 0
    started: float = field(default_factory=time.monotonic)
    limit_seconds: float = BATCH_SECONDS


class _Tracker:
    """Counts of one pass, updated by the parsing loop and the writer thread, sent as Progress."""

    def __init__(self, source_id: str, total: int,
                 emit: Callable[[Progress], None]) -> None:
        self.source_id, self.total, self._emit = source_id, total, emit
        self.parsed = self.failed = self.committed = 0
        self.current = ""
        self.t0 = time.monotonic()
        self._first: tuple[float, int] | None = None  # (time, count) of the first commit
        self._lock = threading.Lock()

    def emit(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._first is None and self.committed:
                self._first = (now, self.committed)
            # Measure the rate from the first commit on: before it, start-up (imports, model
            # load) would make the estimate far too pessimistic.
            if self._first is not None and now - self._first[0] > 0.5:
                rate = (self.committed - self._first[1]) / (now - self._first[0])
            else:
                rate = self.committed / (now - self.t0) if now > self.t0 else 0.0
            eta = (self.total - self.committed) / rate if rate else None
            progress = Progress(self.source_id, "indexing", self.committed, self.total,
                                self.failed, self.current, rate, eta, self.parsed)
        self._emit(progress)


@dataclass(slots=True)
class _Prepared:
    docs: list[dict[str, Any]] = field(default_factory=list)
    cols: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in (
        "chunk_id", "doc_uid", "source_id", "ordinal", "text", "page", "heading",
        "char_start", "char_end", "text_hash", "content_hash")})
    replace: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    # Failures that may pass, decided on the writer thread (it owns the sync state):
    # (outcome, doc_uid, the row's common columns).
    transient: list[tuple[_Outcome, str, dict[str, Any]]] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)  # no longer failing
    vectors: Any = None
    embedded: int = 0


class _BatchPipeline:
    """Embed batch N+1 while batch N is written: two single-thread stages, in order.

    The tokenizer and LanceDB do their work outside the GIL, so on two cores the model and the
    store overlap instead of taking turns. At most `depth` batches are in flight; an error in
    either stage is raised in the caller's thread at the next `submit` or at `finish`.
    """

    def __init__(self, embed: Callable[[Any], None], write: Callable[[Any], None],
                 depth: int = 2, low_priority: bool = False) -> None:
        init = None
        if low_priority:
            from app.core.priority import lower_thread_priority

            init = lower_thread_priority
        self._embed_stage = ThreadPoolExecutor(1, thread_name_prefix="embed", initializer=init)
        self._write_stage = ThreadPoolExecutor(1, thread_name_prefix="write", initializer=init)
        self._embed, self._write = embed, write
        self._depth = depth
        self._inflight: list[Future[None]] = []
        # After one batch fails to commit, later batches are not written: the pass ends in that
        # error and the next one repairs before it writes (never a commit on top of a failure).
        self._failed = threading.Event()

    def submit(self, batch: Any) -> None:
        while len(self._inflight) >= self._depth:
            self._inflight.pop(0).result()
        embedded = self._embed_stage.submit(self._embed, batch)

        def write_after_embed() -> None:
            if self._failed.is_set():
                return
            try:
                embedded.result()
                self._write(batch)
            except BaseException:
                self._failed.set()
                raise

        self._inflight.append(self._write_stage.submit(write_after_embed))

    def finish(self) -> None:
        while self._inflight:
            self._inflight.pop(0).result()

    def close(self) -> None:
        # On an error elsewhere, let what was submitted finish (each batch is whole) but do not
        # raise a second error over the first.
        for fut in self._inflight:
            try:
                fut.result()
            except Exception:
                log.exception("a batch failed while another error was being handled")
        self._inflight.clear()
        self._embed_stage.shutdown()
        self._write_stage.shutdown()


def _mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _ts(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _doc_uid(source_id: str, native_id: str) -> str:
    return f"{source_id}:{native_id}"


class Indexer:
    """Runs sync passes for the configured sources against one index."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        sources: Callable[[SourceConfig, Settings], Any] | None = None,
    ) -> None:
        """`sources` builds a source object for a configured source (the service passes
        `app.sources.registry.make_source`); an indexer without it can repair, check, purge
        and clean up, but not run passes."""
        self.settings = settings
        self._make_source = sources
        _load_time_zones()
        self.on_progress = on_progress or (lambda p: None)
        self.cancel = cancel or threading.Event()
        self.state = SyncState.open(settings.state_dir)
        self.model_id = embedder_model_id(settings.embedder)
        self.chunker = Chunker(settings.chunk_chars, settings.chunk_overlap)
        self._store: Store | None = None
        self._embedder: CachedEmbedder | None = None
        self._pool: ExtractorPool | None = None
        self._lock = IndexWriterLock(settings.index_uri, settings.state_dir)
        try:
            self._lock.acquire()
        except BaseException:
            self.state.close()
            raise
        self._checked = False
        self._parts_lock = threading.RLock()
        self._warm: list[threading.Thread] | None = None
        self._store_lock = threading.Lock()
        self._model_ready = False

    # -- lazily opened parts ------------------------------------------------------------------

    @property
    def store(self) -> Store:
        with self._store_lock:
            if self._store is None:
                from app.core.store import Store

                self._store = Store(self.settings.index_uri, self.settings.documents_table,
                                    self.settings.chunks_table, model_id=self.model_id,
                                    dim=self._dim_for_new_tables())
            return self._store

    def _dim_for_new_tables(self) -> int:
        name, _, arg = self.settings.embedder.partition(":")
        if name == "wordllama":
            return int(arg or 256)
        return self.embedder.dim

    @property
    def embedder(self) -> CachedEmbedder:
        with self._parts_lock:
            if self._embedder is None:
                from app.core.embedding import CachedEmbedder, EmbeddingCache, make_embedder

                cache = EmbeddingCache(self.settings.paths.cache_dir / "embeddings.sqlite3")
                self._embedder = CachedEmbedder(
                    make_embedder(self.settings.embedder, self.settings.embed_url), cache)
            return self._embedder

    @property
    def pool(self) -> ExtractorPool:
        if self._pool is None:
            from app.core.extract.sandbox import ExtractorPool

            mem = self.settings.parse_memory_mb or None
            self._pool = ExtractorPool(
                workers=self.settings.max_concurrent_processing,
                time_limit_s=self.settings.parse_timeout,
                memory_limit_mb=mem,
                plugins=self.settings.extractor_plugins,
                low_priority=self.settings.low_priority,
                max_chars=int(self.settings.max_text_mb * 1_000_000),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._embedder is not None and self._embedder.cache is not None:
            self._embedder.cache.close()
        self.state.close()
        self._lock.release()

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- consistency --------------------------------------------------------------------------

    def ensure_consistent(self) -> None:
        """Before any write: repair what an interrupted or failed operation left behind, and
        make the SQLite mirror match the documents table.

        Runs at the start of every pass, not only the first: a pass that ended in an error
        (a full disk, a failed commit) leaves the state marked dirty, and the next write, in
        this process (the service's retry) or another (the next CLI run), repairs first.
        """
        dirty = self.state.needs_repair()
        remote = self.settings.index_dir is None
        if not dirty and remote and self._checked:
            return
        fingerprint = table_version_fingerprint(self.settings.index_uri,
                                                self.settings.documents_table)
        # The chunks table moving without us (another program, an old version's bug) is
        # checked too: appends on top of stray chunks are how duplicates are made.
        chunks_moved = self._chunks_fingerprint() != self.state.get_meta("chunks_version")
        if dirty or remote or chunks_moved or fingerprint != self.state.mirrored_version:
            # Whenever the mirror is rebuilt the index is checked too: we hold the writer
            # lock, so whatever is inconsistent now was left by an operation that did not end.
            report = self.store.repair(fault=fault)
            if dirty or report.orphan_chunks_deleted or report.documents_to_redo:
                log.warning("Repaired the index: %d orphan chunks removed, %d duplicate chunks "
                            "removed, %d documents to index again",
                            report.orphan_chunks_deleted, report.duplicate_chunks_removed,
                            len(report.documents_to_redo))
            self.rebuild_mirror(report.documents_to_redo)
            self.state.close_unfinished_runs("interrupted")
            self._mark_clean()
        for source_id in self._pending_purges():
            log.warning("finishing the interrupted removal of source %s", source_id)
            self._purge(source_id)
        self._checked = True

    def _chunks_fingerprint(self) -> str | None:
        return table_version_fingerprint(self.settings.index_uri, self.settings.chunks_table)

    def _mark_clean(self) -> None:
        chunks = self._chunks_fingerprint()
        state = self.state
        if state.get_meta("dirty") != "0" or state.get_meta("chunks_version") != chunks:
            state.mark_clean(chunks)

    def rebuild_mirror(self, redo: Iterable[str] = ()) -> None:
        """Reload the SQLite mirror from the documents table; `redo` documents get no token,
        so the next pass indexes them again."""
        redo = set(redo)
        store = self.store
        cols = ["doc_uid", "source_id", "native_id", "uri", "title", "mime", "size",
                "version_token", "content_hash", "status", "error", "chunk_count", "indexed_at"]
        table = store.document_rows(cols)
        rows = []
        for r in table.to_pylist():
            indexed = r["indexed_at"]
            r["indexed_at"] = indexed.timestamp() if indexed else 0.0
            r["scanned_at_ns"] = int(r["indexed_at"] * 1e9)
            if r["doc_uid"] in redo:
                # No token and no hash: the next pass extracts it again even if its bytes
                # did not change (a touched-only redo would leave it broken).
                r["version_token"] = ""
                r["content_hash"] = ""
            for k in ("uri", "title", "mime", "version_token", "content_hash", "error"):
                r[k] = r[k] or ""
            r["size"] = r["size"] or 0
            r["chunk_count"] = r["chunk_count"] or 0
            rows.append(r)
        self.state.rebuild(rows, str(store.documents_version))
        model, _dim = store.index_model
        if model:
            self.state.set_meta("index_model", model)

    def check_model(self) -> None:
        """Refuse to mix models in one index; say what switching would cost."""
        indexed_model = self.state.get_meta("index_model")
        if not indexed_model or indexed_model == self.model_id:
            return
        chunks = sum(c["chunks"] for c in self.state.counts().values())
        if chunks == 0:
            return
        raise ModelChangeError(model_change_message(indexed_model, self.model_id, chunks))

    # -- the pass -----------------------------------------------------------------------------

    def sync(self, sources: Sequence[SourceConfig]) -> list[SyncReport]:
        self.ensure_consistent()
        self.check_model()
        reports = []
        for source in sources:
            if source.enabled:
                report = self.sync_source(source)
                reports.append(report)
                if report.cancelled:
                    break
        return reports

    def sync_source(self, config: SourceConfig,
                    paths: Iterable[str] | None = None) -> SyncReport:
        """One pass over a source, or, with `paths` (watch hints), over just those paths:
        files re-checked, folders walked, paths that are gone removed from the index."""
        self.ensure_consistent()
        self.check_model()
        started = time.monotonic()
        report = SyncReport(config.source_id)
        run_id = self.state.begin_run(config.source_id)
        outcome = "error"
        try:
            self._sync_source(config, report, paths)
            outcome = "cancelled" if report.cancelled else "ok"
        except BaseException as exc:
            report.error = one_line(exc)
            raise
        finally:
            report.seconds = time.monotonic() - started
            self.state.end_run(run_id, outcome, json.dumps(report.as_dict()))
            if outcome != "error":
                # Every batch of this pass committed whole (a cancel stops between batches):
                # nothing to repair. After an error the mark stays and the next write repairs.
                self._mark_clean()
        self.on_progress(Progress(config.source_id, "done", report.added + report.modified,
                                  report.added + report.modified, report.failed))
        return report

    def _sync_source(self, config: SourceConfig, report: SyncReport,
                     paths: Iterable[str] | None) -> None:
        if self._make_source is None:
            raise RuntimeError("This Indexer was made without a source registry (sources=…).")
        source = self._make_source(config, self.settings)
        self.on_progress(Progress(config.source_id, "scanning"))
        scan_ns = time.time_ns()
        listing = source.list() if paths is None else source.list_paths(paths)
        report.problems.extend(f"{path}: {why}" for path, why in listing.problems)
        known = self.state.known(config.source_id)
        hasher = _safe_hash if self.settings.checksum_enabled else None
        changes = ChangeDetector(hasher).diff(listing, known)
        report.unchanged = changes.unchanged
        if changes.settled:
            self.state.mark_scanned([(uid, scan_ns) for uid in changes.settled])
        if changes.empty:
            if self._maintenance_retry_due():
                self.on_progress(Progress(config.source_id, "maintaining"))
                self._maintain(report)
            return
        self._apply(config, source, changes, report, scan_ns)

    def _maintenance_retry_due(self) -> bool:
        """Upkeep that failed is tried again on the next pass, even one with nothing to index
        (a vector index that could not be trained only after its back-off)."""
        record = _load_json(self.state.get_meta("maintenance"))
        errors = record.get("errors") or {}
        if not errors:
            return False
        return set(errors) != {"vector_index"} or time.time() >= record.get("vector_retry_at", 0)

    def _apply(self, config: SourceConfig, source: Any, changes: ChangeSet, report: SyncReport,
               scan_ns: int) -> None:
        # Importing LanceDB and loading the model take seconds: do both in the background while
        # the parser workers start on the first files.
        self._warm_up()
        self.state.mark_dirty()
        if changes.deleted or changes.touched or changes.moved:
            self._prepare_store_model(self.store)
        wrote = False
        store = None
        if changes.deleted:
            store = self.store
            uids = [d.doc_uid for d in changes.deleted]
            for i in range(0, len(uids), 500):
                part = uids[i:i + 500]
                res = store.commit_batch([], None, remove_doc_uids=part,
                                         fault=_named_faults("delete"))
                fault("delete-after-chunks")
                self.state.apply_commit([], part, str(res.documents_version))
            report.deleted = len(uids)
            wrote = True
        if changes.touched:
            self._apply_touched(config, changes.touched, scan_ns)
            report.touched = len(changes.touched)
            wrote = True
        work: list[tuple[SourceItem, KnownDocument | None]] = []
        if changes.moved:
            work.extend(self._apply_moved(config, changes.moved, report, scan_ns))
            wrote = True
        work.extend((item, None) for item in changes.added)
        work.extend(changes.modified)
        if work:
            self._index_items(config, source, work, changes.hashes, report, scan_ns)
            wrote = True
        if wrote and not self.cancel.is_set():
            self.on_progress(Progress(config.source_id, "maintaining"))
            self._maintain(report)
            self.state.set_meta("index_model", self.model_id)

    def _maintain(self, report: SyncReport | None = None, *, prune_all: bool = False) -> None:
        """Index upkeep after a pass. A failure here is logged and recorded for `status`, and
        retried later (a vector index that cannot be trained waits an hour or 10% more rows);
        it never fails the pass, and compaction runs regardless."""
        store = self.store
        before = store.documents_version
        mirrored = self.state.mirrored_version
        record = _load_json(self.state.get_meta("maintenance"))
        rows = store.chunks.count_rows()
        vector_ok = (time.time() >= record.get("vector_retry_at", 0)
                     or rows >= record.get("vector_rows", 0) * 1.1)
        try:
            actions = store.maintain(prune_all=prune_all, vector_index=vector_ok, fault=fault)
        except Exception as exc:
            log.warning("index maintenance failed: %s", exc, exc_info=True)
            actions = {"errors": {"maintenance": one_line(exc)}}
        errors = dict(actions.get("errors", {}))
        if not vector_ok and "vector_index" in record.get("errors", {}):
            errors.setdefault("vector_index", record["errors"]["vector_index"])  # still owed
        if errors:
            if "vector_index" in actions.get("errors", {}):
                record.update(vector_retry_at=time.time() + 3600, vector_rows=rows)
            record = {**record, "errors": errors, "at": time.time()}
            if report is not None:
                report.maintenance_errors = [f"{k}: {v}" for k, v in errors.items()]
        else:
            record = {}
        self.state.set_meta("maintenance", json.dumps(record))
        # Maintenance rewrites files, not rows: the mirror still holds every row. Record the
        # version it made, or the next start would take the mirror for stale and rebuild it.
        after = store.documents_version
        if after != before and mirrored == str(before):
            self.state.set_mirrored_version(str(after))

    def _warm_up(self) -> None:
        """Import LanceDB and load the model in two background threads (each takes seconds)."""
        if self._warm is None:
            def load(part: Callable[[], object]) -> None:
                try:
                    part()
                except Exception:  # reported again, in context, when the part is first used
                    log.debug("warm-up failed", exc_info=True)

            self._warm = [
                threading.Thread(target=load, args=(lambda: self.store,), daemon=True,
                                 name="warm-store"),
                threading.Thread(target=load, args=(
                    lambda: self.embedder.embedder.embed(["warm up"]),), daemon=True,
                    name="warm-model"),
            ]
            for t in self._warm:
                t.start()

    def _prepare_store_model(self, store: Store) -> None:
        model, _dim = store.index_model
        if model == self.model_id:
            self._model_ready = True
            return
        if store.chunks.count_rows() == 0:
            # Nothing embedded yet: switching models costs nothing, so just follow the settings.
            from app.core.store import chunks_schema

            store.db.drop_table(store.chunks_name)
            store.chunks = store.db.create_table(
                store.chunks_name, schema=chunks_schema(self.embedder.dim, self.model_id))
            self._model_ready = True
            return
        raise ModelChangeError(model_change_message(model, self.model_id,
                                                    store.chunks.count_rows()))

    # -- touched and moved ----------------------------------------------------------------------

    def _apply_touched(self, config: SourceConfig,
                       touched: list[tuple[SourceItem, KnownDocument]], scan_ns: int) -> None:
        store = self.store
        from app.core.store import sql_in

        by_uid = {doc.doc_uid: item for item, doc in touched}
        uids = list(by_uid)
        for i in range(0, len(uids), 500):
            part = uids[i:i + 500]
            rows = store.document_rows(where=f"doc_uid IN {sql_in(part)}").to_pylist()
            for r in rows:
                item = by_uid[r["doc_uid"]]
                r.update(version_token=item.version_token, size=item.size,
                         modified_at=_ts(item.mtime_ns), uri=item.resolved_uri)
            version = store.update_documents(rows)
            fault("touch-after-documents")
            self.state.apply_commit([self._mirror_row(r, scan_ns) for r in rows], [],
                                    str(version))

    def _apply_moved(self, config: SourceConfig, moved: list[tuple[SourceItem, KnownDocument]],
                     report: SyncReport, scan_ns: int) -> Iterator[tuple[SourceItem, None]]:
        """Carry chunks and vectors over to the new path; nothing is extracted or embedded."""
        import pyarrow as pa

        from app.core.store import sql_in

        store = self.store
        old_rows = {r["doc_uid"]: r for r in store.document_rows(
            where=f"doc_uid IN {sql_in([d.doc_uid for _, d in moved])}").to_pylist()}
        for item, old in moved:
            row = old_rows.get(old.doc_uid)
            chunks = store.chunks_of(old.doc_uid) if row else None
            if row is None or chunks is None or chunks.num_rows != (row["chunk_count"] or 0):
                yield item, None  # cannot carry over safely: index it as new
                continue
            new_uid = _doc_uid(config.source_id, item.native_id)
            hashes = chunks.column("text_hash").to_pylist()
            seen: Counter[str] = Counter()
            ids = []
            for h in hashes:
                ids.append(chunk_id(new_uid, h, seen[h]))
                seen[h] += 1
            chunks = chunks.set_column(chunks.schema.get_field_index("chunk_id"), "chunk_id",
                                       pa.array(ids, pa.string()))
            chunks = chunks.set_column(chunks.schema.get_field_index("doc_uid"), "doc_uid",
                                       pa.array([new_uid] * chunks.num_rows, pa.string()))
            new_row = dict(row, doc_uid=new_uid, native_id=item.native_id, uri=item.resolved_uri,
                           title=row["title"], version_token=item.version_token, size=item.size,
                           modified_at=_ts(item.mtime_ns))
            if row["title"] == os.path.basename(old.native_id):
                new_row["title"] = item.name
            res = store.commit_batch([new_row], chunks.select(store.chunks.schema.names),
                                     new_doc_uids=[new_uid], remove_doc_uids=[old.doc_uid],
                                     fault=_named_faults("move"))
            self.state.apply_commit([self._mirror_row(new_row, scan_ns)], [old.doc_uid],
                                    str(res.documents_version))
            report.moved += 1

    # -- extraction, chunking, embedding, commit ----------------------------------------------

    def _index_items(self, config: SourceConfig, source: Any,
                     work: list[tuple[SourceItem, KnownDocument | None]],
                     hashes: dict[str, str], report: SyncReport, scan_ns: int) -> None:
        max_bytes = int(self.settings.max_file_mb * 1_000_000)
        total = len(work)
        pool = self.pool
        checksum = self.settings.checksum_enabled

        def job(item: SourceItem, known: KnownDocument | None) -> _Outcome:
            if self.cancel.is_set():
                return _Outcome(item, known, "", error=ExtractionError("internal", "cancelled"))
            if item.kind != "file":
                return _Outcome(item, known, "", error=ExtractionError(
                    "unsupported", _SPECIAL_FILES.get(item.kind, _SPECIAL_FILES["other"])))
            if item.size > max_bytes:
                return _Outcome(item, known, "", error=too_large(item.size))
            digest = hashes.get(item.native_id, "")
            try:
                return read_consistently(item, digest)
            except ExtractionError as exc:
                return _Outcome(item, known, digest, error=exc)
            except FileNotFoundError:
                return _Outcome(item, known, digest, error=ExtractionError(
                    "vanished", "The file was moved or deleted while it was being indexed, so "
                                "it was skipped."))
            except PermissionError:
                return _Outcome(item, known, digest, error=ExtractionError(
                    "unreadable", "This file could not be opened because of its permissions; "
                                  "allow your user account to read it to index it."))
            except OSError as exc:
                return _Outcome(item, known, digest, error=ExtractionError(
                    "unreadable", f"Could not read the file: {exc.strerror or exc}."))

        def too_large(size: int) -> ExtractionError:
            return ExtractionError(
                "too_large", f"This file is {size / 1e6:.1f} MB, more than the "
                             f"{self.settings.max_file_mb:g} MB size limit, so it was "
                             "skipped; raise max_file_mb (LANCEDB_SYNC_MAX_FILE_MB) to "
                             "index it.")

        def read_consistently(item: SourceItem, digest: str) -> _Outcome:
            """Hash and parse the same version of the file: the token is checked before the
            bytes are hashed and again after the parse, and a file saved in between is read
            again (a few times, then left for the next pass). The text stored is never paired
            with the hash of other bytes."""
            path = item.path or item.native_id
            for _ in range(3):
                fresh = source.refresh(item)
                if fresh.version_token != item.version_token:
                    item, digest = fresh, ""  # changed since the listing: read what is there
                if item.size > max_bytes:
                    return _Outcome(item, known_of(item), "", error=too_large(item.size))
                if checksum and not digest:
                    digest = hash_file(path)
                extracted = pool.extract(path, max_bytes=max_bytes)
                after = source.refresh(item)
                if after.version_token == item.version_token:
                    if not checksum:
                        digest = "token:" + item.version_token
                    return _Outcome(item, known_of(item), digest, extracted=extracted)
                item, digest = after, ""
            raise ExtractionError("changing", "The file kept changing while it was being read; "
                                              "it will be read again on the next pass.")

        known_by_id = {item.native_id: known for item, known in work}

        def known_of(item: SourceItem) -> KnownDocument | None:
            return known_by_id.get(item.native_id)

        workers = max(1, self.settings.max_concurrent_processing)
        # The first batch closes early so the model starts while the parsers are still busy.
        batch = _Batch(limit_seconds=1.0)
        queue = iter(work)
        tracker = _Tracker(config.source_id, total, self.on_progress)
        writer = _BatchPipeline(self._embed_prepared,
                                lambda p: self._write(config, p, report, scan_ns, tracker),
                                low_priority=self.settings.low_priority)
        ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="extract")
        try:
            self._run_items(config, queue, batch, writer, ex, job, report, tracker)
        except BaseException:
            # Ctrl-C or an error: stop feeding the parsers, drop what was not started, and let
            # batches already handed to the writer finish whole (never half a batch).
            self.cancel.set()
            raise
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
            writer.close()

    def _run_items(self, config: SourceConfig,
                   queue: Iterator[tuple[SourceItem, KnownDocument | None]],
                   batch: _Batch, writer: _BatchPipeline, ex: ThreadPoolExecutor,
                   job: Callable[[SourceItem, KnownDocument | None], _Outcome],
                   report: SyncReport, tracker: _Tracker) -> None:
        """Feed the parsers, collect their results in batches, hand batches to the writer."""
        done = failed = 0
        pending: set[Future[_Outcome]] = set()
        exhausted = False
        while True:
            while not exhausted and len(pending) < IN_FLIGHT and not self.cancel.is_set():
                nxt = next(queue, None)
                if nxt is None:
                    exhausted = True
                    break
                pending.add(ex.submit(job, *nxt))
            if not pending:
                break
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in finished:
                out = fut.result()
                if self.cancel.is_set():
                    continue
                if out.extracted is not None:
                    batch.n_chunks += self._attach_chunks(config, out)
                batch.outcomes.append(out)
                done += 1
                if out.error is not None:
                    failed += 1
                tracker.parsed = done
                tracker.failed = failed
                tracker.current = out.item.resolved_uri
                tracker.emit()
            if self.cancel.is_set():
                break
            if (len(batch.outcomes) >= BATCH_DOCS or batch.n_chunks >= BATCH_CHUNKS
                    or (batch.outcomes
                        and time.monotonic() - batch.started > batch.limit_seconds)):
                writer.submit(self._prepare(config, batch, report))
                batch = _Batch()
        if batch.outcomes and not self.cancel.is_set():
            writer.submit(self._prepare(config, batch, report))
        writer.finish()
        if self.cancel.is_set():
            report.cancelled = True

    def _attach_chunks(self, config: SourceConfig, out: _Outcome) -> int:
        assert out.extracted is not None
        pieces = self.chunker.chunk(out.extracted.blocks)
        if not pieces:
            out.error = ExtractionError("no_text", "The file has no text to index.")
            out.extracted = None
            return 0
        out.chunks = pieces
        # The chunks hold the text now; keep only what the document row needs of the rest.
        ex = out.extracted
        out.extracted = Extracted((), ex.mime, ex.title, ex.metadata)
        return len(pieces)

    def _prepare(self, config: SourceConfig, batch: _Batch, report: SyncReport) -> _Prepared:
        """Document rows and chunk columns of one batch: pure Python, no store, no model."""
        from app.core.records import document_row

        prepared = _Prepared()
        cols = prepared.cols
        for out in batch.outcomes:
            item = out.item
            uid = _doc_uid(config.source_id, item.native_id)
            common = dict(doc_uid=uid, source_id=config.source_id,
                          source_type=config.source_type.value, native_id=item.native_id,
                          uri=item.resolved_uri, mime=_mime(item.name), size=item.size,
                          modified_at=_ts(item.mtime_ns), embed_model=self.model_id)
            if out.error is not None:
                err = out.error
                if err.permanent:
                    # The file as it is now has nothing to index: its old chunks go.
                    if out.known is not None:
                        prepared.replace.append(uid)
                    prepared.docs.append(document_row(
                        **common, title=item.name, version_token=item.version_token,
                        content_hash=out.digest, status=err.status, error=err.reason,
                        chunk_count=0, metadata={"error_kind": err.kind}))
                    prepared.resolved.append(uid)
                else:
                    prepared.transient.append((out, uid, common))
                if err.status == "failed":
                    report.failed += 1
                    report.failures.append((item.resolved_uri, err.reason))
                else:
                    report.skipped += 1
                continue
            extracted = out.extracted
            assert extracted is not None
            pieces = out.chunks or []
            seen: Counter[str] = Counter()
            for piece in pieces:
                th = hash_text(piece.text)
                cols["chunk_id"].append(chunk_id(uid, th, seen[th]))
                seen[th] += 1
                cols["doc_uid"].append(uid)
                cols["source_id"].append(config.source_id)
                cols["ordinal"].append(piece.ordinal)
                cols["text"].append(piece.text)
                cols["page"].append(piece.page)
                cols["heading"].append(piece.heading)
                cols["char_start"].append(piece.char_start)
                cols["char_end"].append(piece.char_end)
                cols["text_hash"].append(th)
                cols["content_hash"].append(out.digest)
            meta = dict(extracted.metadata)
            pages = {p.page for p in pieces if p.page is not None}
            if pages:
                meta["pages"] = str(max(pages))
            if extracted.mime:
                common["mime"] = extracted.mime
            prepared.docs.append(document_row(
                **common, title=extracted.title or item.name,
                version_token=item.version_token, content_hash=out.digest,
                status="indexed", chunk_count=len(pieces), metadata=meta))
            prepared.resolved.append(uid)
            if out.known is None:
                prepared.new.append(uid)
                report.added += 1
            else:
                prepared.replace.append(uid)
                report.modified += 1
        return prepared

    def _decide_transient(self, config: SourceConfig, prepared: _Prepared,
                          report: SyncReport) -> list[FileFailure]:
        """Failures that may pass (a timeout under load, a crashed parser, an I/O error): the
        previous good version stays as it is, and the file is tried again on later passes,
        up to MAX_RETRIES times for the same version of it; then it waits until it changes."""
        from app.core.records import document_row

        if not prepared.transient:
            return []
        previous = self.state.file_failures([uid for _, uid, _ in prepared.transient])
        limit = self.settings.max_retries
        records = []
        for out, uid, common in prepared.transient:
            item, err = out.item, out.error
            assert err is not None
            prev = previous.get(uid)
            attempts = prev.attempts + 1 if prev and prev.token == item.version_token else 1
            gave_up = attempts > limit
            kept = out.known is not None and out.known.status == "indexed"
            reason = err.reason
            if kept:
                reason += " The previous version is still searchable."
            if gave_up:
                reason += (f" Tried {attempts} times; it is tried again when the file changes, "
                           "or with 'lancedb-sync retry'.")
            else:
                reason += f" It is tried again on the next pass (attempt {attempts} of " \
                          f"{limit + 1})."
                report.retrying += 1
                if item.path:
                    report.retry_paths.append(item.path)
            if not kept:
                prepared.docs.append(document_row(
                    **common, title=item.name,
                    version_token=item.version_token if gave_up else "",
                    content_hash=out.digest, status=err.status, error=reason, chunk_count=0,
                    metadata={"error_kind": err.kind, "attempts": str(attempts)}))
            records.append(FileFailure(uid, config.source_id, item.native_id,
                                       item.resolved_uri, err.kind, reason,
                                       item.version_token, attempts, gave_up))
        return records

    def _embed_prepared(self, prepared: _Prepared) -> None:
        """Stage 2 (its own thread): vectors for the batch's chunks, through the cache."""
        if prepared.cols["chunk_id"]:
            embedder = self.embedder
            before = embedder.embedded
            prepared.vectors = embedder.embed(prepared.cols["text"], prepared.cols["text_hash"])
            prepared.embedded = embedder.embedded - before

    def _write(self, config: SourceConfig, prepared: _Prepared, report: SyncReport,
               scan_ns: int, tracker: _Tracker | None = None) -> None:
        """Stage 3 (its own thread): the commit protocol for one batch, then the mirror."""
        import numpy as np
        import pyarrow as pa

        from app.core.store import chunks_schema

        chunk_table = None
        cols = prepared.cols
        if cols["chunk_id"]:
            vectors = prepared.vectors
            assert vectors is not None
            report.chunks_embedded += prepared.embedded
            dim = vectors.shape[1]
            schema = chunks_schema(dim, self.model_id)
            arrays = {k: pa.array(v, schema.field(k).type) for k, v in cols.items()}
            arrays["vector"] = pa.FixedSizeListArray.from_arrays(
                pa.array(np.ascontiguousarray(vectors).reshape(-1), pa.float32()), dim)
            chunk_table = pa.table([arrays[n] for n in schema.names], schema=schema)
            report.chunks_written += chunk_table.num_rows
        self._prepare_store_model(self.store)
        failures = self._decide_transient(config, prepared, report)
        result = self.store.commit_batch(prepared.docs, chunk_table,
                                         replace_chunks_of=prepared.replace,
                                         new_doc_uids=prepared.new, fault=_named_faults(""))
        fault("after-documents")
        self.state.apply_commit([self._mirror_row(d, scan_ns) for d in prepared.docs], [],
                                str(result.documents_version), failures=failures,
                                resolved=prepared.resolved)
        fault("after-mirror")
        if tracker is not None:
            tracker.committed += len(prepared.docs)
            tracker.emit()

    @staticmethod
    def _mirror_row(row: dict[str, Any], scan_ns: int) -> dict[str, Any]:
        indexed = row.get("indexed_at")
        return {
            "doc_uid": row["doc_uid"], "source_id": row["source_id"],
            "native_id": row["native_id"], "uri": row.get("uri") or "",
            "title": row.get("title") or "", "mime": row.get("mime") or "",
            "size": row.get("size") or 0, "version_token": row.get("version_token") or "",
            "content_hash": row.get("content_hash") or "", "status": row["status"],
            "error": row.get("error") or "", "chunk_count": row.get("chunk_count") or 0,
            "indexed_at": indexed.timestamp() if indexed else time.time(),
            "scanned_at_ns": scan_ns,
        }

    # -- other operations ---------------------------------------------------------------------

    def retry_failed(self, source_id: str | None = None) -> int:
        """Make the next pass try every failed or skipped file again."""
        self.ensure_consistent()
        uids = [f.doc_uid for f in self.state.failed(source_id)]
        self.state.forget_tokens(uids)
        return len(uids)

    def cleanup(self) -> dict[str, Any]:
        """The seed's failed-sync cleanup: repair, compact, prune old versions, re-mirror."""
        run_id = self.state.begin_run("*cleanup*")
        outcome = "error"
        try:
            self.state.mark_dirty()
            store = self.store
            report = store.repair(fault=fault)
            self.rebuild_mirror(report.documents_to_redo)
            self.state.close_unfinished_runs("interrupted")
            before = store.version_stats()
            self._maintain(prune_all=True)
            after = store.version_stats()
            self._mark_clean()
            outcome = "ok"
        finally:
            self.state.end_run(run_id, outcome, "{}")
        maintenance = _load_json(self.state.get_meta("maintenance")).get("errors", {})
        return {"orphan_chunks_deleted": report.orphan_chunks_deleted,
                "duplicate_chunks_removed": report.duplicate_chunks_removed,
                "documents_to_redo": report.documents_to_redo,
                "maintenance_errors": maintenance, "before": before, "after": after}

    def check(self, *, repair: bool = False) -> dict[str, Any]:
        """`lancedb-sync check`: compare both tables and the sync state's mirror.

        With `repair`: fix what was found, then index the affected documents again (a pass of
        each source they belong to: only they have changed), and look once more. Returns the
        findings before (`found`), what repair did (`repaired`), the passes (`reindexed`) and
        the findings after (`after`, equal to `found` without `repair`).
        """
        found = self._inspect()
        result: dict[str, Any] = {"found": found, "repaired": None, "reindexed": [],
                                  "after": found}
        if not repair or found.clean:
            return result
        run_id = self.state.begin_run("*check*")
        outcome = "error"
        try:
            self.state.mark_dirty()
            fixed = self.store.repair(fault=fault)
            self.rebuild_mirror(fixed.documents_to_redo)
            self.state.close_unfinished_runs("interrupted")
            self._mark_clean()
            outcome = "ok"
        finally:
            self.state.end_run(run_id, outcome, "{}")
        result["repaired"] = fixed
        owners = {uid.split(":", 1)[0] for uid in fixed.documents_to_redo}
        sources = [s for s in self.settings.sources if s.enabled and s.source_id in owners]
        if sources:
            result["reindexed"] = self.sync(sources)
        result["after"] = self._inspect()
        return result

    def _inspect(self) -> Any:
        from app.core.integrity import inspect_index

        docs, chunks = self.store.integrity_columns()
        found = inspect_index(docs, chunks, self.state.mirror_rows())
        fingerprint = table_version_fingerprint(self.settings.index_uri,
                                                self.settings.documents_table)
        if found.mirror is not None and fingerprint is not None:
            found.mirror.version_behind = fingerprint != self.state.mirrored_version
        return found

    def purge_source(self, source_id: str) -> int:
        """Delete a source's documents and chunks, under the run journal. The purge is
        recorded first: if it is interrupted (an error, a kill), the state stays dirty and the
        next writer repairs and then finishes the purge."""
        self.ensure_consistent()
        return self._purge(source_id)

    def _pending_purges(self) -> list[str]:
        value = _load_json(self.state.get_meta("purges") or "{}").get("pending", [])
        return [str(v) for v in value] if isinstance(value, list) else []

    def _purge(self, source_id: str) -> int:
        pending = self._pending_purges()
        if source_id not in pending:
            self.state.set_meta("purges", json.dumps({"pending": [*pending, source_id]}))
        run_id = self.state.begin_run(source_id)
        outcome = "error"
        try:
            self.state.mark_dirty()
            n = self.store.delete_source(source_id, fault=fault)
            fault("purge-after-chunks")
            self.rebuild_mirror()
            self.state.set_meta("purges", json.dumps(
                {"pending": [p for p in self._pending_purges() if p != source_id]}))
            self._mark_clean()
            outcome = "ok"
        finally:
            self.state.end_run(run_id, outcome, json.dumps({"purged": True}))
        return n


def _load_time_zones() -> None:
    """Import zoneinfo now, on one thread. pyarrow imports it on first use to turn the tables'
    UTC timestamps into datetimes; done first on a pass thread while the warm-up threads import
    LanceDB and the model, that import can fail ("The zoneinfo module or pytz package must be
    installed"), seen once in a hundred passes."""
    import zoneinfo

    zoneinfo.ZoneInfo("UTC")


def _named_faults(prefix: str) -> Callable[[str], None]:
    """Store.commit_batch's steps as the fault points of one kind of commit."""
    return lambda step: fault(f"{prefix}-after-{step}" if prefix else f"after-{step}")


def _load_json(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


_SPECIAL_FILES = {
    "fifo": "This is a named pipe (FIFO), not a file, so it was skipped without opening it.",
    "socket": "This is a socket, not a file, so it was skipped.",
    "device": "This is a device, not a file, so it was skipped without opening it.",
    "other": "This is not a regular file, so it was skipped.",
}


def _safe_hash(item: SourceItem) -> str | None:
    try:
        return hash_file(item.path or item.native_id)
    except OSError:
        return None
