"""The service's backups: automatic ones after syncs that changed something, "Back up now", and
the bucket's snapshots, restore, verify and prune for the faces.

Part of `Service` (mixed in). Automatic backups run beside later passes, never blocking them;
every backup reports progress as events and can be cancelled. The one-off actions (snapshots,
restore, verify, prune, test) are blocking and meant for a worker thread or the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from app.service.events import (
    BackupFailed,
    BackupFinished,
    BackupProgress,
    BackupStarted,
    EventBus,
)

log = logging.getLogger(__name__)


class BackupControl:
    """Mixed into `Service`; relies on its `settings`, `events` and `_stopping`."""

    settings: Any
    events: EventBus
    _stopping: bool

    def _init_backups(self, credentials_provider: Callable[[], Any] | None) -> None:
        self._credentials_provider = credentials_provider
        self._backups: Any = None  # the automatic-backup schedule, made on first use
        self._backup_task: asyncio.Task[Any] | None = None
        self._backup_cancel = threading.Event()
        self._backup_status: dict[str, Any] = {}

    def _status_changed(self) -> None:  # Service rewrites its status file
        pass

    # -- the bucket, for the faces (blocking) ------------------------------------------------------

    def backup_manager(self) -> Any:
        """The bucket's snapshots, restore, verify, prune and test (app/backup), with this
        service's credentials. Blocking calls: use from a worker thread or the command line."""
        from app.backup.credentials import keyring_provider
        from app.backup.manager import BackupManager

        return BackupManager(self.settings, credentials_provider=self._credentials_provider
                             or keyring_provider(self.settings))

    # -- automatic and requested backups ----------------------------------------------------------

    def _backup_schedule(self) -> Any:
        if self._backups is None and self.settings.s3_bucket:
            from app.backup.auto import AutoBackup
            from app.backup.credentials import keyring_provider

            self._backups = AutoBackup(
                self.settings, credentials_provider=self._credentials_provider
                or keyring_provider(self.settings))
        return self._backups

    async def _load_backup_status(self) -> None:
        schedule = self._backup_schedule()
        if schedule is not None:
            self._backup_status = await asyncio.to_thread(schedule.status)

    def _maybe_backup(self, *, changed: bool) -> None:
        """Back up in the background if one is due; never delays the passes."""
        schedule = self._backup_schedule()
        if schedule is None or not schedule.enabled or self._stopping:
            return
        if self._backup_task is not None and not self._backup_task.done():
            if changed:  # the running backup may have pinned before this change: keep it due
                self._backup_task.add_done_callback(
                    lambda _t: self._maybe_backup(changed=True))
            return
        self._backup_task = asyncio.ensure_future(self._backup(
            lambda progress=None, cancel=None: schedule.run_if_due(
                changed=changed, on_progress=progress, cancel=cancel)))

    async def backup_now(self) -> dict[str, Any]:
        """Back up now, whatever the schedule (the "Back up now" button). Returns the result;
        raises BackupError with a message for the person."""
        schedule = self._backup_schedule()
        if schedule is None:
            raise ValueError("No backup bucket is configured (S3_BUCKET).")
        if self._backup_task is not None and not self._backup_task.done():
            with contextlib.suppress(Exception):
                await self._backup_task
        self._backup_task = asyncio.ensure_future(self._backup(
            lambda progress=None, cancel=None: schedule.run_now(on_progress=progress,
                                                                cancel=cancel),
            raise_errors=True))
        return await self._backup_task

    def cancel_backup(self) -> None:
        self._backup_cancel.set()

    async def _stop_backups(self) -> None:
        self._backup_cancel.set()  # an upload stops at its next part; nothing is published
        if self._backup_task is not None:
            with contextlib.suppress(Exception):
                await self._backup_task

    async def _backup(self, run: Callable[..., Any], *, raise_errors: bool = False) -> Any:
        from app.backup.errors import BackupError

        self._backup_cancel.clear()
        started: list[bool] = []

        def progress(p: Any) -> None:
            if not started:  # only a backup that is due reports progress
                started.append(True)
                self.events.publish(BackupStarted())
            self.events.publish(BackupProgress(**dataclasses.asdict(p)))

        try:
            result = await asyncio.to_thread(run, progress, self._backup_cancel)
        except BackupError as exc:
            log.warning("backup failed: %s", exc)
            self.events.publish(BackupFailed(reason=str(exc)))
            if raise_errors:
                raise
            return None
        except Exception as exc:  # a bug: shown and logged, never the end of the service
            log.exception("backup crashed")
            self.events.publish(BackupFailed(reason=f"{type(exc).__name__}: {exc}"))
            if raise_errors:
                raise
            return None
        finally:
            schedule = self._backups
            if schedule is not None:
                self._backup_status = await asyncio.to_thread(schedule.status)
                self._status_changed()
        if result is None:
            return None
        data = result.as_dict()
        self.events.publish(BackupFinished(result=data))
        return data
