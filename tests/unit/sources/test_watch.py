"""FolderWatcher against real watchdog observers on temporary folders.

Timing is never asserted: every test waits for the outcome (the delivered paths) with a generous
deadline, so a loaded CI machine only makes the tests slower, not red.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.observers import Observer

from app.sources.watch import FolderWatcher, _Coalescer, is_editor_junk

LINUX = sys.platform.startswith("linux")


def wait_until(pred: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or pred}")
        time.sleep(0.02)


class Recorder:
    """on_paths that records every call, the thread it ran on and any overlap between calls."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[set[str]] = []
        self.threads: set[threading.Thread] = set()
        self.overlapped = False
        self._fail_first = fail_first
        self._in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, paths: set[str]) -> None:
        with self._lock:
            self._in_flight += 1
            self.overlapped |= self._in_flight > 1
            self.calls.append(set(paths))
            self.threads.add(threading.current_thread())
            failing = len(self.calls) <= self._fail_first
        time.sleep(0.005)  # widen the window in which an overlapping call would be caught
        with self._lock:
            self._in_flight -= 1
        if failing:
            raise RuntimeError("indexer exploded")

    def union(self) -> set[str]:
        with self._lock:
            return set().union(*self.calls)

    def count(self) -> int:
        with self._lock:
            return len(self.calls)

    def has(self, *paths: Path | str) -> Callable[[], bool]:
        want = {str(p) for p in paths}
        return lambda: want <= self.union()


@pytest.fixture
def make_watcher() -> Iterator[Callable[..., FolderWatcher]]:
    made: list[FolderWatcher] = []

    def make(roots: list[Path], on_paths: Callable[[set[str]], None], **kw) -> FolderWatcher:
        kw.setdefault("quiet_s", 0.05)
        kw.setdefault("max_delay_s", 0.5)
        w = FolderWatcher([str(r) for r in roots], on_paths, **kw)
        made.append(w)
        w.start()
        return w

    yield make
    for w in made:
        w.stop()


def _write(path: Path, text: str = "x") -> Path:
    path.write_text(text)
    return path


# -- pure parts -----------------------------------------------------------------------------------


def test_coalescer_waits_for_quiet_but_not_longer_than_max_delay() -> None:
    c = _Coalescer(quiet_s=0.3, max_delay_s=2.0)
    assert c.due_at() is None
    c.add({"/a"}, now=10.0)
    assert c.due_at() == pytest.approx(10.3)
    c.add({"/b"}, now=10.2)  # more activity pushes the quiet deadline
    assert c.due_at() == pytest.approx(10.5)
    for t in (10.4, 10.6, 10.8, 11.0, 11.2, 11.4, 11.6, 11.8):  # a continuous stream
        c.add({f"/f{t}"}, now=t)
    assert c.due_at() == pytest.approx(12.0)  # capped at first event + max_delay
    assert {"/a", "/b"} <= c.take()
    assert c.due_at() is None
    c.add({"/c"}, now=20.0)
    assert c.due_at() == pytest.approx(20.3)  # a new burst starts a new max-delay window


@pytest.mark.parametrize("name", ["~$x.docx", ".~lock.x.odt#", "x.swp", "x.docx.tmp", "notes.md~",
                                  ".#notes.md", "X.SWP", "/a/b/~$Report.DOCX"])
def test_editor_junk(name: str) -> None:
    assert is_editor_junk(name)


@pytest.mark.parametrize("name", ["x.docx", "/a/.~lock/x.md", "tmp.md", "a~b.txt", "/a/b/"])
def test_not_editor_junk(name: str) -> None:
    assert not is_editor_junk(name)


# -- live watching ----------------------------------------------------------------------------


def test_create_modify_delete(tmp_path: Path, make_watcher) -> None:
    existing = _write(tmp_path / "old.txt")
    doomed = _write(tmp_path / "doomed.txt")
    states: list[tuple[str, str]] = []
    rec = Recorder()
    w = make_watcher([tmp_path], rec, on_state=lambda s, r: states.append((s, r)))
    assert w.state == "watching" and w.degraded_reason == ""
    assert states == [("watching", "")]

    new = _write(tmp_path / "new.txt")
    wait_until(rec.has(new), what="created file")
    with existing.open("a") as fh:
        fh.write("more")
    wait_until(rec.has(existing), what="modified file")
    doomed.unlink()
    wait_until(rec.has(doomed), what="deleted file")

    assert {t.name for t in rec.threads} == {"folder-watcher"}
    assert not rec.overlapped
    w.stop()
    assert w.state == "stopped" and states[-1] == ("stopped", "")


