"""Low-priority mode: indexing yields the CPU and the disk to whatever the person is doing.

CPU priority is lowered for the parser worker processes only. Threads of the app's own process
(the pass, embed and write threads) keep their CPU priority and get only the lowest best-effort
disk priority: they share one interpreter lock with the UI thread, and a niced thread that is
descheduled while it holds the lock stalls the whole window for seconds on a busy machine (a
priority inversion seen in the tray under load). Best effort everywhere: a platform that refuses
only loses the courtesy, never the sync.
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
    """Lower the calling thread's disk priority (Linux); its CPU priority stays (see above)."""
    if not sys.platform.startswith("linux"):
        return
    _idle_io(threading.get_native_id())


def _idle_io(tid: int) -> None:
    """Best-effort I/O class on Linux: lowest level of best-effort (idle could starve us)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import psutil

        psutil.Process(tid or os.getpid()).ionice(psutil.IOPRIO_CLASS_BE, 7)
