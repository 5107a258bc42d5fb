"""Folder watching as hints: which paths under the roots may have changed, coalesced.

Events are never trusted as a description of what happened (inotify drops events on overflow,
editors save through temp files and renames, network mounts report nothing). They only tell the
indexer *where* to look; the listing and the change detector still decide what changed. So a
path delivered too often is harmless, and a path never delivered is the only real failure: when
live watching cannot be trusted, the watcher falls back to asking for a rescan of the roots every
`poll_interval_s`.

No Qt and no asyncio here: the callback runs on one plain thread owned by the watcher, and the
layer above decides how to hand the paths to its own loop.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import logging
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence

import watchdog.events
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver

from app.sources.local import EDITOR_JUNK

log = logging.getLogger(__name__)

STOPPED, WATCHING, DEGRADED = "stopped", "watching", "degraded"

# How often the delivery thread checks that the observer thread is still alive; a dead observer
# means hints silently stop, so this bounds how long changes can go unnoticed.
_HEALTH_CHECK_S = 0.5

# Directory "modified" (its entry list changed) is deliberately absent: every such change also
# produces an event for the entry itself, and delivering the parent would read as "rescan this
# whole folder". Opened/closed events are absent because the indexer's own reads produce them.
_EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileDeletedEvent, FileMovedEvent,
    DirCreatedEvent, DirDeletedEvent, DirMovedEvent,
]
# `touch` and chmod arrive as IN_ATTRIB; watchdog >= 7 reports them as their own event class.
_ATTRIB = getattr(watchdog.events, "FileAttribEvent", None)
if _ATTRIB is not None:
    _EVENT_TYPES.append(_ATTRIB)
_WANTED = frozenset(cls.event_type for cls in _EVENT_TYPES)

_JUNK_RE = re.compile("|".join(f"(?:{fnmatch.translate(p.lower())})" for p in EDITOR_JUNK))


def is_editor_junk(path: str) -> bool:
    """True for editors' lock, swap and temp files (the same names the folder listing drops)."""
    return _JUNK_RE.match(os.path.basename(path.rstrip("/\\")).lower()) is not None


class _Coalescer:
    """Pending paths and when they are due. Pure bookkeeping, no threads: times are passed in."""

    def __init__(self, quiet_s: float, max_delay_s: float) -> None:
        self.quiet_s = quiet_s
        self.max_delay_s = max_delay_s
        self.paths: set[str] = set()
        self._first = 0.0
        self._last = 0.0

    def add(self, paths: set[str], now: float) -> None:
        if not paths:
            return
        if not self.paths:
            self._first = now
        self._last = now
        self.paths |= paths

    def due_at(self) -> float | None:
        if not self.paths:
            return None
        # The max-delay bound keeps a folder that is written to continuously from never being
        # delivered.
        return min(self._last + self.quiet_s, self._first + self.max_delay_s)

    def take(self) -> set[str]:
        paths, self.paths = self.paths, set()
        return paths


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher) -> None:
        self._watcher = weakref.ref(watcher)

    def dispatch(self, event: FileSystemEvent) -> None:
        # This runs on watchdog's thread: an exception here would kill the observer.
        try:
            watcher = self._watcher()
            if watcher is not None and event.event_type in _WANTED:
                watcher._hint(event)
        except Exception:
            log.exception("Folder watcher: could not handle %r", event)


