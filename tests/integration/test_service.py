"""The sync service on a real folder, a real watcher and a real index (issue 3 groundwork)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from app.config import load_settings, save_sources
from app.models import SourceConfig, SourceType
from app.service.orchestrator import Service
from tests.conftest import REPO
from tests.helpers.service import indexed_names, make_settings, wait_for


def test_saved_file_is_indexed_by_the_watcher(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "first.md").write_text("# First\n\nAlready here.\n")
    settings = make_settings(tmp_path / "home", docs, poll_interval=3600)

    async def scenario():
        service = Service(settings)
        events = []
        service.events.subscribe(events.append)
        await service.start()
        try:
            assert await wait_for(lambda: "first.md" in indexed_names(service))
            assert service.get_status().sources[0].watcher == "watching"
            t = time.monotonic()
            (docs / "saved.md").write_text("# Saved\n\nWritten while the service runs.\n")
            assert await wait_for(lambda: "saved.md" in indexed_names(service))
            latency = time.monotonic() - t
            (docs / "first.md").unlink()
            assert await wait_for(lambda: "first.md" not in indexed_names(service))
        finally:
            await service.stop()
        finished = [e for e in events if e.kind == "sync_finished"]
        assert any(e.data["targeted"] for e in finished)  # the save was a targeted re-check
        assert any(e.kind == "progress" for e in events)
        return latency

    latency = asyncio.run(scenario())
    assert latency < 15  # generous for a loaded CI machine; the benchmark measures it properly


def test_pause_survives_restart_and_resume_catches_up(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    settings = make_settings(tmp_path / "home", docs, poll_interval=3600)

    async def first_run():
        service = Service(settings)
        await service.start()
        service.pause()
        await service.stop()

    async def second_run():
        service = Service(settings)
        await service.start()
        try:
            status = service.get_status()
            assert status.paused is True
            (docs / "while-paused.md").write_text("# Paused\n\nNot yet.\n")
            # Paused: the scheduler does no pass. Give it a moment to (wrongly) act.
            await asyncio.sleep(1.5)
            assert "while-paused.md" not in indexed_names(service)
            service.resume()
            assert await wait_for(lambda: "while-paused.md" in indexed_names(service))
            assert service.get_status().paused is False
        finally:
            await service.stop()

    asyncio.run(first_run())
    asyncio.run(second_run())


def test_async_event_stream_and_sync_now(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nalpha\n")
    settings = make_settings(tmp_path / "home", docs, poll_interval=3600)

    async def scenario():
        service = Service(settings, watch=False)
        kinds = []

        async def consume():
            async for ev in service.events.stream():
                kinds.append((ev.kind, ev.source_id))
                if ev.kind == "sync_finished" and len(
                        [k for k in kinds if k[0] == "sync_finished"]) == 2:
                    return

        consumer = asyncio.create_task(consume())
        await service.start()
        try:
            assert await wait_for(lambda: ("sync_finished", "docs") in kinds)
            (docs / "b.md").write_text("# B\n\nbeta\n")
            service.sync_now("docs")  # no watcher: only an explicit or periodic pass sees it
            await asyncio.wait_for(consumer, 30)
            assert "b.md" in indexed_names(service)
        finally:
            await service.stop()
        assert ("state", "docs") in kinds

    asyncio.run(scenario())


def test_search_sees_what_the_running_service_indexed_since(tmp_path):
    """The service keeps its read-only store open between searches (the tray searches as you
    type); a pass it ran since must still show up in the next search."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nalpha wombat\n")
    settings = make_settings(tmp_path / "home", docs, poll_interval=3600)

    async def scenario():
        service = Service(settings, watch=False)
        finished = []
        service.events.subscribe(
            lambda e: finished.append(e) if e.kind == "sync_finished" else None)
        await service.start()
        try:
            assert await wait_for(lambda: finished, timeout=120)
            hits = await asyncio.to_thread(service.search, "wombat", mode="fts")
            assert [h.title for h in hits] == ["A"]
            (docs / "b.md").write_text("# B\n\nbeta quokka\n")
            service.sync_now("docs")
            assert await wait_for(lambda: len(finished) == 2, timeout=120)
            hits = await asyncio.to_thread(service.search, "quokka", mode="fts")
            assert [h.title for h in hits] == ["B"]
        finally:
            await service.stop()

    asyncio.run(scenario())


@pytest.mark.slow
def test_run_daemon_single_instance_and_sigterm(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nalpha\n")
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    app = [sys.executable, "-m", "app", "--home", str(home)]
    subprocess.run([*app, "sources", "add", "local", str(docs)], check=True, env=env,
                   capture_output=True)
    daemon = subprocess.Popen([*app, "run"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run([*app, "status", "--json"], env=env, capture_output=True,
                                 text=True)
            if '"documents": 1' in out.stdout:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the daemon did not index the folder")
        second = subprocess.run([*app, "run"], env=env, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 3 and "Another LanceDB Sync process" in second.stderr
        daemon.send_signal(signal.SIGTERM)
        t = time.monotonic()
        _, err = daemon.communicate(timeout=30)
        assert daemon.returncode == 0, err
        assert time.monotonic() - t < 10 and "stopping" in err
    finally:
        if daemon.poll() is None:
            daemon.kill()


def test_failing_source_backs_off_and_sync_now_retries(tmp_path):
    home = tmp_path / "home"
    settings = load_settings(home=home, env={})
    # No folders: every pass of this source fails with a SourceError.
    broken = SourceConfig(SourceType.LOCAL_FILESYSTEM, "broken", {"watch_paths": []},
                          poll_interval=3600)
    settings = save_sources(settings, (broken,))

    async def scenario():
        service = Service(settings)
        errors = []
        service.events.subscribe(lambda e: errors.append(e) if e.kind == "error" else None)
        await service.start()
        try:
            assert await wait_for(lambda: len(errors) == 1)
            status = service.get_status().sources[0]
            assert status.state == "error" and status.failures == 1
            assert "no watch_paths" in status.last_error
            assert 1.0 <= errors[0].data["retry_in"] <= 3.0  # first backoff step: ~2 s
            assert not service.scheduler.retry("broken").ready()  # backing off
            service.sync_now("broken")  # the user asks: try at once, not after the backoff
            assert service.scheduler.retry("broken").ready()  # the wait is gone, decided now
            assert await wait_for(lambda: len(errors) == 2)
            assert errors[1].data["retry_in"] > errors[0].data["retry_in"]
        finally:
            await service.stop()

    asyncio.run(scenario())