def test_rename_within_folder_delivers_both_names(tmp_path: Path, make_watcher) -> None:
    (tmp_path / "sub").mkdir()
    src = _write(tmp_path / "sub" / "a.txt")
    rec = Recorder()
    make_watcher([tmp_path], rec)
    dst = tmp_path / "sub" / "b.txt"
    src.rename(dst)
    wait_until(rec.has(src, dst), what="both ends of the rename")


def test_move_across_two_watched_folders(tmp_path: Path, make_watcher) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    src = _write(a / "doc.md")
    rec = Recorder()
    make_watcher([a, b], rec)
    dst = b / "doc.md"
    src.rename(dst)
    wait_until(rec.has(src, dst), what="both ends of the cross-root move")


def test_deleting_a_folder_delivers_its_path(tmp_path: Path, make_watcher) -> None:
    folder = tmp_path / "project"
    (folder / "deep").mkdir(parents=True)
    inner = _write(folder / "deep" / "x.md")
    rec = Recorder()
    make_watcher([tmp_path], rec)
    shutil.rmtree(folder)
    wait_until(rec.has(folder, inner), what="deleted folder and its file")


def test_burst_of_5000_files_is_coalesced_and_complete(tmp_path: Path, make_watcher,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="watchdog")
    rec = Recorder()
    make_watcher([tmp_path], rec)
    burst = tmp_path / "burst"
    burst.mkdir()
    paths = {str(burst / f"f{i:05d}.txt") for i in range(5000)}
    for p in paths:
        with open(p, "w"):
            pass

    def covered() -> bool:
        union = rec.union()
        # After a kernel queue overflow the watcher asks for a rescan of the root instead.
        return paths <= union or str(tmp_path) in union

    wait_until(covered, timeout=30, what="all 5,000 paths")
    if str(tmp_path) in rec.union():
        assert "overflow" in caplog.text.lower(), "root delivered without a queue overflow"
    else:
        assert paths <= rec.union()
    assert rec.count() < 100, f"{rec.count()} calls for 5,000 files"
    assert not rec.overlapped


def test_editor_junk_ignored_but_save_via_rename_delivers_real_name(tmp_path: Path,
                                                                     make_watcher) -> None:
    rec = Recorder()
    make_watcher([tmp_path], rec)
    junk = [_write(tmp_path / n) for n in ("~$x.docx", ".~lock.x.docx#", ".x.md.swp", "y.tmp",
                                           "notes.md~", ".#notes.md")]
    temp = _write(tmp_path / "x.docx.tmp", "new contents")
    real = tmp_path / "x.docx"
    temp.rename(real)
    wait_until(rec.has(real), what="the save-via-rename destination")
    sentinel = _write(tmp_path / "after.md")  # events arrive in order: junk came before this
    wait_until(rec.has(sentinel), what="the sentinel")
    assert not {str(p) for p in [*junk, temp]} & rec.union()


def test_flush_delivers_pending_paths_now(tmp_path: Path, make_watcher) -> None:
    rec = Recorder()
    w = make_watcher([tmp_path], rec, quiet_s=60, max_delay_s=120)
    f = _write(tmp_path / "a.md")

    def flushed() -> bool:
        w.flush()
        return str(f) in rec.union()

    wait_until(flushed, what="flush to deliver the pending path")


