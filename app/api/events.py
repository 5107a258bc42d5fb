"""The event stream (`GET /api/v1/events`): the Service's events as Server-Sent Events.

Every event gets the next id and is kept in a ring of recent events, so a client that
reconnects with `Last-Event-ID` first receives what it missed (as long as the ring still holds
it; otherwise a `reset` event says some were lost), then the live events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

KEEPALIVE_S = 15.0


class EventLog:
    def __init__(self, bus: Any, *, size: int = 2000) -> None:
        self._lock = threading.Lock()
        self._ring: deque[tuple[int, str, dict[str, Any]]] = deque(maxlen=size)
        self._next = 1
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._closed = False
        self._unsubscribe = bus.subscribe(self._on_event) if bus is not None else None

    @property
    def last_id(self) -> int:
        return self._next - 1

    def _on_event(self, event: Any) -> None:  # any thread
        self.add(event.kind, event.as_dict())

    def add(self, kind: str, data: dict[str, Any]) -> int:
        with self._lock:
            eid = self._next
            self._next += 1
            self._ring.append((eid, kind, data))
            waiters = list(self._waiters)
        for loop, flag in waiters:
            with contextlib.suppress(RuntimeError):  # that loop closed: its stream is over
                loop.call_soon_threadsafe(flag.set)
        return eid

    def since(self, after: int) -> tuple[list[tuple[int, str, dict[str, Any]]], bool]:
        """Events after id `after`, and whether some were lost (older than the ring)."""
        with self._lock:
            items = [e for e in self._ring if e[0] > after]
            oldest = self._ring[0][0] if self._ring else self._next
        return items, after + 1 < oldest and after < self._next - 1

    def close(self) -> None:
        """The server is stopping: every stream ends."""
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        with self._lock:
            waiters = list(self._waiters)
        for loop, flag in waiters:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(flag.set)

    async def stream(self, last_event_id: int | None,
                     kinds: set[str] | None = None) -> AsyncIterator[str]:
        """SSE frames: missed events first (after `last_event_id`), then live ones, with a
        comment every KEEPALIVE_S so proxies and clients know the stream is alive."""
        loop = asyncio.get_running_loop()
        flag = asyncio.Event()
        entry = (loop, flag)
        with self._lock:
            self._waiters.append(entry)
        after = self.last_id if last_event_id is None else last_event_id
        try:
            yield "retry: 2000\n\n"
            if last_event_id is not None:
                with self._lock:
                    oldest = self._ring[0][0] if self._ring else self._next
                    newest = self._next - 1
                # Older than the ring holds, or an id this log never gave (the app restarted
                # and its ids began again at 1): say so, then send what the ring holds. The
                # reset's id comes before those, so ids keep increasing.
                if last_event_id + 1 < oldest or last_event_id > newest:
                    after = oldest - 1
                    yield frame(after, "reset", {
                        "message": "Some events were missed; read /api/v1/status again."})
            while not self._closed:
                flag.clear()
                items, _ = self.since(after)
                for eid, kind, data in items:
                    after = eid
                    if kinds is None or kind in kinds:
                        yield frame(eid, kind, data)
                if self._closed:
                    break
                try:
                    await asyncio.wait_for(flag.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
        finally:
            with self._lock:
                self._waiters.remove(entry)


def frame(eid: int, kind: str, data: dict[str, Any]) -> str:
    payload = json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))
    return f"id: {eid}\nevent: {kind}\ndata: {payload}\n\n"
