"""The service's read side and its one-off jobs on the index: search, the failed-files ledger,
recent passes, retry and ignore, one pass for the command line, check, cleanup, re-embedding.

Every face uses these through the `Service` (this is one of its parts), never the engine: the
tray's windows, the command line, and the REST API. Reads are blocking and thread-safe (a UI
calls them from a worker thread). Jobs that write are coroutines: while the service runs, they
run on its pass thread, one after another with the passes; when it does not (a command-line
run), they open the index for themselves, holding the writer lock for their duration.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from app.fsutil import write_atomic
from app.models import (
    Counts,
    FailedFile,
    Progress,
    SearchFilters,
    SearchHit,
    SourceConfig,
    SyncReport,
)

T = TypeVar("T")

# The ignored files of the ledger, in the config folder; the name is historical (the tray wrote
# it first, and people's lists are there).
IGNORED_FILE = "ui-state.json"


class PassError(Exception):
    """A pass asked for on the running service failed; the message says why, for a person."""


class SearchError(Exception):
    """The index cannot be searched as asked; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ReembedPlan:
    """What switching the index to the configured model involves."""

    current_model: str  # "" for an empty index
    wanted_model: str
    chunks: int
    cost: str  # "about 4 min", in words

    @property
    def needed(self) -> bool:
        return bool(self.current_model) and self.current_model != self.wanted_model

    def describe(self) -> str:
        return (f"The index was built with {self.current_model}; the settings ask for "
                f"{self.wanted_model}. Switching re-embeds {self.chunks:,} chunks, {self.cost}.")


