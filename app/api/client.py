"""The command line's client of a running app's REST API (docs/api.md).

Standard library only (http.client, json): a command routed through a running app must start
in a fraction of a second, so nothing here may pull in LanceDB, pyarrow, the model, requests or
pydantic. `ApiClient.for_state_dir` reads `api.json` (discovery.py); every call returns the
parsed JSON answer or raises:

- `ApiUnreachable`: nothing answers (connection refused or reset, the process gone); the
  caller treats that as "no server" and does the work itself;
- `ApiRequestError`: the server answered 4xx/5xx; it carries the API's one error shape,
  `{"error": {"code", "message", "field"?}}`, as `status`, `code`, `message`, `field`.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from app.api.discovery import ApiInfo, read_running

TIMEOUT_S = 120.0  # a search answers in milliseconds; a cold model load may take a while


class ApiClientError(Exception):
    """Anything that went wrong talking to the API."""


class ApiUnreachable(ApiClientError):
    """No server answers at the address in api.json (it stopped, or is stopping)."""


class ApiRequestError(ApiClientError):
    """The server refused the request: its status and the API's error (code, message, field)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@dataclass(frozen=True)
class SseEvent:
    id: int | None
    kind: str
    data: Any


class ApiClient:
    def __init__(self, url: str, token: str, *, timeout: float = TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http URL: {url!r}")
        self.url = url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_info(cls, info: ApiInfo, **kw: Any) -> ApiClient:
        return cls(info.url, info.token, **kw)

    @classmethod
    def for_state_dir(cls, state_dir: Path, **kw: Any) -> ApiClient | None:
        """A client of the server api.json names, if its process is alive; else None."""
        info = read_running(state_dir)
        if info is None:
            return None
        try:
            return cls.from_info(info, **kw)
        except ValueError:
            return None

    # -- requests ---------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("POST", path, body=body, params=params)

    def delete(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("DELETE", path, params=params)

    def request(self, method: str, path: str, *, body: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        headers = self._headers()
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            try:
                conn.request(method, _target(path, params), body=payload, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (ConnectionError, http.client.RemoteDisconnected, socket.gaierror) as exc:
                raise ApiUnreachable(f"no answer from {self.url}: {exc}") from exc
            except TimeoutError as exc:
                raise ApiClientError(f"{self.url} did not answer {method} {path} within "
                                     f"{self.timeout:.0f} s") from exc
        finally:
            conn.close()
        data = _parse(raw)
        if resp.status >= 400:
            raise _request_error(resp.status, data)
        return data

    def events(self, kinds: list[str] | None = None,
               last_event_id: int | None = None) -> Iterator[SseEvent]:
        """Follow `GET /api/v1/events` (Server-Sent Events). The first item is a `ready`
        pseudo-event, sent once the server streams: every event published after it is
        delivered. Ends when the server closes the stream; raises ApiUnreachable when the
        connection drops."""
        headers = self._headers()
        headers["Accept"] = "text/event-stream"
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        params = {"kinds": ",".join(kinds)} if kinds else None
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            try:
                conn.request("GET", _target("/api/v1/events", params), headers=headers)
                resp = conn.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected, socket.gaierror) as exc:
                raise ApiUnreachable(f"no answer from {self.url}: {exc}") from exc
            if resp.status >= 400:
                raise _request_error(resp.status, _parse(resp.read()))
            try:
                yield from _frames(resp)
            except (ConnectionError, http.client.IncompleteRead) as exc:
                raise ApiUnreachable(f"the event stream from {self.url} broke: {exc}") from exc
        finally:
            conn.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                "User-Agent": "lancedb-sync-cli"}


def _target(path: str, params: Mapping[str, Any] | None) -> str:
    if not params:
        return path
    query = {k: ("true" if v is True else "false" if v is False else v)
             for k, v in params.items() if v is not None}
    return f"{path}?{urlencode(query)}" if query else path


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _request_error(status: int, data: Any) -> ApiRequestError:
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return ApiRequestError(status, str(err.get("code", "error")),
                               str(err.get("message", "")), err.get("field"))
    return ApiRequestError(status, "error", f"HTTP {status}: {str(data)[:200]}")


def _frames(resp: http.client.HTTPResponse) -> Iterator[SseEvent]:
    """SSE frames as events; the server's opening `retry:` frame becomes `ready`."""
    eid: int | None = None
    kind = "message"
    data: list[str] = []
    pending = False
    while True:
        line = resp.readline()
        if not line:
            return
        text = line.decode("utf-8").rstrip("\r\n")
        if not text:
            if data:
                body = "\n".join(data)
                try:
                    parsed: Any = json.loads(body)
                except ValueError:
                    parsed = body
                yield SseEvent(eid, kind, parsed)
            elif pending:
                yield SseEvent(None, "ready", None)
            eid, kind, data, pending = None, "message", [], False
            continue
        if text.startswith(":"):
            continue
        name, _, value = text.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            eid = int(value) if value.isdigit() else None
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "retry":
            pending = True
