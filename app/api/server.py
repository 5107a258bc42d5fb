"""uvicorn inside the app's own process and loop (the tray's qasync loop or `run`'s asyncio).

Built around three measured pitfalls: uvicorn's `serve()` installs SIGINT/SIGTERM handlers and
re-raises the signals when it ends (here the app owns the signals and the shutdown order, so
capture is off); a socket made without `IPPROTO_TCP` never gets TCP_NODELAY from asyncio and
every response waits ~44 ms for a delayed ACK (the socket here is made with it, and the option
is set); and uvicorn's default logging setup replaces the app's (`log_config=None`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

from app.api import discovery
from app.api.app import create_app
from app.api.security import is_loopback

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the app handles SIGINT/SIGTERM and stops us in its own order


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket with TCP_NODELAY; a taken port falls back to a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: no port stealing
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if port == 0 or exc.errno not in (errno.EADDRINUSE, errno.EACCES,
                                              getattr(errno, "WSAEADDRINUSE", -1)):
                raise
            log.warning("port %d is taken; the API listens on another free port (see api.json)",
                        port)
            sock.bind((host, 0))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def names_for(host: str) -> tuple[str, ...]:
    """Host names a widened API also answers to (besides loopback)."""
    if is_loopback(host):
        return ()
    names = {socket.gethostname().lower(), f"{socket.gethostname().lower()}.local"}
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return (*names, host.lower())
    if ip.is_unspecified:
        with contextlib.suppress(Exception):
            import psutil

            for addrs in psutil.net_if_addrs().values():
                names.update(a.address.split("%")[0].lower() for a in addrs
                             if a.family in (socket.AF_INET, socket.AF_INET6))
    else:
        names.add(str(ip))
    return tuple(sorted(names))


class ApiServer:
    """Start with `await start()` on the app's loop; `await stop()` stops accepting, ends the
    event streams, waits for requests and jobs in flight, and marks api.json stopped. Stop it
    before the Service."""

    def __init__(self, service: Any, settings: Any, *, host: str | None = None,
                 port: int | None = None) -> None:
        self.service = service
        self.settings = settings
        self.host = host if host is not None else (settings.api_host or "127.0.0.1")
        self.port = settings.api_port if port is None else port
        self.url = ""
        self.warning: str | None = None
        self._token = ""
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app: Any = None

    async def start(self) -> str:
        state_dir = self.settings.state_dir
        self._token = discovery.load_or_create_token(state_dir)
        origins = tuple(o.strip() for o in (self.settings.api_cors_origins or "").split(",")
                        if o.strip())
        self.app = create_app(self.service, token=self._token,
                              extra_hosts=names_for(self.host), cors_origins=origins)
        sock = bind(self.host, self.port)
        port = sock.getsockname()[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        if not is_loopback(self.host):
            self.warning = (f"The REST API listens on {self.host}, reachable from other "
                            "computers (the token is still required). Set api_host to "
                            "127.0.0.1 to keep it on this computer.")
            log.warning(self.warning)
            shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else shown
            if self.host == "::":
                shown = "[::1]"
        self.url = f"http://{shown}:{port}"
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off",
                                http="h11", ws="none", timeout_graceful_shutdown=5,
                                server_header=False, date_header=False)
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]),
                                         name="lancedb-sync api")
        while not self._server.started:
            if self._task.done():
                sock.close()
                self._task.result()  # raises why it could not start
                raise RuntimeError("the API server stopped while starting")
            await asyncio.sleep(0.01)
        try:
            await asyncio.to_thread(discovery.write_running, state_dir, url=self.url,
                                    token=self._token, index=self.settings.index_uri)
        except BaseException:
            # A full disk, a read-only state folder: no client could find us, so do not go on
            # listening unannounced. The caller reports the error.
            await self.stop()
            raise
        log.info("REST API at %s (token in %s)", self.url, discovery.api_file(state_dir))
        return self.url

    @property
    def context(self) -> Any:
        return self.app.api.state.ctx if self.app is not None else None

    async def stop(self) -> None:
        if self._server is None:
            return
        ctx = self.context
        ctx.events.close()  # open event streams end; uvicorn can drain
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await ctx.jobs.stop()
        await asyncio.to_thread(discovery.write_stopped, self.settings.state_dir, self._token)
        self._server = None
