"""Many files moved at once: progress, cancelling and the first error, shared by the pool.

Backup uploads, restore downloads and verify reads BACKUP_CONCURRENCY files at a time. What they
share is here, so the three report progress, stop on Ctrl-C and report a failure the same way:
progress goes to one callback, one call at a time (bytes at most five times a second, each
finished file at once); `cancel` is checked before each file and inside boto3's byte
callbacks, so a large file stops mid-way; one failed file stops the others, and the failure
reported is the real one, not a sibling's "stopped".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from app.backup.errors import BackupCancelled

log = logging.getLogger(__name__)

ProgressCallback = Callable[["BackupProgress"], None]


@dataclass(slots=True)
class BackupProgress:
    phase: str  # pinning | hashing | checking | uploading | publishing | pruning |
    #             downloading | verifying | swapping | done
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    current: str = ""


class Transfer:
    """Shared progress of a pool of transfers; raises BackupCancelled inside boto3 callbacks."""

    def __init__(self, phase: str, files_total: int, bytes_total: int,
                 on_progress: ProgressCallback, cancel: threading.Event,
                 tick: Callable[[], None] = lambda: None) -> None:
        self.progress = BackupProgress(phase, 0, files_total, 0, bytes_total)
        self.on_progress, self.cancel, self.tick = on_progress, cancel, tick
        self.failed = threading.Event()
        self._lock = threading.Lock()
        self._last = 0.0

    def check(self) -> None:
        if self.cancel.is_set():
            raise BackupCancelled("The backup job was cancelled.")
        if self.failed.is_set():
            raise BackupCancelled("stopped: another transfer failed")

    def bytes(self, n: int) -> None:
        self.check()
        with self._lock:
            self.progress.bytes_done += n
            now = time.monotonic()
            if now - self._last >= 0.2:
                self._last = now
                self._emit()

    def file_done(self, path: str) -> None:
        with self._lock:
            self.progress.files_done += 1
            self.progress.current = path
            self._emit()
        self.tick()

    def _emit(self) -> None:
        try:
            self.on_progress(BackupProgress(**{k: getattr(self.progress, k) for k in (
                "phase", "files_done", "files_total", "bytes_done", "bytes_total", "current")}))
        except Exception:
            log.exception("backup progress callback failed")


def run_pool(fn: Callable[[Any], None], items: list[Any], transfer: Transfer,
             concurrency: int) -> None:
    """`fn(item)` for every item, `concurrency` at a time; raise the first real failure."""
    if not items:
        return
    errors: list[BaseException] = []
    with ThreadPoolExecutor(concurrency, thread_name_prefix="backup") as pool:
        futures = [pool.submit(fn, item) for item in items]
        for fut in futures:
            exc = fut.exception()
            if exc is not None:
                transfer.failed.set()
                errors.append(exc)
    if errors:
        if transfer.cancel.is_set():
            raise BackupCancelled("The backup job was cancelled; what was transferred is "
                                  "kept and the next run continues from there.")
        real = [e for e in errors if not (isinstance(e, BackupCancelled)
                                           and "another transfer failed" in str(e))]
        raise (real or errors)[0]
