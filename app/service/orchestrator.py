"""The sync service: keeps every source's documents indexed while it runs.

One asyncio loop (the tray's qasync loop or plain asyncio headless) runs the scheduling; each
pass runs in a worker thread through one `Indexer` (the index's single writer). Watch hints are
handled before periodic full passes, one pass at a time. No Qt, no HTTP here: the CLI daemon,
the tray and the REST API drive this object and consume its `events`.

A source whose pass fails is retried with exponential backoff and jitter (`MAX_RETRIES`), then
only every few minutes until it recovers or the user asks for a sync.

Not yet here (issue 3 continues): health checks, battery/low-priority modes and the watcher's
return from polling to live watching.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from app.config import Settings, save_sources
from app.core.models import SourceConfig, SourceType
from app.service.events import EventBus
from app.service.retry import Backoff, RetryState

log = logging.getLogger(__name__)

PAUSE_FILE = "service.json"


class Service:
    def __init__(self, settings: Settings, *, watch: bool | None = None,
                 clock: Any = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._retry: dict[str, RetryState] = {}
        self.events = EventBus()
        self._watch = settings.enable_source_monitoring if watch is None else watch
        self._indexer: Any = None
        self._watchers: dict[str, Any] = {}
        self._pending: dict[str, set[str] | None] = {}  # None: a full pass is due
        self._next_full: dict[str, float] = {}
        self._states: dict[str, str] = {}
        self._last: dict[str, dict[str, Any]] = {}
        self._progress: dict[str, dict[str, Any]] = {}
        self._current: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the index (raises IndexLockedError if another instance writes to it), arm the
        watchers and schedule a first pass of every enabled source."""
        from app.core.sync import Indexer

        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._indexer = await asyncio.to_thread(Indexer, self.settings,
                                                on_progress=self._on_progress)
        for source in self.settings.sources:
            if source.enabled:
                await self._arm(source)
        self._task = asyncio.create_task(self._run(), name="lancedb-sync service")

    async def stop(self) -> None:
        """Finish or abandon the pass under way at a batch boundary, stop watching, close."""
        self._stopping = True
        self.cancel_current()
        if self._wake:
            self._wake.set()
        if self._task:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sid in list(self._watchers):
            await self._disarm(sid)
        if self._indexer is not None:
            await asyncio.to_thread(self._indexer.close)
            self._indexer = None

    # -- sources ----------------------------------------------------------------------------------

    async def add_source(self, source: SourceConfig) -> None:
        if self.settings.source(source.source_id):
            raise ValueError(f"A source named {source.source_id!r} exists already.")
        self.settings = save_sources(self.settings, (*self.settings.sources, source))
        if source.enabled and self._loop is not None:
            await self._arm(source)

    async def remove_source(self, source_id: str, *, purge: bool = False) -> None:
        await self._disarm(source_id)
        self._pending.pop(source_id, None)
        self.settings = save_sources(self.settings, tuple(
            s for s in self.settings.sources if s.source_id != source_id))
        if purge and self._indexer is not None:
            await asyncio.to_thread(self._indexer.purge_source, source_id)

    async def update_source(self, source: SourceConfig) -> None:
        await self._disarm(source.source_id)
        self.settings = save_sources(self.settings, tuple(
            source if s.source_id == source.source_id else s for s in self.settings.sources))
        if source.enabled:
            await self._arm(source)

    # -- control ----------------------------------------------------------------------------------

    def sync_now(self, source_id: str | None = None) -> None:
        for source in self.settings.sources:
            if source.enabled and (source_id is None or source.source_id == source_id):
                self._pending[source.source_id] = None
                self._retry_state(source.source_id).reset_wait()
        self._poke()

    def pause(self, until: float | None = None) -> None:
        """Pause for `until` (epoch seconds) or until `resume()`; survives a restart."""
        self._write_pause({"paused": True, "until": until})
        self.cancel_current()
        self.events.publish("paused", until=until)
        self._poke()

    def resume(self) -> None:
        self._write_pause({"paused": False, "until": None})
        self.events.publish("resumed")
        self._poke()

    def cancel_current(self) -> None:
        if self._indexer is not None and self._current is not None:
            self._indexer.cancel.set()

    def get_status(self) -> dict[str, Any]:
        from app.core.state import SyncState

        state = SyncState.open(self.settings.state_dir)
        try:
            counts = state.counts()
        finally:
            state.close()
        paused, until = self.paused
        sources = []
        for s in self.settings.sources:
            watcher = self._watchers.get(s.source_id)
            c = counts.get(s.source_id, {})
            sources.append({
                "source_id": s.source_id, "source_type": s.source_type.value,
                "enabled": s.enabled, "state": self._states.get(s.source_id, "idle"),
                "documents": c.get("indexed", 0), "failed": c.get("failed", 0),
                "skipped": c.get("skipped", 0), "chunks": c.get("chunks", 0),
                "watcher": watcher.state if watcher else "off",
                "watcher_reason": watcher.degraded_reason if watcher else "",
                "progress": self._progress.get(s.source_id),
                "last_sync": self._last.get(s.source_id),
                "queued": s.source_id in self._pending,
                "failures": self._retry_state(s.source_id).failures,
                "retry_in": round(self._retry_state(s.source_id).retry_in(), 1),
                "last_error": self._retry_state(s.source_id).last_error,
            })
        return {"paused": paused, "paused_until": until, "current": self._current,
                "sources": sources}

    @property
    def paused(self) -> tuple[bool, float | None]:
        data = self._read_pause()
        if not data.get("paused"):
            return False, None
        until = data.get("until")
        if until is not None and time.time() >= until:
            return False, None
        return True, until

    # -- internals ---------------------------------------------------------------------------------

    async def _arm(self, source: SourceConfig) -> None:
        sid = source.source_id
        self._pending[sid] = None
        self._next_full[sid] = time.monotonic() + self._interval(source)
        self._states[sid] = "queued"
        roots = source.config.get("watch_paths") or []
        if self._watch and source.source_type is SourceType.LOCAL_FILESYSTEM and roots:
            from app.sources.watch import FolderWatcher

            loop = self._loop
            assert loop is not None
            try:
                watcher = FolderWatcher(
                    [str(Path(r).expanduser()) for r in roots],
                    lambda paths, sid=sid: loop.call_soon_threadsafe(self._hint, sid, paths),
                    poll_interval_s=float(self._interval(source)),
                    on_state=lambda state, reason, sid=sid: self.events.publish(
                        "watcher", sid, state=state, reason=reason))
                await asyncio.to_thread(watcher.start)
            except Exception as exc:  # no live watching; periodic passes still run
                log.exception("cannot watch %s", sid)
                self.events.publish("watcher", sid, state="off", reason=str(exc))
            else:
                self._watchers[sid] = watcher
        self._poke()

    async def _disarm(self, source_id: str) -> None:
        watcher = self._watchers.pop(source_id, None)
        if watcher is not None:
            await asyncio.to_thread(watcher.stop)

    def _retry_state(self, source_id: str) -> RetryState:
        if source_id not in self._retry:
            self._retry[source_id] = RetryState(Backoff(), self.settings.max_retries,
                                                self._clock)
        return self._retry[source_id]

    def _interval(self, source: SourceConfig) -> int:
        return source.poll_interval or self.settings.default_poll_interval

    def _hint(self, source_id: str, paths: set[str]) -> None:
        if source_id not in self._watchers:
            return
        current = self._pending.get(source_id, set())
        if current is not None:
            self._pending[source_id] = current | paths
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _next_job(self) -> tuple[str, set[str] | None] | None:
        now = time.monotonic()
        for source in self.settings.sources:
            if source.enabled and now >= self._next_full.get(source.source_id, now):
                self._pending[source.source_id] = None
        # Watch hints (small, someone just saved a file) before full passes (bulk work).
        hinted = [sid for sid, p in self._pending.items() if p is not None]
        order = hinted + [sid for sid, p in self._pending.items() if p is None]
        for sid in order:
            if not self._retry_state(sid).ready():
                continue  # backing off after a failure; the job stays queued
            paths = self._pending.pop(sid)
            if self.settings.source(sid) is not None:
                return sid, paths
        return None

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            paused, until = self.paused
            job = None if paused else self._next_job()
            if job is None:
                self._wake.clear()
                timeout = self._sleep_for(until if paused else None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            await self._pass(*job)

    def _sleep_for(self, paused_until: float | None) -> float:
        if paused_until is not None:
            return max(0.1, min(60.0, paused_until - time.time()))
        due = [t - time.monotonic() for t in self._next_full.values()]
        due += [r.retry_in() for sid, r in self._retry.items() if sid in self._pending]
        return max(0.1, min([60.0, *due]))

    async def _pass(self, source_id: str, paths: set[str] | None) -> None:
        source = self.settings.source(source_id)
        assert source is not None and self._indexer is not None
        self._current = source_id
        self._indexer.cancel.clear()  # a cancel applies to the pass it was meant for
        self._set_state(source_id, "scanning" if paths is None else "indexing")
        try:
            report = await asyncio.to_thread(self._indexer.sync_source, source,
                                             sorted(paths) if paths is not None else None)
        except Exception as exc:  # recorded and shown; the service goes on with other sources
            log.exception("sync of %s failed", source_id)
            retry = self._retry_state(source_id)
            wait = retry.record_failure(str(exc))
            # Keep the work queued: it runs again once the backoff has passed.
            self._pending[source_id] = None if paths is None else (
                (self._pending.get(source_id) or set()) | paths)
            self._set_state(source_id, "error")
            self.events.publish("error", source_id, reason=str(exc), retry_in=round(wait, 1),
                                failures=retry.failures, failing=retry.failing)
            return
        finally:
            self._current = None
            self._progress.pop(source_id, None)
        self._retry_state(source_id).record_success()
        if paths is None:
            self._next_full[source_id] = time.monotonic() + self._interval(source)
        if report.cancelled:
            # Resume where it stopped on the next chance: nothing half-written was kept.
            self._pending.setdefault(source_id, None if paths is None else paths)
        summary = report.as_dict()
        self._last[source_id] = {"finished_at": time.time(), **summary}
        self._set_state(source_id, "idle")
        self.events.publish("sync_finished", source_id, report=summary, targeted=paths is not None)

    def _set_state(self, source_id: str, state: str) -> None:
        if self._states.get(source_id) != state:
            self._states[source_id] = state
            self.events.publish("state", source_id, state=state)

    def _on_progress(self, progress: Any) -> None:
        data = {"phase": progress.phase, "done": progress.done, "total": progress.total,
                "failed": progress.failed, "current": progress.current,
                "rate": round(progress.rate, 2), "eta_s": progress.eta_s,
                "parsed": progress.parsed}
        self._progress[progress.source_id] = data
        self.events.publish("progress", progress.source_id, **data)

    def _pause_path(self) -> Path:
        return self.settings.state_dir / PAUSE_FILE

    def _read_pause(self) -> dict[str, Any]:
        try:
            return json.loads(self._pause_path().read_text())
        except (OSError, ValueError):
            return {}

    def _write_pause(self, data: dict[str, Any]) -> None:
        path = self._pause_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)


def create_orchestration_service(settings: Settings, *, enable_source_monitoring: bool = True,
                                 **_: Any) -> Service:
    """The seed's factory name; the remote-store arguments arrive with their issues."""
    return Service(settings, watch=enable_source_monitoring)
