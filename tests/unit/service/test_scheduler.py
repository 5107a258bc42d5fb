"""The service's queue, with a fake clock: what runs next, and when."""

from __future__ import annotations

import random

from app.service.retry import Backoff
from app.service.scheduler import Job, Scheduler


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(max_retries: int = 3) -> tuple[Scheduler, Clock]:
    clock = Clock()
    scheduler = Scheduler(max_retries=max_retries, clock=clock,
                          backoff=lambda: Backoff(jitter=0.0, rng=random.Random(1)))
    return scheduler, clock


def test_an_armed_source_gets_a_full_pass_now_and_every_interval():
    s, clock = make()
    s.arm("a", 300)
    job = s.next_job(["a"])
    assert job == Job("a", None) and job.full
    s.finished(job)
    assert s.next_job(["a"]) is None
    assert s.sleep_for() == 60.0  # capped: the loop wakes at least every minute
    clock.t += 299
    assert s.next_job(["a"]) is None and s.sleep_for() == 1.0
    clock.t += 1
    assert s.next_job(["a"]) == Job("a", None)


def test_hints_go_before_full_passes_and_a_full_pass_absorbs_hints():
    s, _ = make()
    s.arm("bulk", 300)
    s.arm("notes", 300)
    for _ in range(2):
        s.finished(s.next_job(["bulk", "notes"]))
    s.request_full("bulk")
    s.hint("notes", {"/n/a.md"})
    s.hint("notes", {"/n/b.md"})
    assert s.depth().sources == 2 and s.depth().paths == 2 and s.depth().full_passes == 1
    assert s.next_job(["bulk", "notes"]) == Job("notes", frozenset({"/n/a.md", "/n/b.md"}))
    s.hint("bulk", {"/b/x.md"})  # a full pass is queued already: nothing to add
    assert s.queued_paths("bulk") is None
    assert s.next_job(["bulk", "notes"]) == Job("bulk", None)


def test_a_failure_backs_off_keeps_the_work_and_the_user_can_skip_the_wait():
    s, clock = make(max_retries=2)
    s.arm("a", 300)
    job = s.next_job(["a"])
    assert s.failed(job, "disk full") == 2.0  # Backoff(base=2)
    assert s.is_queued("a") and s.next_job(["a"]) is None
    assert s.sleep_for() == 2.0
    clock.t += 2.0
    job = s.next_job(["a"])
    assert job == Job("a", None)
    assert s.failed(job, "disk full") == 4.0
    clock.t += 4.0
    job = s.next_job(["a"])
    s.failed(job, "disk full")  # third failure: past max_retries, the slowest pace
    assert s.retry("a").failing and s.retry("a").retry_in() == 600.0
    s.request_full("a", now=True)  # "Sync now"
    job = s.next_job(["a"])
    assert job is not None
    s.finished(job)
    assert s.retry("a").failures == 0 and not s.retry("a").failing


def test_failed_hints_are_kept_for_the_retry():
    s, clock = make()
    s.arm("a", 300)
    s.finished(s.next_job(["a"]))
    s.hint("a", {"/x.md"})
    job = s.next_job(["a"])
    s.failed(job, "boom")
    s.hint("a", {"/y.md"})
    clock.t += 2
    assert s.next_job(["a"]) == Job("a", frozenset({"/x.md", "/y.md"}))


def test_a_cancelled_job_resumes_and_disabled_or_removed_sources_wait():
    s, _ = make()
    s.arm("a", 300)
    job = s.next_job(["a"])
    s.finished(job, cancelled=True)
    assert s.next_job([]) is None  # disabled: its job waits
    assert s.next_job(["a"]) == Job("a", None)
    s.disarm("a")
    assert not s.is_queued("a") and s.next_job(["a"]) is None
