"""Long writes started from the API (a cleanup, a manual sync, a backup) as jobs: the request
answers 202 with the job at once; `GET /api/v1/jobs/{id}` follows it, `DELETE` cancels it; its
start, progress and end are also events (`job`) on the event stream."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

KEEP = 200  # finished jobs remembered

Work = Callable[["Job"], Awaitable[Any]]


@dataclass
class Job:
    id: str
    kind: str
    state: str = "running"  # running | done | failed | cancelled
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.state,
                "created_at": self.created_at, "finished_at": self.finished_at,
                "progress": self.progress, "result": self.result, "error": self.error,
                "cancel_requested": self.cancel.is_set()}


class Jobs:
    def __init__(self, publish: Callable[[str, dict[str, Any]], Any]) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._publish = publish
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, kind: str, work: Work) -> Job:
        job = Job(id=f"{kind}-{next(self._ids)}", kind=kind)
        self._jobs[job.id] = job
        while len(self._jobs) > KEEP:
            oldest = next(iter(self._jobs.values()))
            if oldest.state == "running":
                break
            self._jobs.popitem(last=False)
        self._loop = asyncio.get_running_loop()
        task = asyncio.create_task(self._run(job, work), name=f"api job {job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._publish("job", job.as_dict())
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        return list(self._jobs.values())

    def progress(self, job: Job, **values: Any) -> None:
        """Record a job's progress (from any thread) and tell the event stream."""
        job.progress = values
        self._publish("job", job.as_dict())

    async def _run(self, job: Job, work: Work) -> None:
        try:
            job.result = await work(job)
            job.state = "cancelled" if job.cancel.is_set() else "done"
        except asyncio.CancelledError:
            job.state = "cancelled"
            raise
        except Exception as exc:
            from app.service.errors import one_line

            job.state, job.error = "failed", one_line(exc)
        finally:
            job.finished_at = time.time()
            self._publish("job", job.as_dict())

    async def stop(self) -> None:
        """The server stops: ask every running job to stop at its next boundary, wait."""
        for job in self._jobs.values():
            job.cancel.set()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
