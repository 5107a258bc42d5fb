"""A pass's indexing pipeline: extract → chunk → embed → commit, in batches, with progress.

Parser processes work ahead (up to IN_FLIGHT files), this thread chunks and prepares batches
(pure Python, no LanceDB), one thread embeds batch N+1 while another commits batch N (`Stages`;
the tokenizer and LanceDB both work outside the GIL). Each batch is committed whole, following
the commit protocol (app/core/store.py); after a batch fails, no later batch of the pass is
written. Files are hashed and parsed between two checks of their size and time, so the text
stored belongs to the version whose hash is stored with it. Failures that may pass keep the
previous version and are recorded for a later retry (`file_failures` in the sync state).
"""

from __future__ import annotations

import logging
import mimetypes
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.core.extract.triage import (
    HEAD_BYTES,
    LONG_LINE,
    MINIFIED_REASON,
    generated_reason,
    looks_minified,
    may_be_minified,
    unsupported_reason,
)
from app.core.extract.types import Extracted, ExtractionError
from app.core.faults import fault
from app.core.hashing import chunk_id, hash_file, hash_text
from app.core.state import FileFailure, error_kind
from app.models import (
    UNSUPPORTED_KINDS,
    KnownDocument,
    Progress,
    SourceConfig,
    SourceItem,
    SyncReport,
)

log = logging.getLogger(__name__)

BATCH_DOCS = 256
BATCH_CHUNKS = 4096
BATCH_SECONDS = 3.0
# Files handed to the parsers ahead of the embedder, so parsing goes on during a commit.
IN_FLIGHT = 256


@dataclass(slots=True)
class Outcome:
    item: SourceItem
    known: KnownDocument | None
    digest: str
    extracted: Extracted | None = None
    error: ExtractionError | None = None
    chunks: list[Any] | None = None


@dataclass(slots=True)
class Batch:
    outcomes: list[Outcome] = field(default_factory=list)
    n_chunks: int = 0
    started: float = field(default_factory=time.monotonic)
    limit_seconds: float = BATCH_SECONDS


class Tracker:
    """Counts of one pass, updated by the parsing loop and the writer thread, sent as Progress."""

    def __init__(self, source_id: str, total: int,
                 emit: Callable[[Progress], None]) -> None:
        self.source_id, self.total, self._emit = source_id, total, emit
        self.parsed = self.failed = self.skipped = self.committed = 0
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
                                self.failed, self.current, rate, eta, self.parsed,
                                self.skipped)
        self._emit(progress)


@dataclass(slots=True)
class Prepared:
    docs: list[dict[str, Any]] = field(default_factory=list)
    cols: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in (
        "chunk_id", "doc_uid", "source_id", "ordinal", "text", "page", "heading",
        "char_start", "char_end", "text_hash", "content_hash")})
    replace: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    # Failures that may pass, decided on the writer thread (it owns the sync state):
    # (outcome, doc_uid, the row's common columns).
    transient: list[tuple[Outcome, str, dict[str, Any]]] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)  # no longer failing
    vectors: Any = None
    embedded: int = 0


class Stages:
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


