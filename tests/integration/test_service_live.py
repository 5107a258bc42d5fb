"""The service under load and under trouble: a burst of files, changes during a pass, a watcher
that fails, cancel and SIGTERM mid-pass, holds (battery, disk), clock jumps, health, priority.

Real watchdog observers on temp folders, a real index; time is injected where the service
measures it (re-arm backoff, clock jumps), so nothing here asserts by sleeping.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from app.config import load_settings, save_sources
from app.models import SourceConfig, SourceType
from app.service.orchestrator import Service
from tests.conftest import REPO
from tests.helpers.consistency import assert_consistent
from tests.helpers.service import indexed_names, make_settings, wait_for, write_notes


class Recorder:
    def __init__(self, service):
        self.events = []
        service.events.subscribe(self.events.append)

    def of(self, kind, **match):
        return [e for e in self.events if e.kind == kind
                and all(e.data.get(k) == v for k, v in match.items())]


def test_burst_of_5000_new_files_is_indexed_completely(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    settings = make_settings(tmp_path / "home", docs, poll_interval=3600)

    async def scenario():
        service = Service(settings)
        rec = Recorder(service)
        await service.start()
        try:
            assert await wait_for(lambda: rec.of("sync_finished"))
            await asyncio.to_thread(write_notes, docs / "burst", 5000, "b", 1)
            assert await wait_for(lambda: len(indexed_names(service)) == 5000, timeout=240,
                                  step=0.5), f"{len(indexed_names(service))} of 5000 indexed"
        finally:
            await service.stop()
        # Watch hints did the work (no reconciliation pass ran: poll interval is an hour).
        after_first = rec.of("sync_finished")[1:]
        assert after_first and all(e.data["targeted"] for e in after_first)
        reports = [e.data["report"] for e in after_first]
        assert sum(r["added"] for r in reports) == 5000, [
            {k: v for k, v in r.items() if v and k != "source_id"} for r in reports]

    asyncio.run(scenario())
    docs_rows = assert_consistent(tmp_path / "home" / "data" / "index")
    assert len(docs_rows) == 5000


def test_changes_arriving_while_a_pass_runs_are_all_picked_up(tmp_path):
    docs = tmp_path / "docs"
    write_notes(docs, 1500)
    settings = make_settings(tmp_path / "home", docs, poll_interval=3600)

    async def scenario():
        service = Service(settings)
        rec = Recorder(service)
        await service.start()
        try:
            assert await wait_for(lambda: any(
                e.data["done"] > 0 for e in rec.of("progress", phase="indexing")), timeout=60)
            assert service.get_status().current == "docs"
            # During the initial pass: a new file, an edit, a delete, a rename.
            (docs / "during.md").write_text("# During\n\nwritten mid-pass zanzibar\n")
            (docs / "n1.md").write_text("# n 1\n\nrewritten mid-pass quokka\n")
            (docs / "n2.md").unlink()
            (docs / "n3.md").rename(docs / "renamed.md")
            names = {f"n{i}.md" for i in range(1500)} - {"n2.md", "n3.md"}
            names |= {"during.md", "renamed.md"}
            assert await wait_for(lambda: indexed_names(service) == names, timeout=120)
            assert await wait_for(lambda: service.get_status().queue.sources == 0)
        finally:
            await service.stop()
        assert any(e.data["targeted"] for e in rec.of("sync_finished"))

    asyncio.run(scenario())
    rows = {os.path.basename(d["uri"]): d for d in
            assert_consistent(tmp_path / "home" / "data" / "index")}
    assert "n2.md" not in rows and "n3.md" not in rows
    hits = Service(settings).search("quokka", k=3, mode="fts")
    assert hits and hits[0].uri.endswith("/n1.md")


def test_observer_failure_polls_with_degraded_state_then_live_watching_returns(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nalpha\n")
    settings = make_settings(tmp_path / "home", docs, poll_interval=5)
    offset = [0.0]
    calls = []

    def observer_factory():
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        from watchdog.observers import Observer

        return Observer()

    async def scenario():
        service = Service(settings, observer_factory=observer_factory,
                          clock=lambda: time.monotonic() + offset[0],
                          wall_clock=lambda: time.time() + offset[0])
        rec = Recorder(service)
        await service.start()
        try:
            status = service.get_status().sources[0]
            assert status.watcher == "degraded"
            assert "max_user_watches" in status.watcher_reason
            assert "max_user_watches" in status.waiting
            assert service.get_status().health["status"] == "warning"
            # Polling still finds new files (every poll_interval = 5 s).
            (docs / "polled.md").write_text("# Polled\n\nfound by polling\n")
            assert await wait_for(lambda: "polled.md" in indexed_names(service), timeout=30)
            # Before the re-arm delay nothing is tried; after it, live watching comes back.
            await service.check_health()
            assert len(calls) == 1
            offset[0] += 61
            await service.check_health()
            assert len(calls) == 2
            status = service.get_status().sources[0]
            assert status.watcher == "watching" and status.waiting == ""
            t = time.monotonic()
            (docs / "live.md").write_text("# Live\n\nfound by the watcher\n")
            assert await wait_for(lambda: "live.md" in indexed_names(service), timeout=30)
            assert time.monotonic() - t < 4.5  # well under the 5 s polling period
        finally:
            await service.stop()
        states = [e.data["state"] for e in rec.of("watcher")]
        assert states[:1] == ["degraded"] and "watching" in states

    asyncio.run(scenario())


def test_cancel_mid_pass_keeps_the_index_consistent_and_the_next_pass_resumes(tmp_path):
    docs = tmp_path / "docs"
    write_notes(docs, 1500)
    settings = make_settings(tmp_path / "home", docs, poll_interval=3600)
    index = tmp_path / "home" / "data" / "index"

    async def first():
        service = Service(settings, watch=False)
        rec = Recorder(service)
        finished = asyncio.Event()

        def steer(event):
            if (event.kind == "progress" and event.data["phase"] == "indexing"
                    and event.data["done"] > 0):
                # Published on the pass's writer thread right after a batch committed; the
                # cancel is a threading.Event, so setting it here stops the pass with some of
                # the folder committed and most of it not, however slow the machine.
                service.cancel_current()
            elif event.kind == "sync_finished" and not finished.is_set():
                # The service re-queues a cancelled pass and would start it again at once.
                # Callbacks run on the publisher's thread, and the service publishes this on
                # its loop before it picks the next job: pausing here holds the re-queued pass
                # before it can commit anything.
                service.pause()
                finished.set()

        service.events.subscribe(steer)
        await service.start()
        try:
            await asyncio.wait_for(finished.wait(), timeout=300)
            report = rec.of("sync_finished")[0].data["report"]
            assert report["cancelled"] is True
            assert 0 < report["added"] < 1500
            status = service.get_status()
            assert status.paused and status.queue.full_passes == 1  # still queued
        finally:
            await service.stop()
        assert len(rec.of("sync_finished")) == 1  # the re-queued pass never ran here
        return report["added"]

    async def second():
        service = Service(settings, watch=False)
        rec = Recorder(service)
        finished = asyncio.Event()
        unsubscribe = service.events.subscribe(
            lambda e: finished.set() if e.kind == "sync_finished" else None)
        await service.start()
        service.resume()
        try:
            await asyncio.wait_for(finished.wait(), timeout=300)
        finally:
            unsubscribe()
            await service.stop()
        return rec.of("sync_finished")[0].data["report"]

    committed = asyncio.run(first())
    assert len(assert_consistent(index)) == committed
    report = asyncio.run(second())
    assert report["cancelled"] is False
    assert report["added"] == 1500 - committed  # resumed: nothing committed was redone
    assert report["unchanged"] == committed
    assert len(assert_consistent(index)) == 1500


@pytest.mark.slow
def test_sigterm_mid_batch_stops_cleanly_and_the_next_start_resumes(tmp_path):
    docs = tmp_path / "docs"
    write_notes(docs, 3000, paragraphs=3)
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    app = [sys.executable, "-m", "app", "--home", str(home)]
    subprocess.run([*app, "sources", "add", "local", str(docs)], check=True, env=env,
                   capture_output=True, cwd=REPO)
    daemon = subprocess.Popen([*app, "run", "--plain"], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in daemon.stdout:  # the first progress line: batches are being committed
            m = re.search(r"docs: ([\d,]+)/3,000 indexed", line)
            if m and int(m.group(1).replace(",", "")) > 0:
                break
        daemon.send_signal(signal.SIGTERM)
        t = time.monotonic()
        _, err = daemon.communicate(timeout=30)
        stop_s = time.monotonic() - t
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, err
    assert stop_s < 10 and "stopped" in err
    committed = len(assert_consistent(home / "data" / "index"))
    assert 0 < committed < 3000
    r = subprocess.run([*app, "sync", "--json"], env=env, cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)[0]
    assert report["added"] == 3000 - committed and report["unchanged"] == committed
    assert len(assert_consistent(home / "data" / "index")) == 3000


def test_pause_on_battery_holds_with_a_reason_and_mains_power_releases(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    settings = make_settings(tmp_path / "home", docs, poll_interval=3600)
    settings = load_settings(home=tmp_path / "home", env={},
                             overrides={"pause_on_battery": True})
    battery = [True]

    async def scenario():
        service = Service(settings, power_probe=lambda: battery[0])
        rec = Recorder(service)
        await service.start()
        try:
            status = service.get_status()
            assert status.on_battery is True
            src = status.sources[0]
            assert src.state == "paused" and "mains power" in src.waiting
            (docs / "a.md").write_text("# A\n\nalpha\n")
            # The first pass is queued, not run, while on battery.
            assert service.get_status().queue.full_passes == 1
            assert indexed_names(service) == set()
            battery[0] = False
            await service.check_health()
            assert await wait_for(lambda: indexed_names(service) == {"a.md"})
        finally:
            await service.stop()
        states = [e.data["state"] for e in rec.of("state")]
        assert "paused" in states and states.index("paused") < len(states) - 1

    asyncio.run(scenario())


def test_low_disk_space_holds_syncing_and_status_says_why(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nalpha\n")
    home = tmp_path / "home"
    make_settings(home, docs, poll_interval=3600)
    settings = load_settings(home=home, env={}, overrides={"min_free_disk_mb": 1 << 20})

    async def scenario():
        service = Service(settings, watch=False)
        await service.start()
        try:
            status = service.get_status()
            assert status.health["status"] == "error"
            assert "MB free" in status.held
            assert status.sources[0].state == "paused"
            assert indexed_names(service) == set()
            # `status` in another process reads the running service's status file.
            from app.cli import main

            assert await wait_for(lambda: (settings.state_dir / "service-status.json")
                                  .exists())
            capsys.readouterr()
            assert await asyncio.to_thread(main, ["--home", str(home), "status"]) == 0
            out = capsys.readouterr().out
            assert f"Service: running (pid {os.getpid()})" in out
            assert "ERROR: Only" in out and "waiting: Only" in out
        finally:
            await service.stop()
        assert not (settings.state_dir / "service-status.json").exists()

    asyncio.run(scenario())


def test_clock_jump_triggers_a_reconciliation_pass(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    settings = make_settings(tmp_path / "home", docs, poll_interval=3600)
    jump = [0.0]

    async def scenario():
        service = Service(settings, watch=False, wall_clock=lambda: time.time() + jump[0])
        rec = Recorder(service)
        await service.start()
        try:
            assert await wait_for(lambda: rec.of("sync_finished"))
            (docs / "missed.md").write_text("# Missed\n\nwritten while asleep\n")
            await service.check_health()
            assert not rec.of("clock_jump")
            jump[0] = 3 * 3600.0  # the machine slept three hours
            await service.check_health()
            assert rec.of("clock_jump")[0].data["seconds"] == pytest.approx(3 * 3600, abs=5)
            assert await wait_for(lambda: "missed.md" in indexed_names(service))
        finally:
            await service.stop()

    asyncio.run(scenario())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_low_priority_mode_lowers_the_parser_workers_and_the_pass_threads_disk_use(tmp_path):
    docs = tmp_path / "docs"
    write_notes(docs, 20)
    settings = make_settings(tmp_path / "home", docs, poll_interval=3600)
    assert settings.low_priority is True  # the default

    async def scenario():
        service = Service(settings, watch=False)
        rec = Recorder(service)
        started = time.time() - 1
        await service.start()
        try:
            assert await wait_for(lambda: rec.of("sync_finished"))
            # This service's parser workers (not other tests' leftovers or the resource tracker).
            workers = [p for p in psutil.Process().children()
                       if "spawn_main" in " ".join(p.cmdline()) and p.create_time() >= started]
            assert workers and all(p.nice() >= 10 for p in workers)
            # Threads of this process keep their CPU priority (they share the interpreter lock
            # with the loop and the UI: a niced holder of it would stall them) and only get
            # the lowest best-effort disk priority.
            passes = [t for t in threading.enumerate() if t.name.startswith("sync-pass")]
            assert passes and all(
                os.getpriority(os.PRIO_PROCESS, t.native_id) < 10 for t in passes)
            assert all(psutil.Process(t.native_id).ionice() == (psutil.IOPRIO_CLASS_BE, 7)
                       for t in passes)
            assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 10
        finally:
            await service.stop()

    asyncio.run(scenario())


def test_seed_factory_builds_a_service_on_the_given_index(tmp_path):
    from app.service.orchestrator import create_orchestration_service

    settings = load_settings(home=tmp_path / "home", env={})
    settings = save_sources(settings, (SourceConfig(
        SourceType.LOCAL_FILESYSTEM, "d", {"watch_paths": [str(tmp_path)]}),))
    service = create_orchestration_service(settings, local_db_path=tmp_path / "elsewhere",
                                           s3_bucket="bucket", enable_source_monitoring=False)
    assert service.settings.index_uri == str(tmp_path / "elsewhere")
    assert service.settings.s3_bucket == "bucket"
    assert service._watch is False
