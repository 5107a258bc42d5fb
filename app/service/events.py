"""The service's events: one frozen type per kind, and the bus that carries them.

Every face (the tray's bridge, `lancedb-sync run`, the REST API's event stream) consumes the same
types. Each event has a `kind` (a stable string, also the name on the wire), the `source_id` it
concerns (None for the service as a whole), the time it happened and its own fields; `data`
gives those fields as a dict for faces that serialise events.

Publishing is thread-safe (passes run in worker threads). Consumers either register a callback,
called on the publisher's thread, or iterate `stream()` in an asyncio loop; the bus hands events
to that loop with `call_soon_threadsafe`, so a consumer never blocks a publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "event"
    source_id: str | None = None
    at: float = field(default_factory=time.time)

    @property
    def data(self) -> dict[str, Any]:
        """The event's own fields (not kind, source or time)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("source_id", "at")}

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source_id": self.source_id, "at": self.at, **self.data}


@dataclass(frozen=True, kw_only=True)
class StateChanged(Event):
    """A source moved to another state: idle, queued, scanning, indexing, maintaining, paused
    (held, with the reason) or error."""

    kind: ClassVar[str] = "state"
    state: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class PassProgress(Event):
    """Where a pass is (see app.models.Progress)."""

    kind: ClassVar[str] = "progress"
    phase: str
    done: int = 0
    total: int = 0
    failed: int = 0
    current: str = ""
    rate: float = 0.0
    eta_s: float | None = None
    parsed: int = 0
    skipped: int = 0  # left out by design: not failures


@dataclass(frozen=True, kw_only=True)
class SyncFinished(Event):
    kind: ClassVar[str] = "sync_finished"
    report: dict[str, Any]  # SyncReport.as_dict()
    targeted: bool = False  # a re-check of watched paths, not a full pass


@dataclass(frozen=True, kw_only=True)
class SyncFailed(Event):
    """A pass (or a removal) ended in an error; the service retries it after `retry_in`."""

    kind: ClassVar[str] = "error"
    reason: str
    retry_in: float = 0.0
    failures: int = 1
    failing: bool = False  # past MAX_RETRIES: retried only at the slowest pace


@dataclass(frozen=True, kw_only=True)
class Paused(Event):
    kind: ClassVar[str] = "paused"
    until: float | None = None


@dataclass(frozen=True, kw_only=True)
class Resumed(Event):
    kind: ClassVar[str] = "resumed"


@dataclass(frozen=True, kw_only=True)
class WatcherChanged(Event):
    kind: ClassVar[str] = "watcher"
    state: str  # watching | degraded | off
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class HealthChanged(Event):
    kind: ClassVar[str] = "health"
    status: str  # ok | warning | error
    checks: list[dict[str, Any]] = field(default_factory=list)  # the checks that are not ok


@dataclass(frozen=True, kw_only=True)
class ClockJumped(Event):
    kind: ClassVar[str] = "clock_jump"
    seconds: int


@dataclass(frozen=True, kw_only=True)
class RemovalFinished(Event):
    """An interrupted removal of a source's documents was finished by the service's retry."""

    kind: ClassVar[str] = "purged"


@dataclass(frozen=True, kw_only=True)
class BackupStarted(Event):
    kind: ClassVar[str] = "backup_started"


@dataclass(frozen=True, kw_only=True)
class BackupProgress(Event):
    kind: ClassVar[str] = "backup_progress"
    phase: str
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    current: str = ""


@dataclass(frozen=True, kw_only=True)
class BackupFinished(Event):
    kind: ClassVar[str] = "backup_finished"
    result: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class BackupFailed(Event):
    kind: ClassVar[str] = "backup_error"
    reason: str


EVENT_TYPES: tuple[type[Event], ...] = (
    StateChanged, PassProgress, SyncFinished, SyncFailed, Paused, Resumed, WatcherChanged,
    HealthChanged, ClockJumped, RemovalFinished, BackupStarted, BackupProgress, BackupFinished,
    BackupFailed)
KINDS: dict[str, type[Event]] = {t.kind: t for t in EVENT_TYPES}


class EventBus:
    def __init__(self, max_queue: int = 1000) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Event], None]] = []
        self._queues: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = []
        self._max_queue = max_queue

    def publish(self, event: Event) -> Event:
        with self._lock:
            callbacks = list(self._callbacks)
            queues = list(self._queues)
        for callback in callbacks:
            try:
                callback(event)
            except Exception:  # a consumer's bug must not stop the service
                log.exception("event callback failed")
        for loop, queue in queues:
            # A closed loop raises RuntimeError: its stream is over.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._offer, queue, event)
        return event

    def _offer(self, queue: asyncio.Queue[Event], event: Event) -> None:
        if queue.full():
            # A slow consumer loses the oldest progress, never the newest state.
            queue.get_nowait()
        queue.put_nowait(event)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    async def stream(self) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue(self._max_queue)
        entry = (loop, queue)
        with self._lock:
            self._queues.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            with self._lock:
                self._queues.remove(entry)
