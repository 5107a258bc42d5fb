"""Retries for failing sources: exponential backoff with jitter, and a limit on hammering.

Pure bookkeeping driven by an injected clock and random source, so the timings are tested
without sleeping. A source that fails `max_retries` times in a row is marked failing and tried
again only every `max_delay` seconds, until it succeeds or the user asks for a sync.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 2.0
    factor: float = 2.0
    max_delay: float = 600.0
    jitter: float = 0.2  # ± this fraction, so many clients do not retry in lockstep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        raw = min(self.max_delay, self.base * self.factor ** max(0, attempt - 1))
        spread = raw * self.jitter
        return max(0.0, min(self.max_delay, raw + self.rng.uniform(-spread, spread)))


@dataclass
class RetryState:
    """One source's run of failures."""

    backoff: Backoff
    max_retries: int
    clock: Callable[[], float]
    failures: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""

    @property
    def failing(self) -> bool:
        """Past the retry budget: shown as an error, retried only at the slowest pace."""
        return self.failures > self.max_retries

    def record_failure(self, error: str) -> float:
        self.failures += 1
        self.last_error = error
        wait = self.backoff.max_delay if self.failing else self.backoff.delay(self.failures)
        self.next_attempt_at = self.clock() + wait
        return wait

    def record_success(self) -> None:
        self.failures = 0
        self.last_error = ""
        self.next_attempt_at = 0.0

    def ready(self) -> bool:
        return self.clock() >= self.next_attempt_at

    def retry_in(self) -> float:
        return max(0.0, self.next_attempt_at - self.clock())

    def reset_wait(self) -> None:
        """The user asked for a sync: try now, keep the count so the next failure waits longer."""
        self.next_attempt_at = 0.0
