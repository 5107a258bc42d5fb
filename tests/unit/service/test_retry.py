import random

from app.service.retry import Backoff, RetryState


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_backoff_grows_exponentially_within_jitter_and_cap():
    b = Backoff(base=2, factor=2, max_delay=60, jitter=0.2, rng=random.Random(1))
    for attempt, raw in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32)]:
        d = b.delay(attempt)
        assert raw * 0.8 <= d <= raw * 1.2
    assert all(b.delay(n) <= 60 for n in range(6, 20))
    assert Backoff(jitter=0.0).delay(3) == 8.0


def test_jitter_spreads_clients():
    delays = {round(Backoff(rng=random.Random(seed)).delay(4), 3) for seed in range(20)}
    assert len(delays) > 10


def test_retry_state_waits_then_stops_hammering_and_recovers():
    clock = Clock()
    state = RetryState(Backoff(jitter=0.0, max_delay=600), max_retries=3, clock=clock)
    assert state.ready()
    waits = [state.record_failure("boom") for _ in range(3)]
    assert waits == [2.0, 4.0, 8.0] and not state.failing
    assert not state.ready() and state.retry_in() == 8.0
    clock.now += 8.0
    assert state.ready()
    assert state.record_failure("still boom") == 600 and state.failing
    state.reset_wait()  # the user pressed "sync now"
    assert state.ready() and state.failures == 4
    state.record_success()
    assert state.failures == 0 and not state.failing and state.last_error == ""