def test_on_paths_raising_does_not_stop_later_deliveries(tmp_path: Path, make_watcher,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder(fail_first=1)
    w = make_watcher([tmp_path], rec)
    first = _write(tmp_path / "first.md")
    wait_until(rec.has(first), what="the first (failing) delivery")
    second = _write(tmp_path / "second.md")
    wait_until(rec.has(second), what="a delivery after the failure")
    assert w.state == "watching"
    assert "on_paths failed" in caplog.text


def test_stop_is_prompt_and_nothing_is_delivered_afterwards(tmp_path: Path,
                                                           make_watcher) -> None:
    rec = Recorder()
    w = make_watcher([tmp_path], rec)
    first = _write(tmp_path / "first.md")
    wait_until(rec.has(first))
    (delivery_thread,) = rec.threads
    for i in range(50):
        _write(tmp_path / f"late{i}.md")  # pending when stop() is called
    t0 = time.monotonic()
    w.stop(timeout=5.0)
    assert time.monotonic() - t0 < 5.0
    assert w.state == "stopped"
    assert not delivery_thread.is_alive()  # so nothing can be delivered from here on
    calls = rec.count()
    _write(tmp_path / "after-stop.md")
    w.flush()
    time.sleep(0.3)  # only able to hide a failure on a slow machine, never to cause one
    assert rec.count() == calls
    w.stop()  # twice is fine


def test_queue_overflow_asks_for_a_rescan_of_the_roots(tmp_path: Path, make_watcher) -> None:
    rec = Recorder()
    w = make_watcher([tmp_path], rec)
    # What watchdog logs when the kernel drops events (max_queued_events exceeded); making the
    # kernel actually overflow needs root, so the warning is raised here directly.
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost")
    wait_until(rec.has(tmp_path), what="the root after an overflow")
    assert w.state == "watching"


# -- fallback to polling ------------------------------------------------------------------------


class RefusingObserver(Observer):
    """Fails to start the way inotify does when fs.inotify.max_user_watches is exhausted."""

    def start(self) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


class DyingObserver(Observer):
    """Starts normally, then its thread ends as if a bug had killed it."""

    def run(self) -> None:
        time.sleep(0.2)


def _polled_roots(rec: Recorder, roots: set[str], times: int) -> Callable[[], bool]:
    return lambda: sum(1 for c in list(rec.calls) if roots <= c) >= times


def test_observer_failing_to_start_degrades_to_polling(tmp_path: Path, make_watcher) -> None:
    states: list[tuple[str, str]] = []
    rec = Recorder()
    w = make_watcher([tmp_path / "a", tmp_path / "b"], rec, observer_factory=RefusingObserver,
                     poll_interval_s=0.1, on_state=lambda s, r: states.append((s, r)))
    assert w.state == "degraded"
    assert "every 0.1 s" in w.degraded_reason
    if LINUX:
        assert "max_user_watches" in w.degraded_reason
    assert states == [("degraded", w.degraded_reason)]
    roots = {str(tmp_path / "a"), str(tmp_path / "b")}
    wait_until(_polled_roots(rec, roots, 3), what="three polls of the roots")
    w.stop()
    assert w.state == "stopped" and w.degraded_reason == ""
    assert states[-1] == ("stopped", "")


def test_observer_dying_later_degrades_to_polling(tmp_path: Path, make_watcher) -> None:
    states: list[tuple[str, str]] = []
    rec = Recorder()
    w = make_watcher([tmp_path], rec, observer_factory=DyingObserver, poll_interval_s=0.1,
                     on_state=lambda s, r: states.append((s, r)))
    assert states[0] == ("watching", "")
    wait_until(lambda: w.state == "degraded", what="the dead observer to be noticed")
    assert "every 0.1 s" in w.degraded_reason and "sysctl" not in w.degraded_reason
    wait_until(_polled_roots(rec, {str(tmp_path)}, 3), what="three polls of the root")
    assert [s for s, _ in states] == ["watching", "degraded"]
    assert {t.name for t in rec.threads} == {"folder-watcher"}


def test_missing_root_degrades_with_a_reason(tmp_path: Path, make_watcher) -> None:
    missing = tmp_path / "unplugged"
    rec = Recorder()
    w = make_watcher([missing], rec, poll_interval_s=0.1)
    assert w.state == "degraded"
    assert "every 0.1 s" in w.degraded_reason
    wait_until(_polled_roots(rec, {str(missing)}, 2))
    assert os.path.basename(missing) in w.degraded_reason or "not found" in w.degraded_reason
