"""The sync service: keeps every source's documents indexed while it runs, and the one API every
face uses (the tray, the command line, `lancedb-sync run`, the REST API).

One asyncio loop (the tray's qasync loop, or plain asyncio headless) runs the scheduling; each
pass runs on a dedicated thread through one `Indexer` (the index's single writer). The parts:
  - scheduler.py: which pass runs next (watch hints before full passes, back-off after errors);
  - watchers.py: live watching of the folders, with a polling fallback;
  - operations.py: search, the failed-files ledger, retry and ignore, check, cleanup,
    re-embedding and one-off passes (also usable with no loop running: the command line);
  - backups.py: automatic and requested backups;
  - status.py / events.py: what it says about itself, as typed snapshots and events.
Health checks run every `HEALTH_CHECK_INTERVAL`; syncing is *held* (nothing is lost, work stays
queued) while paused, on battery with `pause_on_battery`, or while the index cannot be written;
`get_status()` says why, per source. A jump of the wall clock against the monotonic one (sleep
and resume) triggers a reconciliation pass of every source.

No Qt and no HTTP here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app.config import Settings, save_sources
from app.core.lock import IndexLockedError as IndexLockedError
from app.fsutil import write_atomic
from app.models import Counts, Progress, SourceConfig, SyncReport
from app.service.backups import BackupControl
from app.service.events import (
    ClockJumped,
    EventBus,
    HealthChanged,
    PassProgress,
    Paused,
    RemovalFinished,
    Resumed,
    StateChanged,
    SyncFailed,
    SyncFinished,
    WatcherChanged,
)
from app.service.operations import IndexOperations, PassError
from app.service.scheduler import Job, Scheduler
from app.service.status import (
    PassInfo,
    ServiceStatus,
    SourceStatus,
    live_counts,
    offline_status,
    read_running_status,
    remove_status_file,
    run_summary,
    write_status_file,
)
from app.service.watchers import Watchers

log = logging.getLogger(__name__)

PAUSE_FILE = "service.json"

# A wall-clock step this much larger (or smaller) than the monotonic one means the machine slept
# or its clock was set.
CLOCK_JUMP_S = 60.0
# A health check that takes longer than this (a hung network mount) is reported as such.
HEALTH_TIMEOUT_S = 20.0
PURGE_RETRY = "*purge*"  # the scheduler's retry key of an interrupted removal


class Service(IndexOperations, BackupControl):
    def __init__(self, settings: Settings, *, watch: bool | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 power_probe: Callable[[], bool] | None = None,
                 observer_factory: Callable[[], Any] | None = None,
                 credentials_provider: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self._init_operations()
        self._init_backups(credentials_provider)
        # The pause survives restarts in state/service.json; read once here, then kept in memory
        # (get_status and the scheduler ask for it constantly, and only this object writes it).
        self._pause = self._read_pause()
        self._clock = clock
        self._wall = wall_clock
        if power_probe is None:
            from app.service.health import on_battery

            power_probe = on_battery
        self._power_probe = power_probe
        self.events = EventBus()
        self._watch = settings.enable_source_monitoring if watch is None else watch
        self.scheduler = Scheduler(max_retries=settings.max_retries, clock=clock)
        self.watchers = Watchers(on_paths=self._paths_seen, on_state=self._watcher_state,
                                 observer_factory=observer_factory, clock=clock)
        self._health: dict[str, Any] = {}
        self._hold: str | None = None  # why syncing is held, besides a pause
        self._on_battery = False
        self._clock_mark: tuple[float, float] | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._status_write: asyncio.Handle | None = None
        self._started_at = 0.0
        self._pass_executor: ThreadPoolExecutor | None = None
        self._counts: dict[str, Counts] = {}
        self._counts_read_at = 0.0  # monotonic; during a pass the counts follow the commits
        self._counts_reading = False
        self._counts_trailing: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._indexer: Any = None
        self._states: dict[str, str] = {}
        self._last: dict[str, dict[str, Any]] = {}
        self._progress: dict[str, PassInfo] = {}
        self._current: str | None = None
        self._pass_lock = asyncio.Lock()
        self._listener: Callable[[Progress], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._purge_pending = False  # a removal's purge failed; retried with back-off

    # -- life cycle -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._indexer is not None

    async def start(self) -> None:
        """Open the index (raises IndexLockedError if another instance writes to it), arm the
        watchers and schedule a first pass of every enabled source."""
        import importlib

        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._started_at = time.time()
        init = None
        if self.settings.low_priority:
            from app.core.priority import lower_thread_priority

            init = lower_thread_priority
        self._pass_executor = ThreadPoolExecutor(1, thread_name_prefix="sync-pass",
                                                 initializer=init)
        # Importing the engine (the embedder's modules, the parsers' registry) takes about a
        # second: not on the loop, which may be a UI's.
        engine = await asyncio.to_thread(importlib.import_module, "app.core.sync")
        from app.sources.registry import make_source

        self._indexer = await asyncio.to_thread(engine.Indexer, self.settings,
                                                on_progress=self._on_progress,
                                                sources=make_source)
        for source in self.settings.sources:
            if source.enabled:
                await self._arm(source)
        await self._refresh_counts()
        await self._load_backup_status()
        await self.check_health()
        self._task = asyncio.create_task(self._run(), name="lancedb-sync service")
        self._health_task = asyncio.create_task(self._health_loop(), name="lancedb-sync health")

    async def stop(self) -> None:
        """Finish or abandon the pass under way at a batch boundary, stop watching, close."""
        self._stopping = True
        self.cancel_current()
        if self._wake:
            self._wake.set()
        if self._health_task:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        await self._stop_backups()
        if self._task:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.watchers.stop_all()
        if self._status_write is not None:
            self._status_write.cancel()
        if self._counts_trailing is not None:
            self._counts_trailing.cancel()
        if self._indexer is not None:
            await asyncio.to_thread(self._indexer.close)
            self._indexer = None
        if self._pass_executor is not None:
            self._pass_executor.shutdown(wait=True)
            self._pass_executor = None
        with contextlib.suppress(OSError):
            remove_status_file(self.settings.state_dir)

    # -- sources ----------------------------------------------------------------------------------

    async def add_source(self, source: SourceConfig) -> None:
        """Save a new source and, while running, start syncing it. Raises SourceConfigError
        (app/service/source_rules.py) when it cannot be used: a taken name, a missing folder,
        a folder inside or around another source's (its files would be indexed twice)."""
        from app.service.source_rules import check_source

        check_source(source, self.settings.sources)
        self.settings = save_sources(self.settings, (*self.settings.sources, source))
        if source.enabled and self._loop is not None:
            await self._arm(source)

    async def remove_source(self, source_id: str, *, purge: bool = True) -> int:
        """Stop serving a source, forget it and delete its documents from the index: a removed
        source's documents would be searchable yet counted and managed nowhere. (To stop
        syncing a source and keep its documents, disable it.) Also removes the documents
        left in the index by a source removed without them (`detached_sources`). Returns
        how many documents were deleted. If the deletion is interrupted, the next write (or
        the service's own retry) finishes it."""
        from app.service.source_rules import SourceConfigError

        if not purge:
            raise SourceConfigError("A removed source's documents cannot be kept (they would "
                                    "stay searchable but no longer be counted or managed); "
                                    "disable the source instead to keep them.", "purge")
        configured = self.settings.source(source_id) is not None
        if not configured and source_id not in self.detached_sources():
            raise SourceConfigError(f"No source named {source_id!r}.", "source_id")
        if not self.running:
            # Documents first: if that is interrupted, the source stays configured and
            # removing it again finishes the job.
            documents = await self.purge_source(source_id)
            if configured:
                self.settings = save_sources(self.settings, tuple(
                    s for s in self.settings.sources if s.source_id != source_id))
            return documents
        await self.watchers.disarm(source_id)
        self.scheduler.disarm(source_id)
        if configured:
            self.settings = save_sources(self.settings, tuple(
                s for s in self.settings.sources if s.source_id != source_id))
        self._states.pop(source_id, None)
        if self._current == source_id:
            self.cancel_current()
        documents = 0
        try:
            documents = await self.purge_source(source_id)
        except Exception as exc:
            log.exception("removing the documents of %s failed", source_id)
            self._purge_pending = True
            wait = self.scheduler.retry(PURGE_RETRY).record_failure(str(exc))
            self.events.publish(SyncFailed(source_id=source_id,
                                           reason=_describe(exc, self.settings),
                                           retry_in=round(wait, 1)))
            self._poke()
        await self._refresh_counts()
        return documents

    async def update_source(self, source: SourceConfig) -> None:
        """Save a changed source (same id) and sync it again; raises SourceConfigError as
        `add_source` does."""
        from app.service.source_rules import check_source

        check_source(source, self.settings.sources, editing=True)
        await self.watchers.disarm(source.source_id)
        self.scheduler.disarm(source.source_id)
        self.settings = save_sources(self.settings, tuple(
            source if s.source_id == source.source_id else s for s in self.settings.sources))
        if source.enabled and self._loop is not None:
            await self._arm(source)

    def ignore(self, doc_uids: Iterable[str], *, undo: bool = False) -> set[str]:
        """As IndexOperations.ignore; the running service's counts (which leave ignored files
        out) follow at once, so the tray's state does not wait for the next pass. Blocking:
        call it from a worker thread."""
        ignored = super().ignore(doc_uids, undo=undo)
        if self.running:
            try:
                self._counts = self.source_counts()
            except Exception:
                log.exception("cannot read document counts")
            self._schedule_status_write_threadsafe()
        return ignored

    def _schedule_status_write_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing to show
                loop.call_soon_threadsafe(self._schedule_status_write, 0.5)

    # -- control ----------------------------------------------------------------------------------

    def sync_now(self, source_id: str | None = None) -> None:
        for source in self.settings.sources:
            if source.enabled and (source_id is None or source.source_id == source_id):
                self.scheduler.request_full(source.source_id, now=True)
        self._poke()

    def _after_retry(self, source_id: str | None) -> None:
        if self.running:
            self.sync_now(source_id)

    async def sync_once(self, source_ids: Sequence[str] | None = None, *,
                        on_progress: Callable[[Progress], None] | None = None,
                        cancel: threading.Event | None = None) -> list[SyncReport]:
        """One full pass of the enabled sources (or the named ones), now, even while paused
        (it was asked for). On a running service each runs as one of its own passes: after
        the pass under way, shown in the status and the events like any other, with
        `on_progress` called too and `cancel` stopping it at a batch boundary. Raises
        PassError with the reason when a source's pass fails."""
        if not self.running:
            return await super().sync_once(source_ids, on_progress=on_progress, cancel=cancel)
        reports = []
        for source in self._sources_named(source_ids):
            if cancel is not None and cancel.is_set():
                break
            report = await self._pass(Job(source.source_id, None), listener=on_progress,
                                      cancel=cancel, raise_errors=True)
            if report is not None:
                reports.append(report)
        return reports

    def pause(self, until: float | None = None) -> None:
        """Pause for `until` (epoch seconds) or until `resume()`; survives a restart."""
        self._write_pause({"paused": True, "until": until})
        self.cancel_current()
        self.events.publish(Paused(until=until))
        self._apply_holds()
        self._poke()

    def resume(self) -> None:
        self._write_pause({"paused": False, "until": None})
        self.events.publish(Resumed())
        self._apply_holds()
        self._poke()

    def cancel_current(self) -> None:
        if self._indexer is not None and self._current is not None:
            self._indexer.cancel.set()

    @property
    def paused(self) -> tuple[bool, float | None]:
        data = self._pause
        if not data.get("paused"):
            return False, None
        until = data.get("until")
        if until is not None and time.time() >= until:
            return False, None
        return True, until

    # -- status -----------------------------------------------------------------------------------

    def get_status(self) -> ServiceStatus:
        """Everything a face shows: per-source state and why it waits, counts, progress, the
        last pass, retries, the watcher, the queue and the latest health check. No I/O (the
        counts are refreshed after each pass), so a UI may call it on its own thread."""
        paused, until = self.paused
        sources = []
        for s in self.settings.sources:
            sid = s.source_id
            progress = self._progress.get(sid)
            c = live_counts(self._counts.get(sid), progress)
            retry = self.scheduler.retry(sid)
            watcher, watcher_reason = self.watchers.state(sid)
            sources.append(SourceStatus(
                source_id=sid, source_type=s.source_type.value, enabled=s.enabled,
                state=self._states.get(sid, "idle"), waiting=self._waiting_reason(s),
                **SourceStatus.count_fields(c),
                watcher=watcher, watcher_reason=watcher_reason,
                progress=progress, last_sync=self._last.get(sid),
                queued=self.scheduler.is_queued(sid),
                queued_paths=self.scheduler.queued_paths(sid),
                failures=retry.failures, retry_in=round(retry.retry_in(), 1),
                last_error=retry.last_error))
        return ServiceStatus(
            running=self.running, pid=os.getpid(), started_at=self._started_at or None,
            health_check_interval=self.settings.health_check_interval, paused=paused,
            paused_until=until, held=self._hold, on_battery=self._on_battery,
            current=self._current, queue=self.scheduler.depth(), health=self._health,
            backup=self._backup_status or None, sources=tuple(sources),
            index=self.settings.index_uri)

    def read_status(self) -> ServiceStatus:
        """The status of whatever serves this index: this service if it runs here, else the
        running service's status file (another process), else what the sync state and a quick
        health check say (nothing runs)."""
        if self.running:
            return self.get_status()
        running = read_running_status(self.settings.state_dir)
        if running is not None and running.index not in ("", self.settings.index_uri):
            running = None  # a service on this state folder serving another index
        if running is not None:
            # Passes from before that service started are in the journal.
            runs = self.recent_runs()
            return dataclasses.replace(running, sources=tuple(
                s if s.last_sync or s.source_id not in runs else
                dataclasses.replace(s, last_sync=run_summary(runs[s.source_id]))
                for s in running.sources))
        from app.service import health

        checks = health.gather(self.settings, [s for s in self.settings.sources if s.enabled])
        paused, until = self.paused
        return offline_status(self.settings.sources, self.source_counts(), self.recent_runs(),
                              health.summarize(checks, {}), paused, until)

    async def check_health(self) -> dict[str, Any]:
        """Run the health checks now (the service also runs them every HEALTH_CHECK_INTERVAL),
        re-apply holds, offer degraded watchers live watching again, notice clock jumps."""
        from app.service import health

        self._check_clock()
        sources = [s for s in self.settings.sources if s.enabled]

        try:
            checks = await asyncio.wait_for(
                asyncio.to_thread(health.gather, self.settings, sources), HEALTH_TIMEOUT_S)
        except TimeoutError:
            checks = [health.Check("responding", health.ERROR,
                                   f"The health check took over {HEALTH_TIMEOUT_S:g} s; a "
                                   "source or the index may be on a disk that stopped "
                                   "responding.")]
        for sid, watcher in self.watchers.items():
            checks.append(health.check_watcher(sid, watcher.state, watcher.degraded_reason))
        try:
            self._on_battery = bool(self.settings.pause_on_battery and
                                    await asyncio.to_thread(self._power_probe))
        except Exception:
            log.exception("power probe failed")
            self._on_battery = False
        previous = self._health.get("status")
        depth = self.scheduler.depth()
        self._health = health.summarize(checks, {"sources": depth.sources, "paths": depth.paths,
                                                 "full_passes": depth.full_passes})
        blocking = [c for c in checks if c.status == health.ERROR and c.source_id is None]
        self._hold = blocking[0].detail if blocking else None
        if self._health["status"] != previous:
            self.events.publish(HealthChanged(status=self._health["status"], checks=[
                c for c in self._health["checks"] if c["status"] != health.OK]))
        for sid in await self.watchers.rearm_degraded(self._watch_spec):
            # Changes may have slipped between the old watcher's last poll and now.
            self.scheduler.request_full(sid)
        self._apply_holds()
        self._schedule_status_write(0.0)
        self._poke()
        return self._health

    # -- internals: sources and watchers ---------------------------------------------------------

    def _interval(self, source: SourceConfig) -> int:
        return source.poll_interval or self.settings.default_poll_interval

    def _watch_spec(self, source_id: str) -> tuple[list[str], float] | None:
        from app.sources.registry import watch_roots

        source = self.settings.source(source_id)
        if source is None:
            return None
        return watch_roots(source), float(self._interval(source))

    async def _arm(self, source: SourceConfig) -> None:
        sid = source.source_id
        self.scheduler.arm(sid, self._interval(source))
        self._set_state(sid, "queued")
        spec = self._watch_spec(sid)
        if self._watch and spec is not None and spec[0]:
            try:
                await self.watchers.arm(sid, *spec)
            except Exception as exc:  # no live watching; periodic passes still run
                log.exception("cannot watch %s", sid)
                self.events.publish(WatcherChanged(source_id=sid, state="off",
                                                   reason=str(exc)))
            else:
                state, reason = self.watchers.state(sid)
                self.events.publish(WatcherChanged(source_id=sid, state=state, reason=reason))
        self._poke()

    def _paths_seen(self, source_id: str, paths: set[str]) -> None:
        """A watcher saw paths change (on its thread): queue a re-check of them."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._hint, source_id, paths)

    def _hint(self, source_id: str, paths: set[str]) -> None:
        if source_id not in self.watchers:
            return
        self.scheduler.hint(source_id, paths)
        self._poke()

    def _watcher_state(self, source_id: str, state: str, reason: str) -> None:
        self.events.publish(WatcherChanged(source_id=source_id, state=state, reason=reason))
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._schedule_status_write, 0.5)

    # -- internals: the loop and the passes ------------------------------------------------------

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _enabled(self) -> list[str]:
        return [s.source_id for s in self.settings.sources if s.enabled]

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._check_clock()
            paused, until = self.paused
            held = paused or self._hold is not None or self._on_battery
            if self._purge_pending and not held and self.scheduler.retry(PURGE_RETRY).ready():
                await self._finish_purges()
                continue
            job = None if held else self.scheduler.next_job(self._enabled())
            if job is None:
                self._apply_holds()
                self._wake.clear()
                timeout = self._sleep_for(until if paused else None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            await self._pass(job)

    async def _health_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.health_check_interval)
            try:
                await self.check_health()
            except Exception:  # a broken check must not end the checking
                log.exception("health check failed")
            self._maybe_backup(changed=False)  # a pending change whose interval has now passed

    def _sleep_for(self, paused_until: float | None) -> float:
        if paused_until is not None:
            return max(0.1, min(60.0, paused_until - time.time()))
        cap = 60.0
        if self._purge_pending:
            cap = max(0.1, min(cap, self.scheduler.retry(PURGE_RETRY).retry_in()))
        return self.scheduler.sleep_for(cap)

    async def _pass(self, job: Job, *, listener: Callable[[Progress], None] | None = None,
                    cancel: threading.Event | None = None,
                    raise_errors: bool = False) -> SyncReport | None:
        """One pass, one at a time (the scheduler's and those asked for through sync_once)."""
        async with self._pass_lock:
            source = self.settings.source(job.source_id)
            if source is None or self._indexer is None or self._stopping:
                if raise_errors:
                    raise PassError(f"{job.source_id}: the source was removed or the service "
                                    "is stopping.")
                return None
            self._indexer.cancel.clear()  # a cancel applies to the pass it was meant for
            self._listener = listener
            forward = asyncio.create_task(self._forward_cancel(cancel)) if cancel else None
            try:
                report = await self._run_pass(job, source)
            finally:
                self._listener = None
                if forward is not None:
                    forward.cancel()
            if report is None and raise_errors:
                raise PassError(self._last.get(job.source_id, {}).get("error")
                                or f"{job.source_id}: the pass failed.")
            return report

    async def _forward_cancel(self, cancel: threading.Event) -> None:
        # A threading.Event set by whoever asked (an API job): poll it, cheaply, while the
        # pass runs; the indexer stops at its next batch boundary.
        while not cancel.is_set():
            await asyncio.sleep(0.1)
        if self._indexer is not None:
            self._indexer.cancel.set()

    async def _run_pass(self, job: Job, source: SourceConfig) -> SyncReport | None:
        source_id = job.source_id
        assert self._indexer is not None
        self._current = source_id
        self._set_state(source_id, "scanning" if job.full else "indexing")
        try:
            loop = asyncio.get_running_loop()
            report = await loop.run_in_executor(
                self._pass_executor, self._indexer.sync_source, source,
                sorted(job.paths) if job.paths is not None else None)
        except Exception as exc:  # recorded and shown; the service goes on with other sources
            log.exception("sync of %s failed", source_id)
            reason = _describe(exc, self.settings)
            wait = self.scheduler.failed(job, reason)
            retry = self.scheduler.retry(source_id)
            self._last[source_id] = {"finished_at": time.time(), "outcome": "error",
                                     "error": reason, "problems": []}
            self._set_state(source_id, "error")
            self.events.publish(SyncFailed(source_id=source_id, reason=reason,
                                           retry_in=round(wait, 1), failures=retry.failures,
                                           failing=retry.failing))
            return None
        finally:
            self._current = None
            self._progress.pop(source_id, None)
            self._index_changed()
            await self._refresh_counts()
        self.scheduler.finished(job, cancelled=report.cancelled)
        summary = report.as_dict()
        self._last[source_id] = {"finished_at": time.time(),
                                 "outcome": "cancelled" if report.cancelled else "ok", **summary}
        self._set_state(source_id, "queued" if self.scheduler.is_queued(source_id) else "idle")
        self.events.publish(SyncFinished(source_id=source_id, report=summary,
                                         targeted=not job.full))
        self._retry_files_later(source_id, report.retry_paths)
        self._schedule_status_write(0.5)
        changed = any(summary.get(k) for k in ("added", "modified", "deleted", "moved"))
        self._maybe_backup(changed=changed)
        return report

    def _retry_files_later(self, source_id: str, paths: list[str]) -> None:
        """Files whose failure may pass (a timeout under load) are re-checked after a minute,
        not only at the next full pass, which may be hours away."""
        loop = self._loop
        if not paths or loop is None or self._stopping:
            return

        def requeue() -> None:
            if not self._stopping and self.settings.source(source_id) is not None:
                self.scheduler.hint(source_id, paths)
                self._poke()

        loop.call_later(RETRY_FILES_AFTER_S, requeue)

    async def _finish_purges(self) -> None:
        """Retry an interrupted removal: the indexer repairs and finishes it before any write."""
        retry = self.scheduler.retry(PURGE_RETRY)
        try:
            await self._on_writer(lambda ix: ix.ensure_consistent())
        except Exception as exc:
            log.exception("finishing a removal failed")
            retry.record_failure(str(exc))
            return
        retry.record_success()
        self._purge_pending = False
        await self._refresh_counts()
        self.events.publish(RemovalFinished())

    def _set_state(self, source_id: str, state: str, reason: str = "") -> None:
        if self._states.get(source_id) != state:
            self._states[source_id] = state
            self.events.publish(StateChanged(source_id=source_id, state=state, reason=reason))
            self._schedule_status_write(0.5)

    async def _refresh_counts(self) -> None:
        self._counts_reading = True
        try:
            self._counts = await asyncio.to_thread(self.source_counts)
            self._counts_read_at = time.monotonic()
        except Exception:
            log.exception("cannot read document counts")
        finally:
            self._counts_reading = False

    def _trailing_counts(self) -> None:
        self._counts_trailing = None
        self._refresh_counts_during_pass()

    def _refresh_counts_during_pass(self) -> None:
        """On the loop, while a pass commits batches: read the counts again (at most every
        COUNTS_REFRESH_S), so every face shows documents becoming searchable, not "0"."""
        if self._stopping:
            return
        wait = COUNTS_REFRESH_S - (time.monotonic() - self._counts_read_at)
        if self._counts_reading or wait > 0:
            # Too soon: read once more when the window ends, so the last commit before a quiet
            # spell (a slow file) is not left out of the counts.
            if self._counts_trailing is None and self._loop is not None:
                self._counts_trailing = self._loop.call_later(
                    max(wait, 0.1), self._trailing_counts)
            return
        self._counts_reading = True

        async def go() -> None:
            await self._refresh_counts()
            self._schedule_status_write(0.5)

        task = asyncio.ensure_future(go())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _hold_reason(self) -> str | None:
        paused, until = self.paused
        if paused:
            if until is None:
                return "Paused until you resume."
            return "Paused until " + time.strftime("%H:%M", time.localtime(until)) + "."
        if self._on_battery:
            return "Waiting for mains power (pause on battery is on)."
        return self._hold

    def _waiting_reason(self, source: SourceConfig) -> str:
        """Why this source is not syncing right now, in words; empty when it is not waiting."""
        sid = source.source_id
        if self._current == sid:
            return ""
        hold = self._hold_reason()
        if hold:
            return hold
        retry = self.scheduler.retry(sid)
        queued = self.scheduler.is_queued(sid)
        if queued and not retry.ready():
            return (f"Retrying in {retry.retry_in():.0f} s after: {retry.last_error}"
                    if not retry.failing else
                    f"Keeps failing ({retry.last_error}); retried every "
                    f"{retry.backoff.max_delay / 60:.0f} min or when you press Sync now.")
        if queued and self._current is not None:
            return f"Queued behind {self._current}."
        watcher = self.watchers.get(sid)
        if watcher is not None and watcher.state == "degraded":
            return watcher.degraded_reason
        return ""

    def _apply_holds(self) -> None:
        """Show held sources as paused (with the reason) and released ones as they are."""
        reason = self._hold_reason()
        for s in self.settings.sources:
            sid = s.source_id
            if sid == self._current:
                continue
            current = self._states.get(sid)
            if reason:
                if current != "paused":
                    self._set_state(sid, "paused", reason)
            elif current == "paused":
                self._set_state(sid, "queued" if self.scheduler.is_queued(sid) else "idle")

    def _check_clock(self) -> None:
        wall, mono = self._wall(), self._clock()
        mark, self._clock_mark = self._clock_mark, (wall, mono)
        if mark is None:
            return
        drift = (wall - mark[0]) - (mono - mark[1])
        if abs(drift) < CLOCK_JUMP_S:
            return
        log.info("clock jumped by %.0f s (sleep/resume?): reconciling every source", drift)
        self.events.publish(ClockJumped(seconds=round(drift)))
        for sid in self._enabled():
            self.scheduler.request_full(sid)
        self._poke()

    # -- internals: the status file and the pause -------------------------------------------------

    def _status_changed(self) -> None:
        self._schedule_status_write(0.5)

    def _schedule_status_write(self, delay: float) -> None:
        """Write service-status.json soon (coalesced), off the loop thread."""
        loop = self._loop
        if loop is None or self._stopping or (
                self._status_write is not None and delay > 0):
            return
        if self._status_write is not None:
            self._status_write.cancel()

        def go() -> None:
            self._status_write = None
            if not self._stopping:
                loop.run_in_executor(None, self._write_status, self.get_status())

        self._status_write = loop.call_later(delay, go)

    def _write_status(self, status: ServiceStatus) -> None:
        try:
            write_status_file(self.settings.state_dir, status)
        except Exception:
            log.exception("cannot write the service status file")

    def _on_progress(self, progress: Progress) -> None:
        info = PassInfo(progress.phase, progress.done, progress.total, progress.failed,
                        progress.current, round(progress.rate, 2), progress.eta_s,
                        progress.parsed, progress.skipped)
        before = self._progress.get(progress.source_id)
        self._progress[progress.source_id] = info
        if (self._loop is not None and progress.done
                and (before is None or before.done != progress.done)):
            self._loop.call_soon_threadsafe(self._refresh_counts_during_pass)
        listener = self._listener
        if listener is not None:
            try:
                listener(progress)
            except Exception:  # a listener's bug must not end the pass
                log.exception("progress listener failed")
        if (progress.phase == "indexing" and self._loop is not None
                and self._states.get(progress.source_id) == "scanning"):
            # Called on a pass thread: state changes belong to the loop.
            self._loop.call_soon_threadsafe(self._set_state, progress.source_id, "indexing")
        self.events.publish(PassProgress(
            source_id=progress.source_id, phase=info.phase, done=info.done, total=info.total,
            failed=info.failed, current=info.current, rate=info.rate, eta_s=info.eta_s,
            parsed=info.parsed, skipped=info.skipped))

    def _pause_path(self) -> Path:
        return self.settings.state_dir / PAUSE_FILE

    def _read_pause(self) -> dict[str, Any]:
        try:
            return json.loads(self._pause_path().read_text())
        except (OSError, ValueError):
            return {}

    def _write_pause(self, data: dict[str, Any]) -> None:
        self._pause = data
        write_atomic(self._pause_path(), json.dumps(data))


RETRY_FILES_AFTER_S = 60.0
COUNTS_REFRESH_S = 1.0  # during a pass, the counts are read again at most this often


def _describe(exc: BaseException, settings: Settings) -> str:
    """A pass's error in words a person can act on (a full disk reads the same as in the CLI)."""
    from app.core.errors import disk_full_message, is_disk_full, one_line

    if is_disk_full(exc):
        return disk_full_message(settings.index_uri).replace(
            "then run the sync again", "and syncing resumes by itself")
    return one_line(exc)


def create_orchestration_service(settings: Settings | None = None, *,
                                 local_db_path: str | os.PathLike[str] | None = None,
                                 s3_bucket: str | None = None,
                                 enable_source_monitoring: bool = True,
                                 **service_kw: Any) -> Service:
    """The seed's factory: a Service for the user's settings (or `settings`), with the index
    at `local_db_path` and backups to `s3_bucket` when given."""
    from app.config import load_settings

    settings = settings if settings is not None else load_settings()
    overrides = {}
    if local_db_path is not None:
        overrides["lancedb_uri"] = str(Path(local_db_path).expanduser())
    if s3_bucket is not None:
        overrides["s3_bucket"] = s3_bucket
    if overrides:
        settings = dataclasses.replace(settings, values={**settings.values, **overrides})
    return Service(settings, watch=enable_source_monitoring, **service_kw)
