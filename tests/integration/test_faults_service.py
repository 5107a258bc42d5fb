"""The same fault points as test_faults.py, met by the running service instead of the CLI.

Error mode: the service's own retry (backoff, no user action) repairs and finishes the work.
Kill mode: `lancedb-sync run` dies at the point; the next `run` repairs at start and finishes.
Either way the index then equals a clean run over the same files and `check` finds nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from app.core import faults
from app.service.orchestrator import Service
from tests.conftest import REPO, Cli
from tests.helpers.consistency import assert_mirror_matches, assert_same_index
from tests.helpers.service import make_settings, wait_for
from tests.integration.test_faults import (
    MAINTAIN_POINTS,
    SYNC_POINTS,
    clean_run,
    edit_corpus,
    write_corpus,
)


@pytest.fixture(autouse=True)
def _fresh_fault_counters(monkeypatch):
    faults._HITS.clear()
    monkeypatch.delenv("LANCEDB_SYNC_FAULT", raising=False)
    yield
    faults._HITS.clear()


def finished_ok(events, after: int) -> bool:
    return any(e.kind == "sync_finished" for e in events[after:])


@pytest.mark.slow
@pytest.mark.parametrize("point", [*SYNC_POINTS, *MAINTAIN_POINTS])
def test_service_retries_after_an_error_at_every_step(tmp_path, capsys, monkeypatch, point):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    home = tmp_path / "home"
    settings = make_settings(home, corpus, poll_interval=3600)

    async def scenario():
        service = Service(settings, watch=False)
        events: list = []
        service.events.subscribe(events.append)
        await service.start()
        try:
            assert await wait_for(lambda: finished_ok(events, 0), timeout=120)
            mark = len(events)
            monkeypatch.setenv("LANCEDB_SYNC_FAULT", f"{point}:1:error")
            edit_corpus(corpus)
            service.sync_now()
            if point.startswith("maintain"):
                # Upkeep failing is not the pass failing: it finishes, and says so.
                assert await wait_for(lambda: finished_ok(events, mark), timeout=120)
                done = next(e for e in events[mark:] if e.kind == "sync_finished")
                assert done.data["report"]["maintenance_errors"]
                assert not any(e.kind == "error" for e in events[mark:])
                return
            assert await wait_for(lambda: any(e.kind == "error" for e in events[mark:]),
                                  timeout=120)
            error = next(e for e in events[mark:] if e.kind == "error")
            assert "disk holding the index is full" in error.data["reason"]
            assert 1.0 <= error.data["retry_in"] <= 3.0
            # No user action: the retry after the backoff repairs first, then syncs.
            assert await wait_for(lambda: finished_ok(events, mark), timeout=120)
            assert faults._HITS[point] >= 1
        finally:
            await service.stop()

    asyncio.run(scenario())
    assert_recovered_by_files(tmp_path, home, corpus, capsys, "docs")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["purge-after-documents", "purge-after-chunks"])
def test_service_finishes_an_interrupted_purge_by_itself(tmp_path, capsys, monkeypatch, point):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    home = tmp_path / "home"
    settings = make_settings(home, corpus, poll_interval=3600)

    async def scenario():
        service = Service(settings, watch=False)
        events: list = []
        service.events.subscribe(events.append)
        await service.start()
        try:
            assert await wait_for(lambda: finished_ok(events, 0), timeout=120)
            monkeypatch.setenv("LANCEDB_SYNC_FAULT", f"{point}:1:error")
            await service.remove_source("docs", purge=True)
            assert any(e.kind == "error" for e in events)
            assert await wait_for(lambda: any(e.kind == "purged" for e in events), timeout=60)
        finally:
            await service.stop()

    asyncio.run(scenario())
    cli = Cli(home, capsys)
    report = cli("check", "--json")
    assert report.code == 0, report.out
    assert '"documents": 0' in report.out


def assert_recovered_by_files(tmp_path, home, corpus, capsys, source_id="c"):
    assert_same_index(home / "data" / "index", clean_run(tmp_path, corpus, capsys, source_id))
    assert_mirror_matches(home)
    assert Cli(home, capsys)("check").code == 0


def _runs_finished(home) -> int:
    try:
        with sqlite3.connect(home / "data" / "state" / "sync-state.sqlite3") as db:
            return db.execute("SELECT COUNT(*) FROM runs WHERE outcome = 'ok'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _daemon(home, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--home", str(home), "run", "--plain", "--no-watch"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


@pytest.mark.slow
@pytest.mark.parametrize("point", SYNC_POINTS)
def test_killed_service_repairs_at_the_next_start(tmp_path, capsys, point):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    home = tmp_path / "home"
    cli = Cli(home, capsys)
    cli.ok("sources", "add", "local", str(corpus), "--id", "c")
    cli.ok("sync")
    edit_corpus(corpus)
    daemon = _daemon(home, {"LANCEDB_SYNC_FAULT": f"{point}:1"})
    try:
        daemon.wait(timeout=300)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == -signal.SIGKILL, daemon.stderr.read()[-2000:]
    before = _runs_finished(home)
    daemon = _daemon(home)
    try:
        deadline = time.monotonic() + 300
        while _runs_finished(home) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _runs_finished(home) > before
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=120)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    assert_recovered_by_files(tmp_path, home, corpus, capsys)
