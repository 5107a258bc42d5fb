"""The original system's Python entry points, kept working (docs/api.md, "From Python"):

- `create_api_service()`: an object whose `get_app()` is an ASGI application for any ASGI
  server (`uvicorn app.api.asgi:app` serves one). Its lifespan starts the Service on startup
  and stops it on shutdown; a second process on the same index is refused with a message.
- `create_sync_system(config_overrides)`: the Service and its REST API together, with
  `await initialize()`, `await start()`, `await get_status()`, `await stop()` and signal
  handling (SIGINT/SIGTERM stop it), the way `lancedb-sync run` serves them.
- `create_orchestration_service(...)` (the Service alone) lives in app/service/orchestrator.py
  and is re-exported by `app.api`.

`initialize()`, `start()` and `stop()` answer True or False as the original did; when one
answers False, `error` says why (and the log has it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.api import discovery

log = logging.getLogger(__name__)
# What a person running `uvicorn app.api.asgi:app` sees in the terminal: uvicorn prints the
# records of this logger there.
console = logging.getLogger("uvicorn.error")

# The original configuration's names for the settings that are named differently here.
SEED_NAMES = {"local_db_path": "lancedb_uri", "index_path": "lancedb_uri"}


class StartRefused(Exception):
    """The service cannot start here; the message says why and what to do."""


def load(config_overrides: Mapping[str, Any] | None = None, *,
         home: str | os.PathLike[str] | None = None) -> Any:
    """The settings of `home` (default: LANCEDB_SYNC_HOME or the per-user folders), with
    `config_overrides` (setting names of docs/configuration.md, or the original's
    `local_db_path`) applied and validated."""
    from app.config import FIELDS, ConfigError, load_settings

    known = {f.name for f in FIELDS}
    overrides: dict[str, Any] = {}
    for name, value in (config_overrides or {}).items():
        key = SEED_NAMES.get(name, name)
        if key not in known:
            raise ConfigError(f"Unknown setting {name!r} in the configuration overrides; "
                              "docs/configuration.md lists the settings.")
        if key in ("lancedb_uri", "sync_state_dir") and value is not None:
            value = str(Path(os.fspath(value)).expanduser())
        overrides[key] = value
    # None means "not set" (the original's `s3_bucket=None`: no backups; for a setting with a
    # default, the default); any other value is validated like one from the config file.
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = load_settings(home=home, overrides=given)
    optional = {f.name for f in FIELDS if f.default is None}
    unset = {k: None for k, v in overrides.items() if v is None and k in optional}
    if unset:
        settings = dataclasses.replace(settings, values={**settings.values, **unset})
    return settings


def busy_message(exc: BaseException, settings: Any) -> str:
    """Another process owns the index: say so, and where its REST API answers."""
    running = discovery.read_running(settings.state_dir)
    where = f" Its REST API is at {running.url}." if running is not None else ""
    return f"{exc}{where}"


async def start_service(service: Any) -> None:
    """`service.start()`, with a refusal a person can act on instead of a traceback."""
    from app.service.errors import IndexLockedError

    try:
        await service.start()
    except IndexLockedError as exc:
        raise StartRefused(busy_message(exc, service.settings)) from None


# -- create_api_service ---------------------------------------------------------------------------

class ApiService:
    """The REST API as an ASGI application that owns its Service (or serves a given, started
    one). Startup (the ASGI lifespan) starts the Service, creates or reads the token and
    writes `api.json`; shutdown ends the event streams, waits for the jobs, marks `api.json`
    stopped and stops the Service. Without a lifespan (an ASGI server run with it off) every
    request answers 503."""

    def __init__(self, settings: Any = None, *, home: str | os.PathLike[str] | None = None,
                 service: Any = None, own_logging: bool = False) -> None:
        self.settings = settings if settings is not None else (
            service.settings if service is not None else None)
        self.home = home
        self.service = service
        self.url: str | None = None
        self._owns_service = service is None
        self._own_logging = own_logging
        self._inner: Any = None
        self._token = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals: dict[int, Any] = {}
        self._url_task: asyncio.Task[None] | None = None

    def get_app(self) -> ApiService:
        return self

    @property
    def context(self) -> Any:
        """The running app's service, event log and jobs (None before startup)."""
        return self._inner.api.state.ctx if self._inner is not None else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self._inner is None:
            await _not_started(scope, send)
            return
        if self.url is None and scope["type"] == "http" and scope.get("server"):
            host, port = scope["server"][0], scope["server"][1]
            if port is not None:
                self._served_at(host, port)
        await self._inner(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        from app.service.errors import one_line

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except StartRefused as exc:
                    await send({"type": "lifespan.startup.failed",
                                "message": f"lancedb-sync: {exc}"})
                    return
                except Exception as exc:
                    log.error("the REST API could not start", exc_info=True)
                    await send({"type": "lifespan.startup.failed",
                                "message": f"lancedb-sync: cannot start: {one_line(exc)} "
                                f"(details in the app's log)"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    log.error("the REST API did not stop cleanly", exc_info=True)
                    await send({"type": "lifespan.shutdown.failed", "message": one_line(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        from app.api.app import create_app
        from app.api.server import names_for
        from app.config import ConfigError

        self._loop = asyncio.get_running_loop()
        if self.settings is None:
            try:
                self.settings = await asyncio.to_thread(load, home=self.home)
            except ConfigError as exc:
                raise StartRefused(f"configuration error: {exc}") from None
        settings = self.settings
        if self._own_logging:
            from app.logsetup import setup_logging

            setup_logging(settings)
        if self.service is None:
            from app.service.orchestrator import Service

            self.service = Service(settings)
        if self._owns_service:
            await start_service(self.service)
        try:
            self._token = await asyncio.to_thread(discovery.load_or_create_token,
                                                  settings.state_dir)
            origins = tuple(o.strip() for o in (settings.api_cors_origins or "").split(",")
                            if o.strip())
            self._inner = create_app(self.service, token=self._token,
                                     extra_hosts=names_for(settings.api_host or "127.0.0.1"),
                                     cors_origins=origins)
            # The token now; the address as soon as it is known (the server binds its socket
            # after this startup, so it is found among this process's sockets, or in the
            # first request).
            await asyncio.to_thread(discovery.write_stopped, settings.state_dir, self._token)
        except BaseException:
            if self._owns_service:
                await self.service.stop()
            raise
        where = discovery.api_file(settings.state_dir)
        console.info("lancedb-sync: the service is running; the REST API wants the token in "
                     "%s (Authorization: Bearer <token>)", where)
        log.info("REST API (ASGI) started; token in %s", where)
        self._chain_signals()
        # Before startup completes: the server binds its socket right after.
        before = await asyncio.to_thread(_listening)
        self._url_task = asyncio.create_task(self._find_address(before), name="api address")

    async def shutdown(self) -> None:
        """End the event streams, wait for the jobs, mark api.json stopped, stop the
        Service (when this app started it)."""
        self._unchain_signals()
        if self._url_task is not None:
            self._url_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._url_task
        ctx = self.context
        if ctx is not None:
            ctx.events.close()
            await ctx.jobs.stop()
            await asyncio.to_thread(discovery.write_stopped, self.settings.state_dir,
                                    self._token)
        self._inner = None
        if self._owns_service and self.service is not None:
            await self.service.stop()
        console.info("lancedb-sync: the service stopped")

    # -- where we are served ----------------------------------------------------------------------

    def _served_at(self, host: str, port: int) -> None:
        if self.url is not None or self.settings is None:
            return
        try:  # a real server's own address (a test client's may be a made-up name)
            ipaddress.ip_address(host)
        except ValueError:
            return
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1" if host != "::" else "::1"
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        try:
            discovery.write_running(self.settings.state_dir, url=self.url, token=self._token,
                                    index=self.settings.index_uri)
        except OSError as exc:
            log.warning("could not write %s: %s",
                        discovery.api_file(self.settings.state_dir), exc)
            return
        console.info("lancedb-sync: REST API at %s (address and token in %s)", self.url,
                     discovery.api_file(self.settings.state_dir))

    async def _find_address(self, before: set[tuple[str, int]]) -> None:
        """The one TCP socket this process starts listening on after startup, if there is
        exactly one (a plain `uvicorn app.api.asgi:app`); otherwise the first request tells."""
        for _ in range(600):  # the server binds right after startup; give up after a minute
            await asyncio.sleep(0.1)
            if self.url is not None:
                return
            new = await asyncio.to_thread(_listening) - before
            ports = {port for _, port in new}
            if len(ports) == 1:
                hosts = sorted(h for h, _ in new)
                self._served_at(hosts[0], ports.pop())
                return
            if len(ports) > 1:
                return

    # -- signals: end the event streams when the server is told to stop ---------------------------

    def _chain_signals(self) -> None:
        """uvicorn waits for open responses before it shuts the app down, and an event stream
        never ends by itself: on SIGINT/SIGTERM end the streams, then let the server's own
        handler do the rest. Only in the main thread, and only over a handler that exists."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                loop = self._loop
                if loop is not None:
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(self._end_streams)
                previous(signum, frame)

            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)
                self._signals[sig] = (handler, previous)

    def _unchain_signals(self) -> None:
        for sig, (handler, previous) in self._signals.items():
            if signal.getsignal(sig) is handler:  # the server may have restored its own
                with contextlib.suppress(ValueError, OSError):
                    signal.signal(sig, previous)
        self._signals.clear()

    def _end_streams(self) -> None:
        ctx = self.context
        if ctx is not None:
            ctx.events.close()


def _listening() -> set[tuple[str, int]]:
    """The TCP addresses this process listens on (empty if that cannot be known)."""
    try:
        import psutil

        conns = psutil.Process().net_connections(kind="tcp")
    except Exception:  # no psutil, or the platform will not say
        return set()
    return {(c.laddr.ip, c.laddr.port) for c in conns
            if c.status == psutil.CONN_LISTEN and c.laddr}


async def _not_started(scope: dict[str, Any], send: Any) -> None:
    if scope["type"] != "http":
        return
    import json

    from app.api.errors import error_body

    body = json.dumps(error_body(
        "not_started", "The service starts with the ASGI lifespan: serve this app with "
        "uvicorn (or another ASGI server with the lifespan on), or enter `with "
        "TestClient(app)`.")).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_api_service(settings: Any = None, *, home: str | os.PathLike[str] | None = None,
                       service: Any = None) -> ApiService:
    """The REST API as an ASGI app: `create_api_service().get_app()`. With no arguments it
    serves the user's settings (or LANCEDB_SYNC_HOME's) and starts its own Service; with
    `service`, it serves that (started) Service and leaves its life to the caller."""
    return ApiService(settings, home=home, service=service)


# -- create_sync_system ---------------------------------------------------------------------------

class SyncSystem:
    """The Service and its REST API in the caller's asyncio loop, started and stopped in
    order (the API stops accepting and drains before the Service stops)."""

    def __init__(self, config_overrides: Mapping[str, Any] | None = None, *,
                 home: str | os.PathLike[str] | None = None) -> None:
        self.config_overrides = dict(config_overrides or {})
        self.home = home
        self.settings: Any = None
        self.service: Any = None
        self.api: Any = None  # the ApiServer, when api_enabled
        self.running = False
        self.error: str | None = None
        self._stopped = asyncio.Event()
        self._stopping: asyncio.Task[bool] | None = None
        self._signals: list[int] = []

    @property
    def url(self) -> str | None:
        return self.api.url if self.api is not None and self.api.url else None

    def _failed(self, message: str) -> bool:
        self.error = message
        log.error("lancedb-sync: %s", message)
        return False

    async def initialize(self) -> bool:
        """Load the settings (with the overrides) and create the Service and, unless
        `api_enabled` is off, its API server. Nothing starts yet."""
        from app.config import ConfigError
        from app.service.orchestrator import create_orchestration_service

        try:
            self.settings = await asyncio.to_thread(load, self.config_overrides,
                                                    home=self.home)
        except ConfigError as exc:
            return self._failed(f"configuration error: {exc}")
        self.service = create_orchestration_service(self.settings)
        if self.settings.api_enabled:
            from app.api.server import ApiServer

            self.api = ApiServer(self.service, self.settings)
        self.error = None
        return True

    async def start(self) -> bool:
        """Start the Service, then the API; SIGINT and SIGTERM stop both."""
        from app.service.errors import one_line

        if self.service is None:
            return self._failed("not initialized: call initialize() first.")
        try:
            await start_service(self.service)
        except StartRefused as exc:
            return self._failed(str(exc))
        if self.api is not None:
            try:
                await self.api.start()
            except OSError as exc:
                await self.service.stop()
                return self._failed(
                    f"cannot serve the REST API on {self.api.host}:{self.api.port}: "
                    f"{one_line(exc)}. Choose another address or port (api_host, api_port), "
                    "or turn it off (api_enabled = false).")
            if self.api.warning:
                log.warning(self.api.warning)
        self.running = True
        self._stopped.clear()
        self._install_signals()
        log.info("lancedb-sync started%s", f"; REST API at {self.url}" if self.url else "")
        return True

    async def get_status(self) -> dict[str, Any]:
        """The service's status (as `GET /api/v1/status` answers it), with `api_url`."""
        if self.service is None:
            return {"status": "not_initialized"}
        status = self.service.get_status().as_dict()
        status["api_url"] = self.url
        return status

    async def stop(self) -> bool:
        """Stop the API (stop accepting, drain), then the Service. Safe to call twice, also
        while a signal's stop runs."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        return await asyncio.shield(self._stopping)

    async def _stop(self) -> bool:
        self._remove_signals()
        ok = True
        try:
            if self.api is not None:
                await self.api.stop()
            if self.service is not None and self.running:
                await self.service.stop()
        except Exception as exc:
            from app.service.errors import one_line

            ok = self._failed(f"did not stop cleanly: {one_line(exc)}")
        finally:
            self.running = False
            self._stopped.set()
            self._stopping = None
        return ok

    async def wait_until_stopped(self) -> None:
        """Until `stop()` ran (or a signal stopped it)."""
        await self._stopped.wait()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._signals.append(sig)

    def _on_signal(self, sig: int) -> None:
        log.info("signal %s: stopping", signal.Signals(sig).name)
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())

    def _remove_signals(self) -> None:
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            for sig in self._signals:
                with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
                    loop.remove_signal_handler(sig)
        self._signals.clear()


def create_sync_system(config_overrides: Mapping[str, Any] | None = None, *,
                       home: str | os.PathLike[str] | None = None) -> SyncSystem:
    """The original's factory: `system = create_sync_system({...})`, then `await
    system.initialize()`, `await system.start()`, `await system.get_status()`,
    `await system.stop()`."""
    return SyncSystem(config_overrides, home=home)
