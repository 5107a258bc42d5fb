"""What every request passes before a route sees it: the Host check (a web page that rebinds
its own name to 127.0.0.1 cannot reach us, since its requests carry its name), then the bearer
token (everything but `/health` and the bundled documentation). Pure ASGI, so a refused request
costs no routing and a streaming response is not buffered."""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from app.api.errors import error_body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "localhost.localdomain")
PUBLIC_PATHS = ("/health", "/docs", "/openapi.json")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, without the port ("[::1]:8765" → "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """Host check, then the token. `extra_hosts`: names the server was told to listen on
    besides loopback (a widened `api_host`)."""

    def __init__(self, app: ASGIApp, *, token: str, extra_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self._token = f"Bearer {token}".encode()
        self._hosts = {h.lower() for h in extra_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # no route uses one
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = dict(scope.get("headers") or ())
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if not host or not (is_loopback(host) or host in self._hosts):
            await _refuse(send, 403, "forbidden_host",
                          "This API answers only requests addressed to this computer "
                          "(Host: 127.0.0.1 or localhost).")
            return
        path = scope.get("path", "")
        public = path == "/health" or path == "/openapi.json" or path.startswith("/docs")
        if not public and scope.get("method") != "OPTIONS":
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self._token):
                message = ("Missing token: send 'Authorization: Bearer <token>' with the token "
                           "from api.json in the app's state folder." if not given else
                           "Wrong token: use the one in api.json in the app's state folder.")
                await _refuse(send, 401, "unauthorized", message,
                              [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, code: str, message: str,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(error_body(code, message), separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
