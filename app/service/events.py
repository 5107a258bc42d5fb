"""The service's event stream: one publisher side, any number of consumers.

Publishing is thread-safe (sync passes run in worker threads). Consumers either register a
callback, called on the publisher's thread, or iterate `stream()` in an asyncio loop; the bus
hands events to that loop with `call_soon_threadsafe`, so a consumer never blocks a publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # state | progress | sync_finished | error | paused | resumed | watcher
    source_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class EventBus:
    def __init__(self, max_queue: int = 1000) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Event], None]] = []
        self._queues: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = []
        self._max_queue = max_queue

    def publish(self, kind: str, source_id: str | None = None, **data: Any) -> Event:
        event = Event(kind, source_id, data)
        with self._lock:
            callbacks = list(self._callbacks)
            queues = list(self._queues)
        for callback in callbacks:
            try:
                callback(event)
            except Exception:  # a consumer's bug must not stop the service
                import logging

                logging.getLogger(__name__).exception("event callback failed")
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