class FolderWatcher:
    """Watches folders recursively and calls `on_paths` with the coalesced set of touched paths.

    `on_paths` is called from the watcher's own thread, never concurrently with itself. When live
    watching is unavailable it receives the roots themselves, meaning "rescan these".
    """

    def __init__(
        self,
        roots: Sequence[str],
        on_paths: Callable[[set[str]], None],
        *,
        quiet_s: float = 0.3,
        max_delay_s: float = 2.0,
        ignore: Callable[[str], bool] | None = None,
        observer_factory: Callable[[], BaseObserver] | None = None,
        poll_interval_s: float = 5.0,
        on_state: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not roots:
            raise ValueError("FolderWatcher needs at least one folder.")
        self.roots = [os.path.abspath(os.path.expanduser(str(r))) for r in roots]
        self._on_paths = on_paths
        self._ignore = ignore if ignore is not None else is_editor_junk
        self._observer_factory = observer_factory
        self._poll_interval_s = poll_interval_s
        self._on_state = on_state
        self._clock = clock
        self._cond = threading.Condition()
        self._pending = _Coalescer(quiet_s, max_delay_s)
        self._state = STOPPED
        self._reason = ""
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._next_poll = 0.0
        self._rescan_roots = False
        self._flush_requested = 0
        self._flush_done = 0

    # -- public ---------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def degraded_reason(self) -> str:
        return self._reason

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._rescan_roots = False
            self._pending.take()
        observer: BaseObserver | None = None
        failure: BaseException | None = None
        try:
            observer = self._make_observer()
            handler = _Handler(self)
            for root in self.roots:
                observer.schedule(handler, root, recursive=True, event_filter=_EVENT_TYPES)
            observer.start()
        except Exception as exc:
            failure = exc
            if observer is not None:
                # A failed start can leave some roots' emitters running; release them.
                _stop_observer(observer, 1.0)
            observer = None
        with self._cond:
            self._observer = observer
            if failure is None:
                self._state, self._reason = WATCHING, ""
            else:
                log.warning("Folder watcher: live watching unavailable: %s", failure)
                self._enter_degraded_locked(self._start_failure_reason(failure))
            state, reason = self._state, self._reason
            thread = self._thread = threading.Thread(target=self._run, name="folder-watcher",
                                                     daemon=True)
        _OVERFLOW.register(self)
        # Report the start state before the thread can report a later one (observer death).
        self._notify_state(state, reason)
        thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            thread, observer = self._thread, self._observer
            if thread is None:
                return
            self._stopping = True
            self._thread = self._observer = None
            self._cond.notify_all()
        _OVERFLOW.unregister(self)
        if observer is not None:
            _stop_observer(observer, max(0.0, deadline - time.monotonic()))
        # Not joined from on_paths itself, nor from on_state before start() launched the thread.
        if thread is not threading.current_thread() and thread.ident is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("Folder watcher: on_paths still running %.1f s after stop()", timeout)
        with self._cond:
            self._pending.take()
            self._state, self._reason = STOPPED, ""
            self._cond.notify_all()
        self._notify_state(STOPPED, "")

    def flush(self, timeout: float = 5.0) -> None:
        """Deliver pending paths now and wait for that delivery (no-op when stopped)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._thread is None or self._stopping:
                return
            self._flush_requested += 1
            target = self._flush_requested
            self._cond.notify_all()
            if self._thread is threading.current_thread():
                return  # called from on_paths: the loop delivers right after it returns
            while self._flush_done < target and self._thread is not None and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)

    # -- emitter thread -------------------------------------------------------------------------

    def _hint(self, event: FileSystemEvent) -> None:
        paths = {_as_str(event.src_path)}
        if event.event_type == "moved":
            # Both ends of a move: a save-via-rename from a junk temp name still delivers the real
            # name, because each end is filtered on its own.
            paths.add(_as_str(event.dest_path))
        paths = {p for p in paths if p and not self._ignore(p)}
        if not paths:
            return
        with self._cond:
            if self._stopping:
                return
            self._pending.add(paths, self._clock())
            self._cond.notify_all()

    def _overflowed(self) -> None:
        with self._cond:
            self._rescan_roots = True
            self._cond.notify_all()

    # -- delivery thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._check_observer()
            with self._cond:
                if self._stopping:
                    return
                now = self._clock()
                flush_target = self._flush_requested
                batch: set[str] | None = None
                if self._state == DEGRADED and now >= self._next_poll:
                    self._next_poll = now + self._poll_interval_s
                    batch = self._pending.take() | set(self.roots)
                elif self._rescan_roots:
                    self._rescan_roots = False
                    batch = self._pending.take() | set(self.roots)
                elif flush_target > self._flush_done:
                    batch = self._pending.take()
                else:
                    due = self._pending.due_at()
                    if due is not None and now >= due:
                        batch = self._pending.take()
                if batch is None:
                    self._cond.wait(self._wait_s(now))
                    continue
            if batch:
                self._deliver(batch)
            with self._cond:
                self._flush_done = max(self._flush_done, flush_target)
                self._cond.notify_all()

    def _wait_s(self, now: float) -> float:
        wake = [now + _HEALTH_CHECK_S]
        due = self._pending.due_at()
        if due is not None:
            wake.append(due)
        if self._state == DEGRADED:
            wake.append(self._next_poll)
        # The clock may be a test's fake; never spin and never sleep past the health check.
        return min(max(min(wake) - now, 0.01), _HEALTH_CHECK_S)

    def _deliver(self, paths: set[str]) -> None:
        with self._cond:
            if self._stopping:
                return
        try:
            self._on_paths(paths)
        except Exception:
            log.exception("Folder watcher: on_paths failed for %d path(s)", len(paths))

    def _check_observer(self) -> None:
        with self._cond:
            observer = self._observer
            if observer is None or self._stopping or observer.is_alive():
                return
            self._observer = None
            self._enter_degraded_locked(
                "Live watching stopped unexpectedly; changes are picked up every "
                f"{self._poll_interval_s:g} s instead. Restarting the app retries live watching.")
            state, reason = self._state, self._reason
        log.warning("Folder watcher: observer thread died; polling every %g s",
                    self._poll_interval_s)
        _stop_observer(observer, 1.0)
        self._notify_state(state, reason)

    # -- helpers --------------------------------------------------------------------------------

    def _make_observer(self) -> BaseObserver:
        if self._observer_factory is not None:
            return self._observer_factory()
        from watchdog.observers import Observer

        return Observer()

    def _enter_degraded_locked(self, reason: str) -> None:
        self._state, self._reason = DEGRADED, reason
        # Events may have been missed before the failure was noticed: rescan at once.
        self._next_poll = self._clock()
        self._cond.notify_all()

    def _start_failure_reason(self, exc: BaseException) -> str:
        every = f"changes are picked up every {self._poll_interval_s:g} s instead."
        linux = sys.platform.startswith("linux")
        code = getattr(exc, "errno", None)
        if isinstance(exc, OSError) and code == errno.ENOSPC:
            fix = (" On Linux, raise fs.inotify.max_user_watches (sysctl) to restore live "
                   "watching." if linux else "")
            return ("Live watching is unavailable (the system's limit on watched folders was "
                    f"reached); {every}{fix}")
        if isinstance(exc, OSError) and code == errno.EMFILE:
            fix = (" On Linux, raise fs.inotify.max_user_instances (sysctl) or close other "
                   "programs that watch folders to restore live watching." if linux else "")
            return ("Live watching is unavailable (too many folder watchers or open files "
                    f"in use); {every}{fix}")
        if isinstance(exc, FileNotFoundError):
            return (f"Live watching is unavailable (folder not found: {exc.filename or exc}); "
                    f"{every}")
        if isinstance(exc, OSError) and exc.strerror:
            where = f": {exc.filename}" if exc.filename else ""
            return f"Live watching is unavailable ({exc.strerror}{where}); {every}"
        return f"Live watching is unavailable ({type(exc).__name__}: {exc}); {every}"

    def _notify_state(self, state: str, reason: str) -> None:
        if self._on_state is None:
            return
        try:
            self._on_state(state, reason)
        except Exception:
            log.exception("Folder watcher: on_state failed")


def _as_str(path: str | bytes) -> str:
    return os.fsdecode(path) if isinstance(path, bytes) else path


def _stop_observer(observer: BaseObserver, timeout: float) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout)
    except Exception:
        log.debug("Folder watcher: error while stopping the observer", exc_info=True)


class _OverflowHook(logging.Handler):
    """Turns watchdog's "inotify queue overflowed" warning into a rescan of the roots.

    watchdog rebuilds its watches after an overflow but has no public signal that events were
    lost, and a lost event is the one failure a hint stream must not have. Its warning is the only
    trace, so it is caught here; if a future watchdog words it differently this simply stops
    firing.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._watchers: weakref.WeakSet[FolderWatcher] = weakref.WeakSet()
        self._guard = threading.Lock()
        self._installed = False

    def register(self, watcher: FolderWatcher) -> None:
        with self._guard:
            self._watchers.add(watcher)
            if not self._installed:
                logging.getLogger("watchdog.observers.inotify_c").addHandler(self)
                self._installed = True

    def unregister(self, watcher: FolderWatcher) -> None:
        with self._guard:
            self._watchers.discard(watcher)

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            if "overflow" in str(record.msg).lower():
                with self._guard:
                    watchers = list(self._watchers)
                for watcher in watchers:
                    watcher._overflowed()


_OVERFLOW = _OverflowHook()
