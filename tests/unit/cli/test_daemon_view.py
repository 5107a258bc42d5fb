"""`lancedb-sync run`'s terminal views: what a person reads, from the service's status."""

from __future__ import annotations

import io
import time

from app.cli.daemon import LiveView, LogLines, describe_event
from app.service.events import ClockJumped, PassProgress, SyncFinished, WatcherChanged
from app.service.status import PassInfo, ServiceStatus, SourceStatus
from app.wording import eta


class FakeService:
    def __init__(self, status):
        self.status = status

    def get_status(self):
        return self.status


def status(**source):
    base = {"source_id": "docs", "source_type": "local", "state": "idle", "documents": 1234,
            "watcher": "watching"}
    return ServiceStatus(health={"status": "ok"}, sources=(SourceStatus(**{**base, **source}),))


def test_live_view_shows_progress_rate_eta_and_current_file():
    view = LiveView(FakeService(status(state="indexing", progress=PassInfo(
        "indexing", done=1138, total=3000, rate=494.2, eta_s=3.8,
        current="file:///home/me/b2843.md"))), io.StringIO())
    line = view.lines()[1]
    assert "indexing" in line and "1,138/3,000" in line and "38%" in line
    assert "494/s" in line and "ETA 3 s" in line and line.endswith("/home/me/b2843.md")


def test_live_view_says_why_a_source_waits_and_redraws_in_place():
    out = io.StringIO()
    view = LiveView(FakeService(status(state="paused", waiting="Waiting for mains power.",
                                       last_sync={"finished_at": time.time() - 120})), out)
    view.draw()
    first = out.getvalue()
    assert "1,234 docs" in first and "synced 2 min ago" in first
    assert "↳ Waiting for mains power." in first
    view.recent.append("12:00:00 docs: added 1 (0.10 s)")
    view.draw()
    second = out.getvalue()[len(first):]
    # Moves up over the three lines drawn before, then rewrites them.
    assert second.startswith("\x1b[F" * 3) and "Recent:" in second


def test_event_lines():
    finished = SyncFinished(source_id="docs", report={
        "added": 3, "modified": 1, "deleted": 0, "moved": 0, "failed": 0, "problems": [],
        "seconds": 0.21, "cancelled": False}, targeted=True)
    assert describe_event(finished) == "docs: added 3, modified 1 (0.21 s)"
    nothing = SyncFinished(source_id="docs", report={
        "added": 0, "modified": 0, "deleted": 0, "moved": 0, "failed": 0, "problems": [],
        "seconds": 0.01, "cancelled": False}, targeted=False)
    assert describe_event(nothing) is None  # a no-change pass is not news
    degraded = WatcherChanged(source_id="docs", state="degraded", reason="raise the limit")
    assert describe_event(degraded) == "docs: watcher degraded: raise the limit"
    assert "3600 s" in describe_event(ClockJumped(seconds=3600))


def test_plain_progress_lines_are_rate_limited():
    lines = LogLines(io.StringIO())
    ev = PassProgress(source_id="docs", phase="indexing", done=10, total=100, failed=0,
                      eta_s=75)
    assert lines.line(ev) == "docs: 10/100 indexed, 0 failed, ETA 1:15"
    assert lines.line(ev) is None


def test_eta():
    assert eta(None) == "?"
    assert eta(42) == "42 s"
    assert eta(185) == "3:05"
    assert eta(3 * 3600 + 5 * 60) == "3 h 05 min"
