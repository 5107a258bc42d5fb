"""Commands answered by a running app (the tray, `run`, `api`) through its REST API.

When `api.json` in this home's state folder names a live server for this index, `search`,
`status`, `failed`, `sources`, `sync`, `retry` and `backup` ask it instead of opening the index
(which the app holds: a second writer would be refused, and a fresh process would load LanceDB
and the model for every search). With no server, or one that no longer answers before the
work starts, the command runs in this process as before. Both paths print the same lines.

Standard library and app.api.client only: this is on the path of a search that must answer in
a fraction of a second.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, NoReturn

from app.api.client import ApiClient, ApiClientError, ApiRequestError, ApiUnreachable
from app.cli.errors import EXIT_BUSY, EXIT_FAIL, EXIT_USAGE, UserError
from app.cli.output import ctrl_c_cancels

__all__ = ["ApiRequestError", "ApiUnreachable", "JobInterrupted", "client_for", "fail",
           "follow_job"]

POLL_S = 1.0  # how often a followed job is also asked for directly (the stream may be quiet)
_NOTHING = object()


def client_for(settings: Any) -> ApiClient | None:
    """A client of the app serving this home's index, or None when none runs (or it serves
    another index: LANCEDB_URI set differently for this command)."""
    from app.api.discovery import read_running

    info = read_running(settings.state_dir)
    if info is None or (info.index and info.index != settings.index_uri):
        return None
    try:
        return ApiClient.from_info(info)
    except ValueError:
        return None


def get(settings: Any, path: str, params: dict[str, Any] | None = None) -> Any:
    """A read answered by the app serving this index: its JSON, or None when none runs or it
    does not answer (the caller then reads in this process). An API error is the command's
    error (`fail`)."""
    client = client_for(settings)
    if client is None:
        return None
    try:
        return client.get(path, params)
    except ApiUnreachable:
        return None
    except ApiRequestError as exc:
        fail(exc)


def fail(exc: ApiClientError) -> NoReturn:
    """An API error as the command line's error: the API's message, the exit code the same
    error has in this process (busy 3, bad input 2, else 1)."""
    if isinstance(exc, ApiRequestError):
        if exc.code == "busy":
            raise UserError(exc.message, EXIT_BUSY) from None
        if exc.status in (400, 422):
            raise UserError(exc.message, EXIT_USAGE) from None
        raise UserError(exc.message, EXIT_FAIL) from None
    raise UserError(f"the running app did not answer: {exc}", EXIT_FAIL) from None


class JobInterrupted(Exception):
    """Ctrl-C stopped the job; `job` is its final state (its result: what was done)."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job.get("id"))
        self.job = job


def follow_job(client: ApiClient, start: Callable[[], dict[str, Any]], *,
               progress_kind: str, on_progress: Callable[[Any], None],
               doing: str = "stopping after the current batch") -> dict[str, Any]:
    """Start a job on the server and follow it to its end: its progress events go to
    `on_progress` (as attribute objects, like the in-process callbacks get), the first Ctrl-C
    asks the server to stop it (DELETE /jobs/{id}) and raises JobInterrupted once it has
    stopped, a second one ends this process at once (the server finishes stopping alone).

    `start` may raise ApiUnreachable: nothing was started then, and the caller does the work
    itself. Once the job runs, losing the server is an error."""
    events: queue.Queue[Any] = queue.Queue()
    ready = threading.Event()

    def read() -> None:
        try:
            for ev in client.events(kinds=[progress_kind, "job"]):
                if ev.kind == "ready":
                    ready.set()
                else:
                    events.put(ev)
        except ApiClientError:
            pass
        finally:
            ready.set()
            events.put(None)  # the stream ended: poll the job instead

    threading.Thread(target=read, name="api events", daemon=True).start()
    # Subscribe first, then start: no event of the job can fall between the two.
    ready.wait(10)
    job = start()
    job_id = job["id"]
    streaming = True
    cancelled = False
    last_poll = time.monotonic()
    with ctrl_c_cancels(doing) as cancel:
        while job.get("state") == "running":
            if cancel.is_set() and not cancelled:
                cancelled = True
                job = _call(lambda: client.delete(f"/api/v1/jobs/{job_id}"))
                continue
            item: Any = _NOTHING
            if streaming:
                with contextlib.suppress(queue.Empty):
                    item = events.get(timeout=0.1)
            else:
                time.sleep(0.1)
            if item is None:  # the stream ended; keep asking for the job
                streaming = False
            elif item is not _NOTHING:
                if item.kind == "job" and isinstance(item.data, dict):
                    if item.data.get("id") == job_id:
                        job = item.data
                elif item.kind == progress_kind and isinstance(item.data, dict):
                    on_progress(SimpleNamespace(**item.data))
                continue
            if not streaming or time.monotonic() - last_poll >= POLL_S:
                last_poll = time.monotonic()
                job = _call(lambda: client.get(f"/api/v1/jobs/{job_id}"))
    if cancelled or job.get("state") == "cancelled":
        raise JobInterrupted(job)
    return job


def _call(request: Callable[[], Any]) -> Any:
    try:
        return request()
    except ApiUnreachable:
        raise UserError("The app stopped while the job ran; run the command again.",
                        EXIT_FAIL) from None
    except ApiClientError as exc:
        fail(exc)


def job_failed(job: dict[str, Any]) -> NoReturn:
    """A job that ended in an error: its one-line reason, exit 1."""
    raise UserError(job.get("error") or f"{job.get('kind', 'job')} failed", EXIT_FAIL)
