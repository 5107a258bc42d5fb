"""The event stream's log: ids, the ring of recent events, and what a client that reconnects
with Last-Event-ID receives (the missed events once, in order, then the live ones; a reset when
some were lost or the ids began again)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from app.api.events import EventLog, frame


def parse(text: str) -> tuple[int | None, str]:
    fields = dict(line.split(": ", 1) for line in text.strip().split("\n")
                  if not line.startswith(":") and ": " in line)
    return (int(fields["id"]) if "id" in fields else None), fields.get("event", "")


def collect(log: EventLog, last_event_id: int | None, *, live: int = 0,
            kinds: set[str] | None = None) -> list[tuple[int | None, str]]:
    """Frames a client receives: what the log holds for it, then `live` events added while
    it listens, up to an "end" event added last (anything sent twice would come before it)."""
    async def run() -> list[tuple[int | None, str]]:
        out: list[tuple[int | None, str]] = []
        waiting = len(log._waiters)

        async def read() -> None:
            async for text in log.stream(last_event_id, kinds):
                if text.startswith(("retry:", ":")):
                    continue
                out.append(parse(text))
                if out[-1][1] == "end":
                    return

        task = asyncio.ensure_future(read())
        while len(log._waiters) == waiting:  # the stream has started listening
            await asyncio.sleep(0)
        for n in range(live):
            log.add("live", {"n": n})
            await asyncio.sleep(0)
        log.add("end", {})
        await asyncio.wait_for(task, 5)
        assert out.pop()[1] == "end"
        return out

    return asyncio.run(run())


def test_ids_increase_and_the_ring_keeps_the_newest():
    log = EventLog(None, size=3)
    assert log.last_id == 0
    assert [log.add("k", {"n": i}) for i in range(5)] == [1, 2, 3, 4, 5]
    assert log.last_id == 5
    items, lost = log.since(0)
    assert [i[0] for i in items] == [3, 4, 5] and lost
    assert log.since(2) == (log.since(0)[0], False)  # 3 is the next one it needs: held
    assert [i[0] for i in log.since(4)[0]] == [5] and not log.since(4)[1]
    assert log.since(5) == ([], False)


def test_a_new_client_gets_only_live_events():
    log = EventLog(None)
    for i in range(3):
        log.add("old", {"n": i})
    assert collect(log, None, live=2) == [(4, "live"), (5, "live")]


def test_resume_sends_the_missed_events_once_then_the_live_ones():
    log = EventLog(None)
    for i in range(5):
        log.add("old", {"n": i})
    got = collect(log, 2, live=3)
    assert got == [(3, "old"), (4, "old"), (5, "old"), (6, "live"), (7, "live"), (8, "live")]


def test_resume_when_nothing_was_missed():
    log = EventLog(None)
    log.add("old", {})
    assert collect(log, 1, live=1) == [(2, "live")]
    assert collect(EventLog(None), 0, live=1) == [(1, "live")]


def test_resume_older_than_the_ring_says_reset_then_sends_what_it_holds_in_order():
    log = EventLog(None, size=3)
    for i in range(6):
        log.add("old", {"n": i})  # the ring holds 4, 5, 6
    got = collect(log, 1, live=1)
    assert got == [(3, "reset"), (4, "old"), (5, "old"), (6, "old"), (7, "live")]
    ids = [i for i, _ in got]
    assert ids == sorted(set(ids))


def test_resume_with_an_id_from_before_a_restart_gets_the_new_events():
    """The app restarted (ids begin again at 1) while the client kept its Last-Event-ID."""
    log = EventLog(None)
    log.add("new", {})
    log.add("new", {})
    got = collect(log, 500, live=1)
    assert got == [(0, "reset"), (1, "new"), (2, "new"), (3, "live")]
    assert collect(EventLog(None), 7, live=1) == [(0, "reset"), (1, "live")]


def test_kinds_filter_keeps_ids_and_the_reset():
    log = EventLog(None, size=3)
    for kind in ("a", "b", "a", "b"):
        log.add(kind, {})  # the ring holds 2, 3, 4
    assert collect(log, 0, kinds={"a", "end"}) == [(1, "reset"), (3, "a")]
    assert collect(log, 2, kinds={"b", "end"}) == [(4, "b")]


def test_close_ends_every_stream():
    log = EventLog(None)

    async def run() -> list[str]:
        frames = []
        async def read() -> None:
            async for text in log.stream(None):
                frames.append(text)
        task = asyncio.ensure_future(read())
        await asyncio.sleep(0.05)
        log.close()
        await asyncio.wait_for(task, 5)
        return frames

    assert asyncio.run(run()) == ["retry: 2000\n\n"]


@dataclass
class FakeEvent:
    kind: str
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "n": self.n}


class FakeBus:
    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def subscribe(self, callback: Any) -> Any:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    def publish(self, event: FakeEvent) -> None:
        for cb in list(self.callbacks):
            cb(event)


def test_the_service_events_are_logged_until_closed():
    bus = FakeBus()
    log = EventLog(bus)
    bus.publish(FakeEvent("progress", 1))
    bus.publish(FakeEvent("sync_finished", 2))
    assert [(i, k, d["n"]) for i, k, d in log.since(0)[0]] == [
        (1, "progress", 1), (2, "sync_finished", 2)]
    log.close()
    assert bus.callbacks == []


def test_frame_is_one_sse_event():
    text = frame(7, "progress", {"source_id": "docs", "note": "a\nb", "x": "é"})
    assert text == ('id: 7\nevent: progress\n'
                    'data: {"source_id":"docs","note":"a\\nb","x":"é"}\n\n')
