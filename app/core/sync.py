"""One sync pass over one source: list → detect changes → extract → chunk → embed → commit.

`Indexer` owns the sync state and opens the heavy parts (LanceDB, the embedding model, the parser
workers) only when a pass has real work: a re-sync that finds nothing changed reads the folder
and the SQLite state, and nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from app.config import Settings
from app.core.chunking import Chunker
from app.core.detect import ChangeDetector, ChangeSet
from app.core.errors import one_line
from app.core.faults import fault
from app.core.hashing import chunk_id, hash_file
from app.core.lock import IndexWriterLock
from app.core.model_switch import ModelChangeError, embedder_model_id, model_change_message
from app.core.pipeline import BatchPipeline, doc_uid_of, mirror_row, named_faults, ts
from app.core.state import SyncState, error_kind, table_version_fingerprint
from app.models import KnownDocument, Progress, SourceConfig, SourceItem, SyncReport

if TYPE_CHECKING:
    from app.core.embedding import CachedEmbedder
    from app.core.extract.sandbox import ExtractorPool
    from app.core.store import Store

log = logging.getLogger(__name__)

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
        # The mirror now describes this index: say which, so that a reader with another
        # LANCEDB_URI does not take its counts for its own (app/service/health.py).
        if self.state.get_meta("index_uri") != self.settings.index_uri:
            self.state.set_meta("index_uri", self.settings.index_uri)
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
                "version_token", "content_hash", "status", "error", "chunk_count", "indexed_at",
                "metadata"]
        table = store.document_rows(cols)
        rows = []
        for r in table.to_pylist():
            r["kind"] = error_kind(r.pop("metadata", None))
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
            self.prepare_store_model(self.store)
        wrote = False
        store = None
        if changes.deleted:
            store = self.store
            uids = [d.doc_uid for d in changes.deleted]
            for i in range(0, len(uids), 500):
                part = uids[i:i + 500]
                res = store.commit_batch([], None, remove_doc_uids=part,
                                         fault=named_faults("delete"))
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
            BatchPipeline(self).run(config, source, work, changes.hashes, report, scan_ns)
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

    def prepare_store_model(self, store: Store) -> None:
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
                         modified_at=ts(item.mtime_ns), uri=item.resolved_uri)
            version = store.update_documents(rows)
            fault("touch-after-documents")
            self.state.apply_commit([mirror_row(r, scan_ns) for r in rows], [],
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
            new_uid = doc_uid_of(config.source_id, item.native_id)
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
                           modified_at=ts(item.mtime_ns))
            if row["title"] == os.path.basename(old.native_id):
                new_row["title"] = item.name
            res = store.commit_batch([new_row], chunks.select(store.chunks.schema.names),
                                     new_doc_uids=[new_uid], remove_doc_uids=[old.doc_uid],
                                     fault=named_faults("move"))
            self.state.apply_commit([mirror_row(new_row, scan_ns)], [old.doc_uid],
                                    str(res.documents_version))
            report.moved += 1

    # -- extraction, chunking, embedding, commit ----------------------------------------------

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


def _load_json(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _safe_hash(item: SourceItem) -> str | None:
    try:
        return hash_file(item.path or item.native_id)
    except OSError:
        return None
