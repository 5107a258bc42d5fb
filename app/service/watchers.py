"""Live watching of the sources' folders, for the service.

One FolderWatcher (app/sources/watch.py) per source that has folders. A watcher reports touched
paths and its own state (watching, or degraded to polling with a reason) from its threads; this
class hands both to the service and, every so often with a back-off, offers a degraded watcher
live watching again (the cause may be gone: a limit raised, a drive reconnected). Blocking work
(starting and stopping observers) runs in worker threads, never on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Offering live watching again to a degraded watcher: first after this, then doubling.
REARM_FIRST_S, REARM_MAX_S = 60.0, 3600.0


class Watchers:
    def __init__(self, *, on_paths: Callable[[str, set[str]], None],
                 on_state: Callable[[str, str, str], None],
                 observer_factory: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`on_paths(source_id, paths)` and `on_state(source_id, state, reason)` are called on
        the watchers' threads; the service hands them to its loop."""
        self._on_paths = on_paths
        self._on_state = on_state
        self._observer_factory = observer_factory
        self._clock = clock
        self._watchers: dict[str, Any] = {}
        self._rearm: dict[str, tuple[float, float]] = {}  # sid -> (next try, current delay)

    def get(self, source_id: str) -> Any | None:
        return self._watchers.get(source_id)

    def state(self, source_id: str) -> tuple[str, str]:
        watcher = self._watchers.get(source_id)
        return (watcher.state, watcher.degraded_reason) if watcher else ("off", "")

    def items(self) -> list[tuple[str, Any]]:
        return list(self._watchers.items())

    def __contains__(self, source_id: object) -> bool:
        return source_id in self._watchers

    async def arm(self, source_id: str, roots: list[str], poll_interval: float) -> None:
        """Start watching; raises if live watching cannot even be set up (the caller says so,
        and periodic passes still run)."""
        watcher = self._make(source_id, roots, poll_interval)
        await asyncio.to_thread(watcher.start)
        self._watchers[source_id] = watcher

    async def disarm(self, source_id: str) -> None:
        watcher = self._watchers.pop(source_id, None)
        self._rearm.pop(source_id, None)
        if watcher is not None:
            await asyncio.to_thread(watcher.stop)

    async def stop_all(self) -> None:
        for sid in list(self._watchers):
            await self.disarm(sid)

    async def rearm_degraded(self, roots: Callable[[str], tuple[list[str], float] | None],
                             ) -> list[str]:
        """Offer degraded watchers live watching again (with back-off). `roots(sid)` gives a
        source's folders and poll interval, or None if it is gone. Returns the sources whose
        live watching came back: changes may have slipped through meanwhile."""
        from app.sources.watch import DEGRADED, WATCHING

        restored = []
        now = self._clock()
        for sid, watcher in list(self._watchers.items()):
            if watcher.state != DEGRADED:
                self._rearm.pop(sid, None)
                continue
            due, delay = self._rearm.setdefault(sid, (now + REARM_FIRST_S, REARM_FIRST_S))
            if now < due:
                continue
            where = roots(sid)
            if where is None:
                continue
            trial = self._make(sid, *where)
            try:
                await asyncio.to_thread(trial.start)
            except Exception:
                log.exception("re-arming the watcher of %s failed", sid)
            if trial.state == WATCHING and self._watchers.get(sid) is watcher:
                self._watchers[sid] = trial
                self._rearm.pop(sid, None)
                await asyncio.to_thread(watcher.stop)
                log.info("live watching of %s restored", sid)
                self._on_state(sid, WATCHING, "")
                restored.append(sid)
            else:
                await asyncio.to_thread(trial.stop)
                delay = min(REARM_MAX_S, delay * 2)
                self._rearm[sid] = (now + delay, delay)
        return restored

    def _make(self, source_id: str, roots: list[str], poll_interval: float) -> Any:
        from app.sources.watch import FolderWatcher

        holder: list[Any] = []

        def on_paths(paths: set[str]) -> None:
            if holder and self._watchers.get(source_id) is holder[0]:
                self._on_paths(source_id, paths)

        def on_state(state: str, reason: str) -> None:
            # Only the watcher in service speaks; a trial one (re-arming) stays quiet.
            if holder and self._watchers.get(source_id) is holder[0]:
                self._on_state(source_id, state, reason)

        watcher = FolderWatcher(roots, on_paths, poll_interval_s=float(poll_interval),
                                observer_factory=self._observer_factory, on_state=on_state)
        holder.append(watcher)
        return watcher
