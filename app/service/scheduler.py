"""Which pass runs next: the service's queue, as plain bookkeeping with an injected clock.

Each source has at most one queued job: either a full pass (None) or a set of paths to re-check
(watch hints; a full pass absorbs them). Hints go before full passes, because someone just saved
a file; a source backing off after a failure keeps its job but is skipped until its retry time.
A full pass is due every `interval` seconds per source. Nothing here sleeps, reads a file or
knows about asyncio, so every rule is tested with a fake clock (tests/unit/test_scheduler.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.service.retry import Backoff, RetryState
from app.service.status import QueueDepth

Paths = frozenset[str] | None  # None: a full pass


@dataclass(frozen=True, slots=True)
class Job:
    source_id: str
    paths: Paths  # None: a full pass; else the paths to re-check

    @property
    def full(self) -> bool:
        return self.paths is None


class Scheduler:
    def __init__(self, *, max_retries: int, clock: Callable[[], float] = time.monotonic,
                 backoff: Callable[[], Backoff] = Backoff) -> None:
        self._clock = clock
        self._max_retries = max_retries
        self._backoff = backoff
        self._pending: dict[str, set[str] | None] = {}
        self._next_full: dict[str, float] = {}
        self._interval: dict[str, float] = {}
        self._retry: dict[str, RetryState] = {}

    # -- what is queued ---------------------------------------------------------------------------

    def arm(self, source_id: str, interval: float) -> None:
        """A source starts being served: a full pass now, then one every `interval` seconds."""
        self._interval[source_id] = interval
        self._pending[source_id] = None
        self._next_full[source_id] = self._clock() + interval

    def disarm(self, source_id: str) -> None:
        for table in (self._pending, self._next_full, self._interval, self._retry):
            table.pop(source_id, None)

    def request_full(self, source_id: str, *, now: bool = False) -> None:
        """Queue a full pass; `now` also skips a failure's back-off (the user asked)."""
        self._pending[source_id] = None
        if now:
            self.retry(source_id).reset_wait()

    def hint(self, source_id: str, paths: Iterable[str]) -> None:
        """Paths a watcher saw change. A queued full pass already covers them."""
        current = self._pending.get(source_id, set())
        if current is not None:
            self._pending[source_id] = current | set(paths)

    def is_queued(self, source_id: str) -> bool:
        return source_id in self._pending

    def queued_paths(self, source_id: str) -> int | None:
        """How many paths wait (None: a full pass, or nothing queued)."""
        pending = self._pending.get(source_id)
        return len(pending) if pending is not None else None

    def depth(self) -> QueueDepth:
        paths = sum(len(p) for p in self._pending.values() if p is not None)
        full = sum(1 for p in self._pending.values() if p is None)
        return QueueDepth(len(self._pending), paths, full)

    # -- what runs next ---------------------------------------------------------------------------

    def next_job(self, enabled: Iterable[str]) -> Job | None:
        """The job to run now, taken off the queue; None when nothing is due."""
        now = self._clock()
        enabled = list(enabled)
        for sid in enabled:
            if sid in self._interval and now >= self._next_full.get(sid, now):
                self._pending[sid] = None
        hinted = [sid for sid, p in self._pending.items() if p is not None]
        order = hinted + [sid for sid, p in self._pending.items() if p is None]
        for sid in order:
            if sid not in enabled or not self.retry(sid).ready():
                continue  # backing off after a failure (or disabled): the job stays queued
            paths = self._pending.pop(sid)
            return Job(sid, None if paths is None else frozenset(paths))
        return None

    def sleep_for(self, cap: float = 60.0) -> float:
        """Seconds until something may be due (a full pass, a retry)."""
        now = self._clock()
        due = [t - now for t in self._next_full.values()]
        due += [r.retry_in() for sid, r in self._retry.items() if sid in self._pending]
        return max(0.1, min([cap, *due]))

    # -- how a job ended --------------------------------------------------------------------------

    def finished(self, job: Job, *, cancelled: bool = False) -> None:
        self.retry(job.source_id).record_success()
        if job.full:
            self._next_full[job.source_id] = self._clock() + self._interval.get(
                job.source_id, 300.0)
        if cancelled:
            # Resume where it stopped on the next chance: nothing half-written was kept.
            self._pending.setdefault(job.source_id, None if job.paths is None else set(job.paths))

    def failed(self, job: Job, error: str) -> float:
        """Keep the work queued and back off; returns the wait in seconds."""
        wait = self.retry(job.source_id).record_failure(error)
        if job.paths is None:
            self._pending[job.source_id] = None
        else:
            self.hint(job.source_id, job.paths)
        return wait

    def retry(self, key: str) -> RetryState:
        """The retry bookkeeping of a source (or of another retried job, by key)."""
        if key not in self._retry:
            self._retry[key] = RetryState(self._backoff(), self._max_retries, self._clock)
        return self._retry[key]
