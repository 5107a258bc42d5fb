"""Automatic backups: when a backup is due after syncs that changed something, and running it.

This is what the service calls (kept apart from the jobs so the jobs know nothing of schedules,
back-off or the service). `AutoBackup` is Qt-free, asyncio-free and thread-safe. The service
owns one and, from a worker thread (never the loop thread), calls

    result = await asyncio.to_thread(
        auto.run_if_due, changed=report_changed, on_progress=emit, cancel=cancel_event)

after every sync pass (and on its periodic tick with `changed=False`). It backs up when a change
is pending and `backup_interval` seconds have passed since the last backup; a change seen while
the interval has not passed stays pending (persisted), so it is backed up on a later call. It
returns None when nothing was due, the BackupResult otherwise, and raises BackupError (with a
message for the person) when a due backup failed; the pending change then stays pending and the
next call retries, but not before `retry_after` seconds (back-off, so a dead network is not
hammered).

`run_now()` is the "Back up now" button; `status()` feeds the Backup window.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.backup.backup import BackupResult
from app.backup.errors import BackupError
from app.backup.manager import BackupManager
from app.backup.s3 import CredentialsProvider
from app.backup.transfer import ProgressCallback
from app.fsutil import write_atomic

log = logging.getLogger(__name__)

STATE_FILE = "backup-state.json"
RETRY_MIN_SECONDS = 60.0
RETRY_MAX_SECONDS = 3600.0


class AutoBackup:
    def __init__(self, settings: Any, *, credentials_provider: CredentialsProvider | None = None,
                 clock: Callable[[], float] = time.time,
                 manager: BackupManager | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.manager = manager or BackupManager(settings,
                                                credentials_provider=credentials_provider)
        self._path = Path(settings.state_dir) / STATE_FILE
        self._run_lock = threading.Lock()  # one backup at a time
        self._state_lock = threading.Lock()  # the state file
        self._failures = 0
        self._next_try = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.settings.s3_bucket) and bool(self.settings.backup_auto)

    # -- state ----------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    def _write(self, data: dict[str, Any]) -> None:
        write_atomic(self._path, json.dumps(data, indent=2))

    def status(self) -> dict[str, Any]:
        """last_backup_at (epoch s), last_snapshot (DEVICE/ID), pending, last_error."""
        with self._state_lock:
            data = self._read()
        return {"enabled": self.enabled, "interval": self.settings.backup_interval,
                "last_backup_at": data.get("last_backup_at"),
                "last_snapshot": data.get("last_snapshot"),
                "pending": bool(data.get("pending")), "last_error": data.get("last_error")}

    # -- decisions ------------------------------------------------------------------------------

    def due(self, *, changed: bool) -> bool:
        """Would `run_if_due(changed=…)` back up now? (Records nothing.)"""
        if not self.enabled:
            return False
        with self._state_lock:
            data = self._read()
        now = self.clock()
        if not (changed or data.get("pending")):
            return False
        if now < self._next_try:
            return False
        return now - float(data.get("last_backup_at") or 0) >= self.settings.backup_interval

    def note_change(self) -> None:
        """Record that the index changed (a sync committed something): a backup is pending."""
        with self._state_lock:
            data = self._read()
            data["pending"] = True
            data["pending_since"] = self.clock()
            self._write(data)

    def run_if_due(self, *, changed: bool, on_progress: ProgressCallback | None = None,
                   cancel: threading.Event | None = None) -> BackupResult | None:
        """Back up if due (see the module docstring). Never waits for a backup in progress:
        if one runs, the change is recorded and None is returned."""
        if not self.enabled:
            return None
        if changed:
            self.note_change()
        if not self._run_lock.acquire(blocking=False):
            return None
        try:
            if not self.due(changed=False):
                return None
            return self._run(on_progress, cancel)
        finally:
            self._run_lock.release()

    def run_now(self, *, on_progress: ProgressCallback | None = None,
                cancel: threading.Event | None = None) -> BackupResult:
        """Back up now, whatever the schedule says (waits for a backup in progress)."""
        with self._run_lock:
            return self._run(on_progress, cancel)

    def _run(self, on_progress: ProgressCallback | None,
             cancel: threading.Event | None) -> BackupResult:
        started = self.clock()
        try:
            result = self.manager.backup(on_progress=on_progress, cancel=cancel)
        except BackupError as exc:
            self._failures += 1
            delay = min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2 ** (self._failures - 1))
            self._next_try = self.clock() + delay
            with self._state_lock:
                data = self._read()
                data["last_error"] = str(exc)
                self._write(data)
            raise
        self._failures = 0
        self._next_try = 0.0
        with self._state_lock:
            data = self._read()
            # A change recorded after this backup started may have missed its pin: keep it
            # pending so a later call backs it up.
            changed_since = float(data.get("pending_since") or 0) > started
            data.update(last_backup_at=started, last_snapshot=result.snapshot.ref,
                        pending=changed_since, last_error=None)
            self._write(data)
        return result