class IndexOperations:
    """Mixed into `Service`; relies on its `settings`, `_indexer`, `_pass_executor` and
    `_on_progress`."""

    settings: Any
    _indexer: Any
    _pass_executor: Any

    def _on_progress(self, progress: Progress) -> None:  # overridden by Service
        pass

    def _init_operations(self) -> None:
        self._search_lock = threading.Lock()
        # (store, embedder, model); store None: reopen it, the index moved on since.
        self._search_parts: tuple[Any, Any, str] | None = None
        self._ignore_lock = threading.Lock()

    # -- reads ------------------------------------------------------------------------------------

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid",
               filters: SearchFilters | None = None,
               snapshot: str | None = None) -> list[SearchHit]:
        """Documents for a query, best first (the tray's Search window, `lancedb-sync search`
        and the API give the same results). `snapshot` ("DEVICE[/ID]") searches a backup on S3
        instead of the local index. Raises SearchError with a message for the person."""
        from app.core.search import Searcher

        if snapshot is not None:
            store, embedder = self._remote_search_parts(snapshot, mode)
        else:
            store, embedder = self._search_parts_for(mode)
        return Searcher(store, embedder).search(query, k=k, mode=mode, filters=filters)

    def _search_parts_for(self, mode: str) -> tuple[Any, Any]:
        """The read-only store and the query embedder, opened once and kept (the tray searches
        as you type); the store is reopened after this service wrote to the index (an open
        table stays at the version it was opened at), both when the model in the settings
        changes."""
        from app.core.model_switch import embedder_model_id
        from app.core.store import Store, StoreError

        with self._search_lock:
            wanted = embedder_model_id(self.settings.embedder)
            parts = self._search_parts
            if parts is None or parts[2] != wanted:
                parts = (None, None, wanted)
            if parts[0] is None:
                folder = self.settings.index_dir
                if folder is not None and not folder.exists():
                    raise SearchError("The index is empty. Add a source and run a sync first.")
                try:
                    store = Store(self.settings.index_uri, self.settings.documents_table,
                                  self.settings.chunks_table, model_id="", dim=256,
                                  read_only=True)
                except StoreError as exc:
                    raise SearchError(str(exc)) from None
                parts = (store, parts[1], wanted)
            self._search_parts = parts
            store, embedder, _ = parts
            if mode == "fts":
                return store, None
            model, _dim = store.index_model
            if model and model != wanted:
                raise SearchError(
                    f"The index was built with {model} but the settings ask for {wanted}; "
                    "re-embed the index (run 'lancedb-sync reembed', or confirm the model in "
                    "Settings), or search by keywords only (--mode fts).")
            if embedder is None:
                from app.core.embedding import make_embedder

                embedder = make_embedder(self.settings.embedder, self.settings.embed_url)
                self._search_parts = (store, embedder, wanted)
            return store, embedder

    def _index_changed(self) -> None:
        """This service wrote to the index (a pass, a job): the next search reopens the store
        to see it, and keeps the embedder."""
        with self._search_lock:
            if self._search_parts is not None:
                self._search_parts = (None, *self._search_parts[1:])

    def _remote_search_parts(self, snapshot: str, mode: str) -> tuple[Any, Any]:
        from app.backup.credentials import keyring_provider
        from app.backup.manager import BackupManager

        manager = BackupManager(self.settings, credentials_provider=keyring_provider(
            self.settings))
        store = manager.open_remote(manager.resolve(snapshot))
        if mode == "fts":
            return store, None
        from app.core.embedding import make_embedder

        return store, make_embedder(self.settings.embedder, self.settings.embed_url)

    def index_indexes(self) -> tuple[list[str], int]:
        """The chunks table's indexes (by column) and its vector dimension (self-check)."""
        store, _ = self._search_parts_for("fts")
        return (sorted(",".join(i.columns) for i in store.chunks.list_indices()),
                store.index_model[1])

    def supported_types(self) -> list[tuple[str, str]]:
        """The file types the index reads, as (extension without the dot, what it is called:
        "PDF file"), the extractor registry's and the configured plugins', ordered by name then
        extension (what the tray's type filter offers)."""
        from app.core.extract.registry import BUILTIN_FORMATS, find_format

        plugins = dict(self.settings.extractor_plugins or {})
        exts = set(BUILTIN_FORMATS) | set(plugins)
        types = []
        for ext in exts:
            fmt = find_format(ext, plugins)
            if fmt is not None:
                types.append((ext.lstrip("."), fmt.label))
        return sorted(types, key=lambda t: (t[1].lower(), t[0]))

    def source_counts(self) -> dict[str, Counts]:
        """Per source, the one set of counts (app.models.Counts) with nothing in progress: from
        the sync state and the files the person ignored; never opens the index. The running
        service adds the pass under way (status.live_counts)."""
        from app.core.state import SyncState
        from app.service.health import state_index_mismatch

        if not self.settings.state_db_path.exists() or state_index_mismatch(self.settings):
            return {}  # nothing indexed yet, or the state describes another index
        ignored = self.ignored()
        with SyncState.open(self.settings.state_dir) as state:
            rows = state.counts()
            hidden = state.bucket_counts(ignored) if ignored else {}
        return {sid: Counts.of(r, ignored=hidden.get(sid)) for sid, r in rows.items()}

    def counts(self) -> dict[str, dict[str, int]]:
        """`source_counts` as plain dicts ("indexed", "failed", "skipped", "unsupported", ...)."""
        return {sid: c.as_dict() for sid, c in self.source_counts().items()}

    def detached_sources(self) -> dict[str, dict[str, int]]:
        """Documents in the index whose source is no longer configured (an earlier version
        could remove a source and keep them), by source id, with their counts: `status`
        lists them, and `remove_source` or `cleanup` deletes them."""
        configured = {s.source_id for s in self.settings.sources}
        return {sid: c for sid, c in self.counts().items() if sid not in configured}

    def failed_files(self, source_id: str | None = None, *,
                     include_ignored: bool = False) -> list[FailedFile]:
        """The ledger: every file not indexed as it is now, and why."""
        from app.core.state import SyncState
        from app.service.health import state_index_mismatch

        if not self.settings.state_db_path.exists() or state_index_mismatch(self.settings):
            return []
        with SyncState.open(self.settings.state_dir) as state:
            rows = state.failed(source_id)
        if include_ignored:
            return rows
        ignored = self.ignored()
        return [r for r in rows if r.doc_uid not in ignored]

    def recent_runs(self) -> dict[str, dict[str, Any]]:
        """The latest pass of each source: when, how it ended, its problems."""
        from app.core.state import SyncState
        from app.service.health import state_index_mismatch

        if not self.settings.state_db_path.exists() or state_index_mismatch(self.settings):
            return {}
        with SyncState.open(self.settings.state_dir) as state:
            return state.last_runs()

    def index_model(self) -> str:
        """The embedding model of this index's chunks ("" when empty, or when the sync state
        describes another index)."""
        from app.core.state import read_meta
        from app.service.health import state_index_mismatch

        if state_index_mismatch(self.settings):
            return ""
        return read_meta(self.settings.state_db_path, "index_model") or ""

    def ignored(self) -> set[str]:
        """Files the person chose to stop seeing in the ledger (doc uids), kept in
        `ui-state.json` in the config folder."""
        try:
            data = json.loads((self.settings.paths.config_dir / IGNORED_FILE).read_text())
            return set(data.get("ignored", []))
        except (OSError, ValueError, AttributeError):
            return set()

    def ignore(self, doc_uids: Iterable[str], *, undo: bool = False) -> set[str]:
        """Hide these files from the ledger (`undo`: show them again); returns the ignored set.
        Blocking (a small file write); thread-safe."""
        with self._ignore_lock:
            ignored = self.ignored()
            ignored = ignored - set(doc_uids) if undo else ignored | set(doc_uids)
            write_atomic(self.settings.paths.config_dir / IGNORED_FILE,
                         json.dumps({"ignored": sorted(ignored)}, indent=1))
            return ignored

    def reembed_plan(self) -> ReembedPlan:
        from app.core.model_switch import embedder_model_id, switch_cost

        wanted = embedder_model_id(self.settings.embedder)
        chunks = sum(c.chunks for c in self.source_counts().values())
        return ReembedPlan(self.index_model(), wanted, chunks, switch_cost(wanted, chunks))

    def reembed_needed(self, embedder: str) -> bool:
        """Whether choosing `embedder` (a spec such as "wordllama:64") means re-embedding the
        index: it holds chunks of another model. False for an empty index, and for the model
        it already uses, whatever the settings say now. A quick read of the sync state."""
        from app.core.model_switch import embedder_model_id

        current = self.index_model()
        return bool(current) and current != embedder_model_id(embedder)

    @staticmethod
    def reembed_cost(embedder: str, chunks: int) -> str:
        """About how long re-embedding `chunks` chunks with `embedder` (a spec such as
        "wordllama:64") takes, in words: "about 10 s". Pure, no I/O: a UI may call it on its
        own thread as the person picks a model (`reembed_plan` reads the index's own)."""
        from app.core.model_switch import switch_cost

        return switch_cost(embedder, chunks)

    # -- jobs that write --------------------------------------------------------------------------

    async def _on_writer(self, job: Callable[[Any], T], *,
                         on_progress: Callable[[Progress], None] | None = None,
                         cancel: threading.Event | None = None) -> T:
        """Run `job(indexer)` where writes belong: on the running service's pass thread, or,
        with no service running here, in a worker thread with an indexer of its own (which
        takes the writer lock, or raises IndexLockedError naming who holds it)."""
        def alone() -> T:
            from app.core.sync import Indexer
            from app.sources.registry import make_source

            with Indexer(self.settings, on_progress=on_progress or self._on_progress,
                         cancel=cancel, sources=make_source) as indexer:
                return job(indexer)

        try:
            if self._indexer is not None:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._pass_executor, job, self._indexer)
            return await asyncio.to_thread(alone)
        finally:
            self._index_changed()

    async def sync_once(self, source_ids: Sequence[str] | None = None, *,
                        on_progress: Callable[[Progress], None] | None = None,
                        cancel: threading.Event | None = None) -> list[SyncReport]:
        """One pass over the enabled sources (or the named ones), now; `cancel` stops it at a
        batch boundary. The command line's `sync`; the tray uses `sync_now` (queued)."""
        sources = self._sources_named(source_ids)
        return await self._on_writer(lambda ix: ix.sync(sources), on_progress=on_progress,
                                     cancel=cancel)

    def _sources_named(self, source_ids: Sequence[str] | None) -> list[SourceConfig]:
        if source_ids is None:
            return [s for s in self.settings.sources if s.enabled]
        return [s for s in self.settings.sources if s.source_id in set(source_ids)]

    async def retry_failed(self, doc_uids: Iterable[str] | None = None, *,
                           source_id: str | None = None) -> int:
        """Make the next pass try these files (or every failed and skipped one) again, with a
        fresh budget of retries. Returns how many."""
        uids = None if doc_uids is None else list(doc_uids)

        def forget(ix: Any) -> int:
            if uids is None:
                return ix.retry_failed(source_id)
            ix.state.forget_tokens(uids)
            return len(uids)

        n = await self._on_writer(forget)
        if n:
            self._after_retry(source_id)
        return n

    def _after_retry(self, source_id: str | None) -> None:  # Service queues the passes
        pass

    async def cleanup(self) -> dict[str, Any]:
        """Repair, compact and prune old versions (the seed's failed-sync cleanup), and delete
        the documents of sources no longer configured (`detached_sources`)."""
        detached = sorted(self.detached_sources())

        def clean(ix: Any) -> dict[str, Any]:
            report = ix.cleanup()
            removed = {sid: ix.purge_source(sid) for sid in detached}
            if removed:
                report = {**report, "detached_removed": removed}
            return report

        return await self._on_writer(clean)

    async def check(self, *, repair: bool = False,
                    on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
        """Compare both tables and the sync state (`lancedb-sync check`); with `repair`, fix
        what was found and index the affected documents again."""
        return await self._on_writer(lambda ix: ix.check(repair=repair),
                                     on_progress=on_progress)

    async def reembed(self, *, on_progress: Callable[[int, int], None] | None = None,
                      cancel: threading.Event | None = None) -> int:
        """Switch the index to the configured embedding model; returns the chunks re-embedded.
        Crash-safe (a side table, swapped in when complete) and cancellable."""
        from app.core.reembed import reembed_index

        return await self._on_writer(
            lambda ix: reembed_index(ix, on_progress=on_progress, cancel=cancel))

    async def purge_source(self, source_id: str) -> int:
        """Delete a source's documents from the index (not from the settings)."""
        return await self._on_writer(lambda ix: ix.purge_source(source_id))
