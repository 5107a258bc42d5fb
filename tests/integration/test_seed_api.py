"""The original system's Python entry points, run as a user would (docs/api.md, "From Python"):
`uvicorn app.api.asgi:app`, a script around `create_sync_system()`, and
`create_api_service().get_app()` under a programmatic `uvicorn.Server`. Real service, real
LanceDB, real HTTP on loopback; every wait is on a condition."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.api import discovery
from tests.conftest import REPO

pytestmark = pytest.mark.slow

PATIENCE_S = 180.0  # a loaded 2-core machine: imports and the first start take a while


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "LANCEDB_SYNC_HOME": str(home),
            "LANCEDB_SYNC_API_PORT": "0"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state(home: Path) -> Path:
    return home / "data" / "state"


def _wait(predicate, what: str, timeout: float = PATIENCE_S, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended ({proc.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str, token: str | None = None, host: str | None = None, method: str = "GET"):
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _add_source(cli, docs: Path) -> None:
    (docs / "passport.md").write_text("# Passport\n\nHow to renew a passport at the office.\n")
    cli.ok("sources", "add", "local", str(docs), "--id", "docs")


def _index_is_free(cli) -> None:
    """The writer lock is released: a one-off sync in another process can take it."""
    r = cli.subprocess("sync", env={"LANCEDB_SYNC_API_PORT": "0"}, timeout=PATIENCE_S)
    assert r.returncode == 0, r.stderr


def test_uvicorn_serves_the_asgi_app_and_sigterm_stops_it_cleanly(home, cli, docs):
    _add_source(cli, docs)
    port = _free_port()
    out = home.parent / "uvicorn.log"
    with out.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.api.asgi:app", "--port", str(port)],
            env=_env(home), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        info = _wait(lambda: discovery.read_running(_state(home)), "api.json with the URL",
                     proc=server)
        assert info.url == f"http://127.0.0.1:{port}" and info.pid == server.pid
        assert stat.S_IMODE(discovery.api_file(_state(home)).stat().st_mode) == 0o600

        code, body = _get(f"{info.url}/health")
        assert code == 200 and body["running"] is True
        code, body = _get(f"{info.url}/health", host="evil.example")
        assert code == 403 and body["error"]["code"] == "forbidden_host"
        code, body = _get(f"{info.url}/api/v1/status")
        assert code == 401 and body["error"]["code"] == "unauthorized"
        code, body = _get(f"{info.url}/api/v1/sources", token=info.token)
        assert code == 200 and [s["source_id"] for s in body] == ["docs"]
        code, body = _get(f"{info.url}/api/v1/status", token=info.token, method="PUT")
        assert code == 405 and body["error"]["code"] == "method_not_allowed"

        # A second server on the same index is refused with a message naming the first.
        second = subprocess.run(
            [sys.executable, "-m", "uvicorn", "app.api.asgi:app", "--port", "0"],
            env=_env(home), cwd=REPO, capture_output=True, text=True, timeout=PATIENCE_S)
        assert second.returncode == 3, second.stderr
        assert info.url in second.stderr and "Traceback" not in second.stderr

        # An open event stream does not keep the server from stopping.
        stream = urllib.request.urlopen(urllib.request.Request(
            f"{info.url}/api/v1/events", headers={"Authorization": f"Bearer {info.token}"}),
            timeout=PATIENCE_S)
        assert stream.readline().startswith(b"retry:")
        ended = threading.Event()

        def drain() -> None:
            while stream.readline():
                pass
            ended.set()

        threading.Thread(target=drain, daemon=True).start()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=PATIENCE_S)
        assert ended.wait(PATIENCE_S)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    text = out.read_text()
    # uvicorn re-raises the signal it stopped on, as a server should.
    assert server.returncode in (0, -signal.SIGTERM), text
    assert "Application shutdown complete" in text and "Traceback" not in text, text
    assert "api.json" in text  # the log says where the token is
    assert text.count("the service stopped") == 1
    assert discovery.read_running(_state(home)) is None
    assert json.loads(discovery.api_file(_state(home)).read_text()) == {"token": info.token}
    _index_is_free(cli)


SYNC_SYSTEM_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys, urllib.request

    from app.api import create_sync_system


    def get(url):
        with urllib.request.urlopen(url, timeout=60) as r:
            return json.loads(r.read())


    async def main(mode):
        system = create_sync_system({"enable_source_monitoring": False})
        if not await system.initialize():
            sys.exit(f"initialize failed: {system.error}")
        if not await system.start():
            sys.exit(f"start failed: {system.error}")
        status = await system.get_status()
        health = await asyncio.to_thread(get, status["api_url"] + "/health")
        print(json.dumps({"running": status["running"], "api_url": status["api_url"],
                          "sources": [s["source_id"] for s in status["sources"]],
                          "health": health["status"]}), flush=True)
        if mode == "wait":  # until SIGTERM
            await system.wait_until_stopped()
        stopped = await system.stop()
        print(json.dumps({"stopped": stopped, "running": system.running}), flush=True)


    asyncio.run(main(sys.argv[1]))
""")


@pytest.mark.parametrize("mode", ["once", "wait"])
def test_create_sync_system_initializes_starts_reports_and_stops(home, cli, docs, tmp_path,
                                                                  mode):
    _add_source(cli, docs)
    script = tmp_path / "sync_system.py"
    script.write_text(SYNC_SYSTEM_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), mode], env=_env(home), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(_wait(proc.stdout.readline, "the status line", proc=proc))
        assert first["running"] is True and first["sources"] == ["docs"]
        assert first["health"] in ("ok", "warning")
        assert first["api_url"].startswith("http://127.0.0.1:")
        if mode == "wait":
            assert discovery.read_running(_state(home)).url == first["api_url"]
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=PATIENCE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"stopped": True, "running": False}
    assert discovery.read_running(_state(home)) is None
    _index_is_free(cli)


def test_create_api_service_app_under_a_programmatic_uvicorn_server(home, cli, docs,
                                                                     monkeypatch):
    import uvicorn

    from app.api import create_api_service

    _add_source(cli, docs)
    monkeypatch.setenv("LANCEDB_SYNC_HOME", str(home))
    app = create_api_service().get_app()

    async def scenario() -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None,
                                timeout_graceful_shutdown=10)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        deadline = time.monotonic() + PATIENCE_S
        while not server.started:
            assert not task.done(), "the server ended while starting"
            assert time.monotonic() < deadline, "the server did not start"
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        token = json.loads(discovery.api_file(_state(home)).read_text())["token"]
        code, body = await asyncio.to_thread(_get, f"{url}/health")
        assert code == 200 and body["running"] is True
        code, body = await asyncio.to_thread(_get, f"{url}/api/v1/sync/status", token)
        assert code == 200 and [s["source_id"] for s in body["sources"]] == ["docs"]
        assert discovery.read_running(_state(home)).url == url
        server.should_exit = True
        await asyncio.wait_for(task, PATIENCE_S)

    asyncio.run(scenario())
    assert discovery.read_running(_state(home)) is None
    assert app.context is None
    _index_is_free(cli)


def test_the_asgi_app_answers_503_until_its_lifespan_started(home, monkeypatch):
    from app.api import create_api_service

    monkeypatch.setenv("LANCEDB_SYNC_HOME", str(home))
    app = create_api_service().get_app()
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/health", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 503
    assert json.loads(sent[1]["body"])["error"]["code"] == "not_started"
