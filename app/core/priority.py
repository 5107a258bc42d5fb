"""Low-priority mode: indexing yields the CPU and the disk to whatever the person is doing.

Applied to the parser worker processes (whole process) and to the indexer's own embed and write
threads (Linux schedules threads individually, so a thread can be niced without slowing the UI
thread of the same process). Best effort everywhere: a platform that refuses only loses the
courtesy, never the sync.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

NICE_INCREMENT = 10


def lower_process_priority() -> None:
    """Lower this whole process (called first thing in a parser worker)."""
    if sys.platform == "win32":
        with contextlib.suppress(Exception):
            import psutil

            psutil.Process().nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)
        return
    with contextlib.suppress(OSError):
        os.nice(NICE_INCREMENT)
    _idle_io(0)


def lower_thread_priority() -> None:
    """Lower the calling thread only (Linux); elsewhere a no-op, the workers still run low."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        # Threads inherit their creator's nice value: never stack increments.
        if current < NICE_INCREMENT:
            os.setpriority(os.PRIO_PROCESS, tid, NICE_INCREMENT)
    except OSError as exc:
        log.debug("cannot lower thread priority: %s", exc)
    _idle_io(tid)


def _idle_io(tid: int) -> None:
    """Best-effort I/O class on Linux: lowest level of best-effort (idle could starve us)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import psutil

        psutil.Process(tid or os.getpid()).ionice(psutil.IOPRIO_CLASS_BE, 7)
