"""The service's typed events and status: stable kinds, JSON forms that read back."""

from __future__ import annotations

import asyncio
import json

from app.service.events import EVENT_TYPES, KINDS, EventBus, PassProgress, SyncFailed
from app.service.status import PassInfo, QueueDepth, ServiceStatus, SourceStatus


def test_one_type_per_kind_and_data_without_envelope():
    assert len(KINDS) == len(EVENT_TYPES)
    ev = SyncFailed(source_id="docs", reason="disk full", retry_in=2.0, failures=1)
    assert ev.kind == "error" and ev.data == {"reason": "disk full", "retry_in": 2.0,
                                              "failures": 1, "failing": False}
    assert json.loads(json.dumps(ev.as_dict()))["kind"] == "error"


def test_bus_delivers_to_callbacks_and_streams_and_survives_a_bad_consumer():
    bus = EventBus()
    seen = []
    bus.subscribe(lambda e: 1 / 0)  # a consumer's bug
    bus.subscribe(seen.append)

    async def stream_one():
        agen = bus.stream()
        task = asyncio.ensure_future(agen.__anext__())
        await asyncio.sleep(0)
        bus.publish(PassProgress(source_id="docs", phase="indexing", done=1, total=2))
        got = await task
        await agen.aclose()
        return got

    got = asyncio.run(stream_one())
    assert got.kind == "progress" and got.data["done"] == 1
    assert [e.kind for e in seen] == ["progress"]


def test_status_round_trips_through_its_json_form():
    status = ServiceStatus(
        running=True, pid=42, queue=QueueDepth(1, 3, 0), health={"status": "ok"},
        sources=(SourceStatus("docs", "local", state="indexing", documents=7,
                              progress=PassInfo("indexing", done=3, total=9)),))
    back = ServiceStatus.from_dict(json.loads(json.dumps(status.as_dict())))
    assert back == status
    assert back.source("docs").progress.total == 9 and back.source("nope") is None