def mime_of(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def ts(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def doc_uid_of(source_id: str, native_id: str) -> str:
    return f"{source_id}:{native_id}"


SPECIAL_FILES = {
    "fifo": "This is a named pipe (FIFO), not a file, so it was skipped without opening it.",
    "socket": "This is a socket, not a file, so it was skipped.",
    "device": "This is a device, not a file, so it was skipped without opening it.",
    "other": "This is not a regular file, so it was skipped.",
}




class BatchPipeline:
    """One pass's extract → chunk → embed → commit pipeline over the indexer's parts."""

    def __init__(self, indexer: Any) -> None:
        self.ix = indexer
        self.settings = indexer.settings
        self.cancel = indexer.cancel
        self.chunker = indexer.chunker
        self.model_id = indexer.model_id
        self.state = indexer.state
        self.on_progress = indexer.on_progress

    @property
    def pool(self) -> Any:
        return self.ix.pool

    @property
    def embedder(self) -> Any:
        return self.ix.embedder

    @property
    def store(self) -> Any:
        return self.ix.store

    def run(self, config: SourceConfig, source: Any,
                     work: list[tuple[SourceItem, KnownDocument | None]],
                     hashes: dict[str, str], report: SyncReport, scan_ns: int) -> None:
        max_bytes = int(self.settings.max_file_mb * 1_000_000)
        total = len(work)
        pool = self.pool
        checksum = self.settings.checksum_enabled
        plugins = self.settings.extractor_plugins
        skip_generated = self.settings.skip_generated

        def job(item: SourceItem, known: KnownDocument | None) -> Outcome:
            if self.cancel.is_set():
                return Outcome(item, known, "", error=ExtractionError("internal", "cancelled"))
            if item.kind != "file":
                return Outcome(item, known, "", error=ExtractionError(
                    "unsupported", SPECIAL_FILES.get(item.kind, SPECIAL_FILES["other"])))
            path = item.path or item.native_id
            reason = unsupported_reason(item.name, plugins)
            if reason is not None:  # never opened: a type the app does not read
                return Outcome(item, known, "", error=ExtractionError("unsupported", reason))
            if skip_generated:
                reason = generated_reason(path)
                if reason is None and may_be_minified(path) and item.size > LONG_LINE:
                    try:
                        with open(path, "rb") as f:
                            if looks_minified(f.read(HEAD_BYTES)):
                                reason = MINIFIED_REASON
                    except OSError:
                        pass  # the read below reports it
                if reason is not None:
                    return Outcome(item, known, "", error=ExtractionError("generated", reason))
            if item.size > max_bytes:
                return Outcome(item, known, "", error=too_large(item.size))
            digest = hashes.get(item.native_id, "")
            try:
                return read_consistently(item, digest)
            except ExtractionError as exc:
                return Outcome(item, known, digest, error=exc)
            except FileNotFoundError:
                return Outcome(item, known, digest, error=ExtractionError(
                    "vanished", "The file was moved or deleted while it was being indexed, so "
                                "it was skipped."))
            except PermissionError:
                return Outcome(item, known, digest, error=ExtractionError(
                    "unreadable", "This file could not be opened because of its permissions; "
                                  "allow your user account to read it to index it."))
            except OSError as exc:
                return Outcome(item, known, digest, error=ExtractionError(
                    "unreadable", f"Could not read the file: {exc.strerror or exc}."))

        def too_large(size: int) -> ExtractionError:
            return ExtractionError(
                "too_large", f"This file is {size / 1e6:.1f} MB, more than the "
                             f"{self.settings.max_file_mb:g} MB size limit, so it was "
                             "skipped; raise max_file_mb (LANCEDB_SYNC_MAX_FILE_MB) to "
                             "index it.")

        def read_consistently(item: SourceItem, digest: str) -> Outcome:
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
                    return Outcome(item, known_of(item), "", error=too_large(item.size))
                if checksum and not digest:
                    digest = hash_file(path)
                extracted = pool.extract(path, max_bytes=max_bytes)
                after = source.refresh(item)
                if after.version_token == item.version_token:
                    if not checksum:
                        digest = "token:" + item.version_token
                    return Outcome(item, known_of(item), digest, extracted=extracted)
                item, digest = after, ""
            raise ExtractionError("changing", "The file kept changing while it was being read; "
                                              "it will be read again on the next pass.")

        known_by_id = {item.native_id: known for item, known in work}

        def known_of(item: SourceItem) -> KnownDocument | None:
            return known_by_id.get(item.native_id)

        workers = max(1, self.settings.max_concurrent_processing)
        # The first batch closes early so the model starts while the parsers are still busy.
        batch = Batch(limit_seconds=1.0)
        queue = iter(work)
        tracker = Tracker(config.source_id, total, self.on_progress)
        writer = Stages(self._embed_prepared,
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
                   batch: Batch, writer: Stages, ex: ThreadPoolExecutor,
                   job: Callable[[SourceItem, KnownDocument | None], Outcome],
                   report: SyncReport, tracker: Tracker) -> None:
        """Feed the parsers, collect their results in batches, hand batches to the writer."""
        done = failed = skipped = 0
        pending: set[Future[Outcome]] = set()
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
                    if out.error.status == "failed":
                        failed += 1
                    else:
                        skipped += 1
                tracker.parsed = done
                tracker.failed = failed
                tracker.skipped = skipped
                tracker.current = out.item.resolved_uri
                tracker.emit()
            if self.cancel.is_set():
                break
            if (len(batch.outcomes) >= BATCH_DOCS or batch.n_chunks >= BATCH_CHUNKS
                    or (batch.outcomes
                        and time.monotonic() - batch.started > batch.limit_seconds)):
                writer.submit(self._prepare(config, batch, report))
                batch = Batch()
        if batch.outcomes and not self.cancel.is_set():
            writer.submit(self._prepare(config, batch, report))
        writer.finish()
        if self.cancel.is_set():
            report.cancelled = True

    def _attach_chunks(self, config: SourceConfig, out: Outcome) -> int:
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

    def _prepare(self, config: SourceConfig, batch: Batch, report: SyncReport) -> Prepared:
        """Document rows and chunk columns of one batch: pure Python, no store, no model."""
        from app.core.records import document_row

        prepared = Prepared()
        cols = prepared.cols
        for out in batch.outcomes:
            item = out.item
            uid = doc_uid_of(config.source_id, item.native_id)
            common = dict(doc_uid=uid, source_id=config.source_id,
                          source_type=config.source_type.value, native_id=item.native_id,
                          uri=item.resolved_uri, mime=mime_of(item.name), size=item.size,
                          modified_at=ts(item.mtime_ns), embed_model=self.model_id)
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
                elif err.kind in UNSUPPORTED_KINDS:
                    report.unsupported += 1
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

    def _decide_transient(self, config: SourceConfig, prepared: Prepared,
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

    def _embed_prepared(self, prepared: Prepared) -> None:
        """Stage 2 (its own thread): vectors for the batch's chunks, through the cache."""
        if prepared.cols["chunk_id"]:
            embedder = self.embedder
            before = embedder.embedded
            prepared.vectors = embedder.embed(prepared.cols["text"], prepared.cols["text_hash"])
            prepared.embedded = embedder.embedded - before

    def _write(self, config: SourceConfig, prepared: Prepared, report: SyncReport,
               scan_ns: int, tracker: Tracker | None = None) -> None:
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
        self.ix.prepare_store_model(self.store)
        failures = self._decide_transient(config, prepared, report)
        result = self.store.commit_batch(prepared.docs, chunk_table,
                                         replace_chunks_of=prepared.replace,
                                         new_doc_uids=prepared.new, fault=named_faults(""))
        fault("after-documents")
        self.state.apply_commit([mirror_row(d, scan_ns) for d in prepared.docs], [],
                                str(result.documents_version), failures=failures,
                                resolved=prepared.resolved)
        fault("after-mirror")
        if tracker is not None:
            tracker.committed += len(prepared.docs)
            tracker.emit()


def mirror_row(row: dict[str, Any], scan_ns: int) -> dict[str, Any]:
    indexed = row.get("indexed_at")
    return {
        "doc_uid": row["doc_uid"], "source_id": row["source_id"],
        "native_id": row["native_id"], "uri": row.get("uri") or "",
        "title": row.get("title") or "", "mime": row.get("mime") or "",
        "size": row.get("size") or 0, "version_token": row.get("version_token") or "",
        "content_hash": row.get("content_hash") or "", "status": row["status"],
        "error": row.get("error") or "", "chunk_count": row.get("chunk_count") or 0,
        "indexed_at": indexed.timestamp() if indexed else time.time(),
        "scanned_at_ns": scan_ns, "kind": error_kind(row.get("metadata")),
    }


def named_faults(prefix: str) -> Callable[[str], None]:
    """Store.commit_batch's steps as the fault points of one kind of commit."""
    return lambda step: fault(f"{prefix}-after-{step}" if prefix else f"after-{step}")
