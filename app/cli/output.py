"""What the command line shows while it works: one live status line on stderr (a pass's counts,
rate and ETA; a transfer's files and bytes), and Ctrl-C that stops a job cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from app.cli.errors import EXIT_INTERRUPTED
from app.wording import eta, size


class StatusLine:
    """One live line on stderr, rewritten in place (a TTY only); cleared by finish()."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._shown = False

    @staticmethod
    def columns() -> int:
        with contextlib.suppress(OSError):
            return os.get_terminal_size(sys.stderr.fileno()).columns
        return 80

    def show(self, line: str) -> None:
        cols = self.columns()
        sys.stderr.write("\r" + line[:cols - 1].ljust(cols - 1))
        sys.stderr.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * (self.columns() - 1) + "\r")
            sys.stderr.flush()
            self._shown = False


class ProgressLine(StatusLine):
    """A sync pass: counts, rate and ETA (app.models.Progress)."""

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if p.phase == "indexing" and now - self._last < 0.1 and p.done != p.total:
            return
        self._last = now
        if p.phase == "done":  # the summary says it; a stopped pass was not "done"
            self.finish()
            return
        self.show(progress_text(p, self.columns() - 1))


def progress_text(p: Any, width: int) -> str:
    """A pass's progress in at most `width` characters. The counts are never cut: the bar
    shrinks, then the rate and ETA go, and the file name is shortened from the left
    ("…/notes/today.md") or left out."""
    sid = tail(p.source_id, 24)
    if p.phase != "indexing" or not p.total:
        return f"{sid}: {p.phase}…"[:width]
    counts = f"{p.done}/{p.total} indexed"
    failed = f"{p.failed} failed" if p.failed else ""
    extras = [f"ETA {eta(p.eta_s)}" if p.eta_s is not None else "", f"{p.rate:.0f}/s",
              f"({p.parsed} read)"]
    where = p.current.removeprefix("file://")
    line = ""
    for bar, keep in ((24, 3), (12, 3), (12, 2), (12, 1), (0, 2), (0, 1), (0, 0)):
        parts = [f"{sid}:"]
        if bar:
            filled = int(bar * p.done / p.total)
            parts.append(f"[{'#' * filled}{'.' * (bar - filled)}]")
        parts += [counts, *[e for e in extras[:keep] if e], failed]
        line = " ".join(x for x in parts if x)
        room = width - len(line) - 2
        if room >= 12 or (not where and len(line) <= width):
            return f"{line}  {tail(where, room)}" if where else line
    if len(line) <= width:
        return line
    return " ".join(x for x in (counts, failed) if x)[:width]


class TransferLine(StatusLine):
    """Backup/restore progress: files and bytes."""

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        if p.bytes_total:
            line = (f"{p.phase}: {p.files_done}/{p.files_total} files, "
                    f"{size(p.bytes_done)} of {size(p.bytes_total)}")
        elif p.files_total:
            line = f"{p.phase}: {p.files_done}/{p.files_total} files"
        else:
            line = f"{p.phase}…"
        self.show(line)


class CountLine(StatusLine):
    """A job counted in items: "re-embedding: 4,096/52,000"."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def __call__(self, done: int, total: int) -> None:
        if self.enabled:
            self.show(f"{self.what}: {done:,}/{total:,}")


def tail(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1):]


@contextlib.contextmanager
def ctrl_c_cancels(doing: str = "stopping after the current batch") -> Iterator[threading.Event]:
    """The first Ctrl-C sets the event the job watches (it stops at a safe point: nothing
    half-written is kept); a second one ends the process at once, which the commit protocol
    makes safe too (the next run repairs)."""
    cancel = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        if cancel.is_set():
            print("\nlancedb-sync: stopped.", file=sys.stderr, flush=True)
            os._exit(EXIT_INTERRUPTED)
        cancel.set()
        print(f"\nlancedb-sync: {doing} (Ctrl-C again to stop at once)…", file=sys.stderr,
              flush=True)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if in_main else None
    try:
        yield cancel
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
