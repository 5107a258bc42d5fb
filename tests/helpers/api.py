"""The REST API under test: a real Service with its ApiServer on an asyncio loop in a thread of
its own, so the test's thread calls it over loopback HTTP as another program would; a small
client that checks every answer (the error shape, no token in any body); an SSE reader."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

TIMEOUT = 120.0  # generous: a loaded two-core machine importing LanceDB


def wait_until(predicate, timeout: float = 60.0, step: float = 0.05, what: str = "") -> Any:
    """Poll `predicate` until it returns something true; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(step)


class LiveApi:
    """`Service(settings)` and `ApiServer(service, settings, port=0)` running on a loop in a
    background thread. `call(coro)` runs a coroutine there."""

    def __init__(self, settings: Any, **service_kw: Any) -> None:
        self.settings = settings
        self.service_kw = service_kw
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-test-loop",
                                       daemon=True)
        self.service: Any = None
        self.server: Any = None
        self.events: list[Any] = []  # every service event, in order (in-process view)

    def start(self) -> LiveApi:
        self.thread.start()
        self.call(self._start(), timeout=300)
        return self

    async def _start(self) -> None:
        from app.api.server import ApiServer
        from app.service.orchestrator import Service

        self.service = Service(self.settings, **self.service_kw)
        self.service.events.subscribe(self.events.append)
        await self.service.start()
        self.server = ApiServer(self.service, self.settings, port=0)
        await self.server.start()

    def call(self, coro: Any, timeout: float = TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def stop() -> None:
            if self.server is not None:
                await self.server.stop()
            if self.service is not None:
                await self.service.stop()

        try:
            self.call(stop(), timeout=300)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.server._token

    def client(self, **kw: Any) -> Client:
        return Client(self.url, self.token, **kw)


class Client:
    """httpx over loopback. Every answer is checked: an error has the one error shape and no
    traceback; no body holds the token."""

    def __init__(self, url: str, token: str, *, auth: bool = True) -> None:
        self.url, self.token = url, token
        headers = {"Authorization": f"Bearer {token}"} if auth else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        r = self.http.request(method, path, **kw)
        check_body(r, self.token)
        return r

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = self.request(method, path, **kw)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def job(self, path: str, timeout: float = TIMEOUT, **kw: Any) -> dict[str, Any]:
        """POST `path` (answers 202 with a job), then follow the job until it ends."""
        job = self.ok("POST", path, 202, **kw)
        assert job["state"] == "running" and job["id"], job
        done = wait_until(lambda: self._finished(job["id"]), timeout=timeout,
                          what=f"job {job['id']}")
        return done

    def _finished(self, job_id: str) -> dict[str, Any] | None:
        j = self.ok("GET", f"/api/v1/jobs/{job_id}")
        return j if j["state"] != "running" else None

    def close(self) -> None:
        self.http.close()


def check_body(r: httpx.Response, token: str) -> None:
    text = r.text
    assert token not in text, f"the token is in the answer to {r.request.url}"
    assert "Traceback" not in text and 'File "' not in text, text
    assert r.status_code != 500 and r.status_code < 502, f"{r.request.url}: {r.text}"
    if r.status_code >= 400:
        assert_error_shape(r)


def assert_error_shape(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"code", "message"} <= set(err) <= {"code", "message", "field"}, body
    assert isinstance(err["code"], str) and err["code"]
    assert isinstance(err["message"], str) and err["message"].strip()
    assert "field" not in err or (isinstance(err["field"], str) and err["field"])
    return err


def assert_error(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict:
    assert r.status_code == status, f"{r.status_code} != {status}: {r.text}"
    err = assert_error_shape(r)
    assert err["code"] == code, err
    if field is not None:
        assert err.get("field") == field, err
    return err


# -- Server-Sent Events ---------------------------------------------------------------------------

@dataclass
class Sse:
    id: int | None
    event: str
    data: Any


@dataclass
class SseReader:
    """Reads `GET /api/v1/events` in a thread (http.client, no buffering of its own); `close()`
    shuts the socket down, which ends a blocked read at once."""

    url: str
    token: str
    last_event_id: int | str | None = None
    query: str = ""
    events: list[Sse] = field(default_factory=list)
    retry_ms: int | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._ended = False
        self._error: BaseException | None = None
        parts = urlsplit(self.url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
        self._thread = threading.Thread(target=self._read, daemon=True, name="sse-reader")
        self._thread.start()
        wait_until(lambda: self.status is not None or self._ended, timeout=TIMEOUT,
                   what="the event stream's headers")
        if self._error is not None:
            raise self._error

    def _read(self) -> None:
        try:
            headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
            if self.last_event_id is not None:
                headers["Last-Event-ID"] = str(self.last_event_id)
            self._conn.connect()
            self._sock = self._conn.sock
            self._sock.settimeout(None)  # a stream may be quiet for long
            self._conn.request("GET", "/api/v1/events" + self.query, headers=headers)
            resp = self._conn.getresponse()
            self.headers = {k.lower(): v for k, v in resp.getheaders()}
            self.status = resp.status
            if resp.status != 200:
                self.body = resp.read().decode()
                return
            fields: dict[str, str] = {}
            while True:
                raw = resp.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    self._dispatch(fields)
                    fields = {}
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        except OSError as exc:
            if not self._ended:
                self._error = exc
        except BaseException as exc:  # reported to the test
            self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _dispatch(self, fields: dict[str, str]) -> None:
        if "retry" in fields and "data" not in fields:
            self.retry_ms = int(fields["retry"])
            return
        if "data" not in fields:
            return
        ev = Sse(int(fields["id"]) if "id" in fields else None,
                 fields.get("event", "message"), json.loads(fields["data"]))
        with self._cond:
            self.events.append(ev)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = TIMEOUT, what: str = "") -> Any:
        """Wait until `predicate(events)` is true (or the stream ends: an error)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self.events)
                if value:
                    return value
                if self._ended:
                    raise AssertionError(f"the stream ended ({self._error!r}) before {what}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} on the event stream after {timeout:.0f} s;"
                                         f" got {[(e.id, e.event) for e in self.events]}")
                self._cond.wait(min(left, 0.5))

    @property
    def ended(self) -> bool:
        return self._ended

    def close(self) -> None:
        self._ended = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        self._conn.close()
        self._thread.join(30)
