"""The REST API when it cannot start as asked: nothing left listening unannounced, a message a
person can act on, and the index free for the next command."""

from __future__ import annotations

import asyncio
import socket

import pytest

from app.config import load_settings


def test_an_unwritable_api_json_stops_the_server_it_started(home):
    from app.api.discovery import api_file
    from app.api.server import ApiServer
    from app.service import Service

    settings = load_settings(home=home)
    api_file(settings.state_dir).mkdir(parents=True)  # a folder where the file must go

    async def start() -> ApiServer:
        server = ApiServer(Service(settings), settings, port=0)
        with pytest.raises(OSError):
            await server.start()
        return server

    server = asyncio.run(start())
    port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=10):
        pass


@pytest.mark.slow
def test_api_on_an_address_it_cannot_bind_says_so_and_frees_the_index(cli, home, docs):
    (docs / "a.md").write_text("# A\n\nalpha\n")
    cli.ok("sources", "add", "local", str(docs))
    # 203.0.113.0/24 is reserved for documentation: no interface here has that address.
    r = cli.subprocess("api", "--host", "203.0.113.7", "--port", "0", "--plain", "--no-watch")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "cannot serve the REST API on 203.0.113.7:0" in r.stderr
    assert "--no-api" in r.stderr and "Traceback" not in r.stderr
    assert "added 1," in cli.ok("sync").out  # the service it started let go of the index
