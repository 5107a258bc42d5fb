"""`lancedb-sync run`: the sync service in the foreground, without a UI toolkit.

On a terminal it shows a compact live view (one line per source, redrawn in place, and the last
few changes); otherwise (a pipe, a log collector, systemd) one plain line per event that matters.
SIGINT/SIGTERM stop it gracefully: the pass under way stops at a batch boundary, nothing partial
is committed, the watchers stop and the index is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, TextIO

from app.cli.errors import EXIT_BUSY, EXIT_FAIL, EXIT_OK
from app.service.events import (
    BackupFailed,
    ClockJumped,
    Event,
    HealthChanged,
    PassProgress,
    Paused,
    Resumed,
    StateChanged,
    SyncFailed,
    SyncFinished,
    WatcherChanged,
)
from app.service.status import ServiceStatus, SourceStatus
from app.wording import ago, eta

REDRAW_S = 0.25


@dataclass(frozen=True)
class ApiOptions:
    """Serve the REST API beside the service (None: the settings' address and port)."""

    host: str | None = None
    port: int | None = None


def busy_message(exc: BaseException, settings: Any) -> str:
    """Another process owns the index: say so, and where its API answers if it serves one."""
    from app.api.discovery import read_running

    running = read_running(settings.state_dir)
    where = f" Its REST API is at {running.url}." if running is not None else ""
    return f"lancedb-sync: {exc}{where}"


async def run_service(settings: Any, *, watch: bool | None, out: TextIO, err: TextIO,
                      live: bool, api: ApiOptions | None = None) -> int:
    from app.service.errors import IndexLockedError
    from app.service.orchestrator import Service

    service = Service(settings, watch=watch)
    try:
        await service.start()
    except IndexLockedError as exc:
        print(busy_message(exc, settings), file=err)
        return EXIT_BUSY
    server = None
    if api is not None:
        server = await _start_api(service, settings, api, err)
        if server is None:
            await service.stop()
            return EXIT_FAIL
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C only
            loop.add_signal_handler(sig, stop.set)
    view: LiveView | LogLines = LiveView(service, out) if live else LogLines(out)
    printer = asyncio.create_task(view.run(service))
    n = len(settings.sources)
    served = f"; REST API at {server.url}" if server is not None else ""
    print(f"lancedb-sync: running ({n} source{'s' if n != 1 else ''}{served}); Ctrl-C to stop.",
          file=err, flush=True)
    await stop.wait()
    printer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await printer
    view.close()
    print("lancedb-sync: stopping…", file=err, flush=True)
    t = time.monotonic()
    if server is not None:  # stop accepting and drain first, then the service
        await server.stop()
    await service.stop()
    print(f"lancedb-sync: stopped ({time.monotonic() - t:.1f} s).", file=err, flush=True)
    return EXIT_OK


async def _start_api(service: Any, settings: Any, api: ApiOptions, err: TextIO) -> Any:
    from app.api.server import ApiServer
    from app.service.errors import one_line

    server = ApiServer(service, settings, host=api.host, port=api.port)
    try:
        await server.start()
    except OSError as exc:
        print(f"lancedb-sync: cannot serve the REST API on {server.host}:{server.port}: "
              f"{one_line(exc)}. Choose another address or port (api_host, api_port), or run "
              "without it (--no-api).", file=err, flush=True)
        return None
    if server.warning:
        print(f"lancedb-sync: warning: {server.warning}", file=err, flush=True)
    return server


def describe_finished(source_id: str, report: dict[str, Any]) -> str | None:
    r = report
    if not (r["added"] or r["modified"] or r["deleted"] or r["moved"] or r["failed"]
            or r["problems"] or r.get("cancelled")):
        return None
    parts = [f"{k} {r[k]}" for k in ("added", "modified", "deleted", "moved", "failed") if r[k]]
    line = f"{source_id}: {', '.join(parts) or 'no changes'} ({r['seconds']:.2f} s)"
    if r.get("cancelled"):
        line += ", stopped early; resumes on the next pass"
    return line + "".join(f"\n  ! {p}" for p in r["problems"])


def describe_event(ev: Event) -> str | None:
    """The plain-text line for an event, or None for events not worth a line."""
    who = ev.source_id or "service"
    match ev:
        case SyncFinished(report=report):
            return describe_finished(who, report)
        case SyncFailed(reason=reason, retry_in=retry_in):
            return f"{who}: error: {reason} (retry in {retry_in:.0f} s)"
        case WatcherChanged(state="degraded", reason=reason):
            return f"{who}: watcher degraded: {reason}"
        case WatcherChanged(state="watching"):
            return f"{who}: watching for changes"
        case Paused(until=until):
            return "paused" + (" until " + time.strftime("%H:%M", time.localtime(until))
                               if until else " until resumed")
        case Resumed():
            return "resumed"
        case HealthChanged(status=status, checks=checks):
            problems = "; ".join(c["detail"] for c in checks)
            return f"health: {status}" + (f": {problems}" if problems else "")
        case StateChanged(state="paused", reason=reason) if reason:
            return f"{who}: holding: {reason}"
        case ClockJumped(seconds=seconds):
            return f"clock jumped by {seconds} s (sleep/resume?): checking every source"
        case BackupFailed(reason=reason):
            return f"backup failed: {reason}"
    return None


class LogLines:
    """One timestamped line per event that matters; progress at most every 2 s per source."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._last_progress: dict[str | None, float] = {}

    async def run(self, service: Any) -> None:
        # What was decided while the service started (a hold, a failing check) happened before
        # this view listened: say it first.
        for line in self.opening(service.get_status()):
            print(f"{time.strftime('%H:%M:%S')} {line}", file=self.out, flush=True)
        async for ev in service.events.stream():
            line = self.line(ev)
            if line:
                stamp = time.strftime("%H:%M:%S", time.localtime(ev.at))
                print(f"{stamp} {line}", file=self.out, flush=True)

    @staticmethod
    def opening(status: ServiceStatus) -> list[str]:
        lines = []
        health = status.health or {}
        checks = [c for c in health.get("checks", []) if c["status"] != "ok"]
        if checks:
            lines.append(f"health: {health.get('status')}: "
                         + "; ".join(c["detail"] for c in checks))
        reasons = {s.waiting for s in status.sources if s.waiting}
        said = " ".join(lines)
        lines.extend(f"holding: {r}" for r in sorted(reasons) if r not in said)
        return lines

    def line(self, ev: Event) -> str | None:
        if isinstance(ev, PassProgress):
            now = time.monotonic()
            if ev.phase != "indexing" or now - self._last_progress.get(ev.source_id, 0) < 2:
                return None
            self._last_progress[ev.source_id] = now
            left = f", ETA {eta(ev.eta_s)}" if ev.eta_s else ""
            return (f"{ev.source_id}: {ev.done:,}/{ev.total:,} indexed, {ev.failed} "
                    f"failed{left}")
        return describe_event(ev)

    def close(self) -> None:
        pass


class LiveView:
    """A few lines redrawn in place: a header, one line per source, the latest changes."""

    def __init__(self, service: Any, out: TextIO, recent: int = 5) -> None:
        self.service = service
        self.out = out
        self.recent: deque[str] = deque(maxlen=recent)
        self._drawn = 0
        self._dirty = True

    async def run(self, service: Any) -> None:
        async def redraw() -> None:
            while True:
                self.draw()
                await asyncio.sleep(REDRAW_S if self._dirty else 1.0)

        painter = asyncio.create_task(redraw())
        try:
            async for ev in service.events.stream():
                line = describe_event(ev)
                if line:
                    stamp = time.strftime("%H:%M:%S", time.localtime(ev.at))
                    self.recent.extend(f"{stamp} {part}" for part in line.splitlines())
                self._dirty = True
        finally:
            painter.cancel()

    def lines(self) -> list[str]:
        status = self.service.get_status()
        width = max(20, _terminal_width() - 1)
        health = (status.health or {}).get("status", "…")
        head = "paused" if status.paused else ("held" if status.held else "running")
        q = status.queue
        out = [f"lancedb-sync · {head} · health {health} · queue {q.sources} "
               f"source(s), {q.paths} path(s) · Ctrl-C stops"]
        for s in status.sources:
            out.append("  " + source_line(s))
            if s.waiting:
                out.append("    ↳ " + s.waiting)
        if self.recent:
            out.append("Recent:")
            out.extend("  " + r for r in self.recent)
        return [line[:width] for line in out]

    def draw(self) -> None:
        lines = self.lines()
        # Up to the first line of the previous drawing, then rewrite and clear what is left.
        buf = "\x1b[F" * self._drawn if self._drawn else ""
        buf += "".join(f"\r\x1b[2K{line}\n" for line in lines)
        if len(lines) < self._drawn:
            buf += "\x1b[J"
        self.out.write(buf)
        self.out.flush()
        self._drawn = len(lines)
        self._dirty = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.draw()


def source_line(s: SourceStatus) -> str:
    sid, state, p = s.source_id, s.state, s.progress
    if p and p.total:
        pct = 100 * p.done / p.total
        rate = f" {p.rate:.0f}/s" if p.rate else ""
        left = f" ETA {eta(p.eta_s)}" if p.eta_s else ""
        current = f"  {p.current.removeprefix('file://')}" if p.current else ""
        return (f"{sid:<16} {state:<9} {p.done:,}/{p.total:,} {pct:3.0f}%{rate}{left}"
                f"{current}")
    last = s.last_sync or {}
    when = ""
    if last.get("finished_at"):
        when = f" · synced {ago(last['finished_at'])}"
    failed = f" · {s.failed:,} failed" if s.failed else ""
    watch = f" · {s.watcher}" if s.watcher not in (None, "off") else ""
    return f"{sid:<16} {state:<9} {s.documents:,} docs{failed}{when}{watch}"


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def main(settings: Any, *, watch: bool | None, plain: bool = False,
         api: ApiOptions | None = None) -> int:
    out = sys.stdout
    # Windows consoles get the plain lines: cursor movement there depends on the terminal.
    live = not plain and out.isatty() and sys.platform != "win32"
    return asyncio.run(run_service(settings, watch=watch, out=out, err=sys.stderr, live=live,
                                   api=api))
