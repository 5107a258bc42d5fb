"""The sync service: keeps every source's documents indexed while it runs.

One asyncio loop (the tray's qasync loop or plain asyncio headless) runs the scheduling; each
pass runs in a worker thread through one `Indexer` (the index's single writer). Watch hints are
handled before periodic full passes, one pass at a time. No Qt, no HTTP here: the CLI daemon,
the tray and the REST API drive this object and consume its `events`.

A source whose pass fails is retried with exponential backoff and jitter (`MAX_RETRIES`), then
only every few minutes until it recovers or the user asks for a sync.

Every `HEALTH_CHECK_INTERVAL` a health check looks at the index (readable, writable, free disk),
each source and each watcher; a degraded watcher is offered live watching again, with backoff.
Syncing is *held* (nothing is lost, work stays queued) while paused, on battery with
`pause_on_battery`, or while the index cannot be written; `get_status()` says why, per source.
A jump of the wall clock against the monotonic one (sleep and resume) triggers a
reconciliation pass of every source, since the OS may have dropped events meanwhile.

The running service also keeps `service-status.json` in the state folder up to date, so that
`lancedb-sync status` in another process can show what it is doing.

With a backup bucket configured (`S3_BUCKET`, `backup_auto`), a pass that changed the index makes
a backup due; it runs (beside later passes, never blocking them) once `backup_interval` has
passed since the last one (`app/backup/auto.py`). `backup_now()` is the "Back up now"
button.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app.config import Settings, save_sources
from app.fsutil import write_atomic
from app.models import SourceConfig, SourceType
from app.service.events import EventBus
from app.service.retry import Backoff, RetryState

log = logging.getLogger(__name__)

PAUSE_FILE = "service.json"
STATUS_FILE = "service-status.json"

# A wall-clock step this much larger (or smaller) than the monotonic one means the machine slept
# or its clock was set.
CLOCK_JUMP_S = 60.0
# A health check that takes longer than this (a hung network mount) is reported as such.
HEALTH_TIMEOUT_S = 20.0
# Offering live watching again to a degraded watcher: first after this, then doubling.
REARM_FIRST_S, REARM_MAX_S = 60.0, 3600.0


class Service:
    def __init__(self, settings: Settings, *, watch: bool | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 power_probe: Callable[[], bool] | None = None,
                 observer_factory: Callable[[], Any] | None = None,
                 credentials_provider: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self._credentials_provider = credentials_provider
        self._backups: Any = None  # AutoBackup, made on first use when a bucket is set
        self._backup_task: asyncio.Task[Any] | None = None
        self._backup_cancel = threading.Event()
        self._backup_status: dict[str, Any] = {}
        # The pause survives restarts in state/service.json; read once here, then kept in memory
        # (get_status and the scheduler ask for it constantly, and only this object writes it).
        self._pause = self._read_pause()
        self._clock = clock
        self._wall = wall_clock
        if power_probe is None:
            from app.service.health import on_battery

            power_probe = on_battery
        self._power_probe = power_probe
        self._observer_factory = observer_factory
        self._health: dict[str, Any] = {}
        self._hold: str | None = None  # why syncing is held, besides a pause
        self._on_battery = False
        self._rearm: dict[str, tuple[float, float]] = {}  # sid -> (next try, current delay)
        self._clock_mark: tuple[float, float] | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._status_write: asyncio.Handle | None = None
        self._started_at = 0.0
        self._pass_executor: ThreadPoolExecutor | None = None
        self._counts: dict[str, dict[str, int]] = {}
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
        self._purge_pending = False  # a removal's purge failed; retried with backoff

    # -- life cycle -------------------------------------------------------------------------------

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
        # Passes run on their own thread so low priority applies to them (and to the parser and
        # pipeline threads they start, which inherit it) but never to the event loop.
        self._pass_executor = ThreadPoolExecutor(1, thread_name_prefix="sync-pass",
                                                 initializer=init)
        # Importing the engine (numpy, the embedder's modules) takes about a second: not on the
        # loop, which may be a UI's.
        engine = await asyncio.to_thread(importlib.import_module, "app.core.sync")
        self._indexer = await asyncio.to_thread(engine.Indexer, self.settings,
                                                on_progress=self._on_progress)
        for source in self.settings.sources:
            if source.enabled:
                await self._arm(source)
        await self._refresh_counts()
        auto = self._auto_backup()
        if auto is not None:
            self._backup_status = await asyncio.to_thread(auto.status)
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
        self._backup_cancel.set()  # an upload stops at its next part; nothing is published
        if self._backup_task is not None:
            with contextlib.suppress(Exception):
                await self._backup_task
        if self._task:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sid in list(self._watchers):
            await self._disarm(sid)
        if self._status_write is not None:
            self._status_write.cancel()
        if self._indexer is not None:
            await asyncio.to_thread(self._indexer.close)
            self._indexer = None
        if self._pass_executor is not None:
            self._pass_executor.shutdown(wait=True)
            self._pass_executor = None
        with contextlib.suppress(OSError):
            (self.settings.state_dir / STATUS_FILE).unlink()

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
        self._states.pop(source_id, None)
        if self._current == source_id:
            self.cancel_current()
        if purge and self._indexer is not None:
            # On the pass thread: after the cancelled pass, never beside it.
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._pass_executor, self._indexer.purge_source, source_id)
            except Exception as exc:
                # The purge is recorded in the sync state: the next write finishes it. Until
                # then the service retries on its own, with backoff, like a failing pass.
                log.exception("removing the documents of %s failed", source_id)
                self._purge_pending = True
                wait = self._retry_state("*purge*").record_failure(str(exc))
                self.events.publish("error", source_id, reason=_describe(exc, self.settings),
                                    retry_in=round(wait, 1), failures=1, failing=False)
                self._poke()
            await self._refresh_counts()

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
        self._apply_holds()
        self._poke()

    def resume(self) -> None:
        self._write_pause({"paused": False, "until": None})
        self.events.publish("resumed")
        self._apply_holds()
        self._poke()

    def cancel_current(self) -> None:
        if self._indexer is not None and self._current is not None:
            self._indexer.cancel.set()

    def get_status(self) -> dict[str, Any]:
        """Everything a front end shows: per-source state and why it waits, counts, progress,
        the last pass, retries, the watcher, the queue and the latest health check. No I/O
        (the counts are refreshed after each pass), so a UI may call it on its own thread."""
        counts = self._counts
        paused, until = self.paused
        sources = []
        for s in self.settings.sources:
            sid = s.source_id
            watcher = self._watchers.get(sid)
            c = counts.get(sid, {})
            retry = self._retry_state(sid)
            pending = self._pending.get(sid, ())
            sources.append({
                "source_id": sid, "source_type": s.source_type.value,
                "enabled": s.enabled, "state": self._states.get(sid, "idle"),
                "waiting": self._waiting_reason(s),
                "documents": c.get("indexed", 0), "failed": c.get("failed", 0),
                "skipped": c.get("skipped", 0), "chunks": c.get("chunks", 0),
                "watcher": watcher.state if watcher else "off",
                "watcher_reason": watcher.degraded_reason if watcher else "",
                "progress": self._progress.get(sid),
                "last_sync": self._last.get(sid),
                "queued": sid in self._pending,
                "queued_paths": len(pending) if pending is not None else None,
                "failures": retry.failures,
                "retry_in": round(retry.retry_in(), 1),
                "last_error": retry.last_error,
            })
        return {"paused": paused, "paused_until": until, "held": self._hold,
                "on_battery": self._on_battery, "current": self._current,
                "queue": self._queue_depth(), "health": self._health,
                "backup": self._backup_status or None, "sources": sources}

    async def check_health(self) -> dict[str, Any]:
        """Run the health checks now (the service also runs them every HEALTH_CHECK_INTERVAL),
        re-apply holds, offer degraded watchers live watching again, notice clock jumps."""
        from app.service import health

        self._check_clock()
        sources = [s for s in self.settings.sources if s.enabled]

        def run_checks() -> list[health.Check]:
            checks = health.check_index(self.settings.index_uri, (
                self.settings.documents_table, self.settings.chunks_table))
            checks.append(health.check_state(self.settings.state_dir))
            checks.append(health.check_disk(self.settings.index_uri,
                                            self.settings.min_free_disk_mb))
            checks.extend(health.check_source(s) for s in sources)
            checks.extend(health.check_sync_state(self.settings.state_dir,
                                                  [s.source_id for s in sources]))
            return checks

        try:
            checks = await asyncio.wait_for(asyncio.to_thread(run_checks), HEALTH_TIMEOUT_S)
        except TimeoutError:
            checks = [health.Check("responding", health.ERROR,
                                   f"The health check took over {HEALTH_TIMEOUT_S:g} s; a "
                                   "source or the index may be on a disk that stopped "
                                   "responding.")]
        for sid, watcher in self._watchers.items():
            checks.append(health.check_watcher(sid, watcher.state, watcher.degraded_reason))
        try:
            self._on_battery = bool(self.settings.pause_on_battery and
                                    await asyncio.to_thread(self._power_probe))
        except Exception:
            log.exception("power probe failed")
            self._on_battery = False
        previous = self._health.get("status")
        self._health = health.summarize(checks, self._queue_depth())
        blocking = [c for c in checks if c.status == health.ERROR and c.source_id is None]
        self._hold = blocking[0].detail if blocking else None
        if self._health["status"] != previous:
            self.events.publish("health", status=self._health["status"], checks=[
                c for c in self._health["checks"] if c["status"] != health.OK])
        await self._rearm_watchers()
        self._apply_holds()
        self._schedule_status_write(0.0)
        self._poke()
        return self._health

    # -- backups --------------------------------------------------------------------------------

    def _auto_backup(self) -> Any:
        if self._backups is None and self.settings.s3_bucket:
            from app.backup.auto import AutoBackup
            from app.backup.credentials import keyring_provider

            self._backups = AutoBackup(
                self.settings, credentials_provider=self._credentials_provider
                or keyring_provider(self.settings))
        return self._backups

    def _maybe_backup(self, *, changed: bool) -> None:
        """Back up in the background if one is due; never delays the passes."""
        auto = self._auto_backup()
        if auto is None or not auto.enabled or self._stopping:
            return
        if self._backup_task is not None and not self._backup_task.done():
            if changed:  # the running backup may have pinned before this change: keep it due
                self._backup_task.add_done_callback(
                    lambda _t: self._maybe_backup(changed=True))
            return
        self._backup_task = asyncio.ensure_future(self._backup(
            lambda progress=None, cancel=None: auto.run_if_due(
                changed=changed, on_progress=progress, cancel=cancel)))

    async def backup_now(self) -> dict[str, Any]:
        """Back up now, whatever the schedule (the "Back up now" button). Returns the result;
        raises BackupError with a message for the person."""
        auto = self._auto_backup()
        if auto is None:
            raise ValueError("No backup bucket is configured (S3_BUCKET).")
        if self._backup_task is not None and not self._backup_task.done():
            with contextlib.suppress(Exception):
                await self._backup_task
        self._backup_task = asyncio.ensure_future(self._backup(
            lambda progress=None, cancel=None: auto.run_now(on_progress=progress,
                                                            cancel=cancel),
            raise_errors=True))
        return await self._backup_task

    def cancel_backup(self) -> None:
        self._backup_cancel.set()

    async def _backup(self, run: Callable[..., Any], *, raise_errors: bool = False) -> Any:
        import dataclasses

        from app.backup.errors import BackupError

        self._backup_cancel.clear()

        started: list[bool] = []

        def progress(p: Any) -> None:
            if not started:  # only a backup that is due reports progress
                started.append(True)
                self.events.publish("backup_started")
            self.events.publish("backup_progress", **dataclasses.asdict(p))

        try:
            result = await asyncio.to_thread(run, progress, self._backup_cancel)
        except BackupError as exc:
            log.warning("backup failed: %s", exc)
            self.events.publish("backup_error", reason=str(exc))
            if raise_errors:
                raise
            return None
        except Exception as exc:  # a bug: shown and logged, never the end of the service
            log.exception("backup crashed")
            self.events.publish("backup_error", reason=f"{type(exc).__name__}: {exc}")
            if raise_errors:
                raise
            return None
        finally:
            auto = self._backups
            if auto is not None:
                self._backup_status = await asyncio.to_thread(auto.status)
                self._schedule_status_write(0.5)
        if result is None:
            return None
        data = result.as_dict()
        self.events.publish("backup_finished", **data)
        return data

    @property
    def paused(self) -> tuple[bool, float | None]:
        data = self._pause
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
        self._set_state(sid, "queued")
        if self._watch and self._watch_roots(source):
            try:
                watcher = self._make_watcher(source)
                await asyncio.to_thread(watcher.start)
            except Exception as exc:  # no live watching; periodic passes still run
                log.exception("cannot watch %s", sid)
                self.events.publish("watcher", sid, state="off", reason=str(exc))
            else:
                self._watchers[sid] = watcher
                self.events.publish("watcher", sid, state=watcher.state,
                                    reason=watcher.degraded_reason)
        self._poke()

    def _watch_roots(self, source: SourceConfig) -> list[str]:
        if source.source_type is not SourceType.LOCAL_FILESYSTEM:
            return []
        return [str(Path(r).expanduser()) for r in source.config.get("watch_paths") or []]

    def _make_watcher(self, source: SourceConfig) -> Any:
        from app.sources.watch import FolderWatcher

        sid = source.source_id
        loop = self._loop
        assert loop is not None
        holder: list[Any] = []

        def on_paths(paths: set[str]) -> None:
            if holder and self._watchers.get(sid) is holder[0]:
                loop.call_soon_threadsafe(self._hint, sid, paths)

        def on_state(state: str, reason: str) -> None:
            # Only the watcher in service speaks; a trial one (re-arming) stays quiet.
            if holder and self._watchers.get(sid) is holder[0]:
                self.events.publish("watcher", sid, state=state, reason=reason)
                loop.call_soon_threadsafe(self._schedule_status_write, 0.5)

        watcher = FolderWatcher(self._watch_roots(source), on_paths,
                                poll_interval_s=float(self._interval(source)),
                                observer_factory=self._observer_factory, on_state=on_state)
        holder.append(watcher)
        return watcher

    async def _rearm_watchers(self) -> None:
        """A degraded watcher polls; every so often (with backoff) try live watching again, as
        the cause may be gone (a limit raised, a drive reconnected)."""
        from app.sources.watch import DEGRADED, WATCHING

        now = self._clock()
        for sid, watcher in list(self._watchers.items()):
            if watcher.state != DEGRADED:
                self._rearm.pop(sid, None)
                continue
            due, delay = self._rearm.setdefault(sid, (now + REARM_FIRST_S, REARM_FIRST_S))
            if now < due:
                continue
            source = self.settings.source(sid)
            if source is None:
                continue
            trial = self._make_watcher(source)
            try:
                await asyncio.to_thread(trial.start)
            except Exception:
                log.exception("re-arming the watcher of %s failed", sid)
            if trial.state == WATCHING and self._watchers.get(sid) is watcher:
                self._watchers[sid] = trial
                self._rearm.pop(sid, None)
                await asyncio.to_thread(watcher.stop)
                log.info("live watching of %s restored", sid)
                self.events.publish("watcher", sid, state=WATCHING, reason="")
                # Changes may have slipped between the old watcher's last poll and now.
                self._pending[sid] = None
            else:
                await asyncio.to_thread(trial.stop)
                delay = min(REARM_MAX_S, delay * 2)
                self._rearm[sid] = (now + delay, delay)

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

    async def _finish_purges(self) -> None:
        """Retry an interrupted removal: the indexer repairs and finishes it before any write."""
        retry = self._retry_state("*purge*")
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._pass_executor, self._indexer.ensure_consistent)
        except Exception as exc:
            log.exception("finishing a removal failed")
            retry.record_failure(str(exc))
            return
        retry.record_success()
        self._purge_pending = False
        await self._refresh_counts()
        self.events.publish("purged")

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._check_clock()
            paused, until = self.paused
            held = paused or self._hold is not None or self._on_battery
            if self._purge_pending and not held and self._retry_state("*purge*").ready():
                await self._finish_purges()
                continue
            job = None if held else self._next_job()
            if job is None:
                self._apply_holds()
                self._wake.clear()
                timeout = self._sleep_for(until if paused else None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            await self._pass(*job)

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
        due = [t - time.monotonic() for t in self._next_full.values()]
        due += [r.retry_in() for sid, r in self._retry.items() if sid in self._pending
                or (sid == "*purge*" and self._purge_pending)]
        return max(0.1, min([60.0, *due]))

    async def _pass(self, source_id: str, paths: set[str] | None) -> None:
        source = self.settings.source(source_id)
        assert source is not None and self._indexer is not None
        self._current = source_id
        self._indexer.cancel.clear()  # a cancel applies to the pass it was meant for
        self._set_state(source_id, "scanning" if paths is None else "indexing")
        try:
            loop = asyncio.get_running_loop()
            report = await loop.run_in_executor(
                self._pass_executor, self._indexer.sync_source, source,
                sorted(paths) if paths is not None else None)
        except Exception as exc:  # recorded and shown; the service goes on with other sources
            log.exception("sync of %s failed", source_id)
            retry = self._retry_state(source_id)
            wait = retry.record_failure(_describe(exc, self.settings))
            # Keep the work queued: it runs again once the backoff has passed.
            self._pending[source_id] = None if paths is None else (
                (self._pending.get(source_id) or set()) | paths)
            self._set_state(source_id, "error")
            self.events.publish("error", source_id, reason=_describe(exc, self.settings),
                                retry_in=round(wait, 1), failures=retry.failures,
                                failing=retry.failing)
            return
        finally:
            self._current = None
            self._progress.pop(source_id, None)
            await self._refresh_counts()
        self._retry_state(source_id).record_success()
        if paths is None:
            self._next_full[source_id] = time.monotonic() + self._interval(source)
        if report.cancelled:
            # Resume where it stopped on the next chance: nothing half-written was kept.
            self._pending.setdefault(source_id, None if paths is None else paths)
        summary = report.as_dict()
        self._last[source_id] = {"finished_at": time.time(), **summary}
        self._set_state(source_id, "queued" if source_id in self._pending else "idle")
        self.events.publish("sync_finished", source_id, report=summary, targeted=paths is not None)
        self._schedule_status_write(0.5)
        changed = any(summary.get(k) for k in ("added", "modified", "deleted", "moved"))
        self._maybe_backup(changed=changed)

    def _set_state(self, source_id: str, state: str, reason: str = "") -> None:
        if self._states.get(source_id) != state:
            self._states[source_id] = state
            self.events.publish("state", source_id, state=state, reason=reason)
            self._schedule_status_write(0.5)

    async def _refresh_counts(self) -> None:
        from app.core.state import SyncState

        def read() -> dict[str, dict[str, int]]:
            state = SyncState.open(self.settings.state_dir)
            try:
                return state.counts()
            finally:
                state.close()

        try:
            self._counts = await asyncio.to_thread(read)
        except Exception:
            log.exception("cannot read document counts")

    def _queue_depth(self) -> dict[str, Any]:
        paths = sum(len(p) for p in self._pending.values() if p is not None)
        return {"sources": len(self._pending), "paths": paths,
                "full_passes": sum(1 for p in self._pending.values() if p is None)}

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
        retry = self._retry_state(sid)
        if sid in self._pending and not retry.ready():
            return (f"Retrying in {retry.retry_in():.0f} s after: {retry.last_error}"
                    if not retry.failing else
                    f"Keeps failing ({retry.last_error}); retried every "
                    f"{retry.backoff.max_delay / 60:.0f} min or when you press Sync now.")
        if sid in self._pending and self._current is not None:
            return f"Queued behind {self._current}."
        watcher = self._watchers.get(sid)
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
                self._set_state(sid, "queued" if sid in self._pending else "idle")

    def _check_clock(self) -> None:
        wall, mono = self._wall(), self._clock()
        mark, self._clock_mark = self._clock_mark, (wall, mono)
        if mark is None:
            return
        drift = (wall - mark[0]) - (mono - mark[1])
        if abs(drift) < CLOCK_JUMP_S:
            return
        log.info("clock jumped by %.0f s (sleep/resume?): reconciling every source", drift)
        self.events.publish("clock_jump", seconds=round(drift))
        for s in self.settings.sources:
            if s.enabled:
                self._pending[s.source_id] = None
        self._poke()

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
                data = {"pid": os.getpid(), "started_at": self._started_at,
                        "updated_at": time.time(),
                        "health_check_interval": self.settings.health_check_interval,
                        **self.get_status()}
                loop.run_in_executor(None, self._write_status, data)

        self._status_write = loop.call_later(delay, go)

    def _write_status(self, data: dict[str, Any]) -> None:
        try:
            write_atomic(self.settings.state_dir / STATUS_FILE, json.dumps(data, default=str))
        except Exception:
            log.exception("cannot write the service status file")

    def _on_progress(self, progress: Any) -> None:
        data = {"phase": progress.phase, "done": progress.done, "total": progress.total,
                "failed": progress.failed, "current": progress.current,
                "rate": round(progress.rate, 2), "eta_s": progress.eta_s,
                "parsed": progress.parsed}
        self._progress[progress.source_id] = data
        if (progress.phase == "indexing" and self._loop is not None
                and self._states.get(progress.source_id) == "scanning"):
            # Called on a pass thread: state changes belong to the loop.
            self._loop.call_soon_threadsafe(self._set_state, progress.source_id, "indexing")
        self.events.publish("progress", progress.source_id, **data)

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
    import dataclasses

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
