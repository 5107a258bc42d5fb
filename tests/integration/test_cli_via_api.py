"""The command line routed through a running app: with `lancedb-sync run` serving this home's
index, `search`, `status`, `failed`, `sources` and `sync` answer through its REST API (the same
output as in-process; `sync` no longer exits 3), and once it stops they run in-process again.

A real daemon subprocess on a temp home, real LanceDB; waits on conditions, not sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from app.api.discovery import read_running
from app.config import load_settings
from tests.conftest import REPO

HEAVY = ("lancedb", "pyarrow", "numpy", "requests", "fastapi", "pydantic", "wordllama")


def _wait(predicate, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _modules_after(home, *args):
    """Run a command in a fresh interpreter; the heavy top-level packages it imported."""
    code = ("import sys\nfrom app.cli import main\ncode = main(sys.argv[1:])\n"
            f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
            "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\nsys.exit(code)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", code, "--home", str(home), *args], env=env,
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    heavy = r.stderr.rsplit("HEAVY=", 1)[1].strip()
    return r, heavy


def _start_daemon(home, settings, env, stdout=subprocess.PIPE):
    """`lancedb-sync run --plain --no-watch` on `home`, once api.json names its server."""
    daemon = subprocess.Popen([sys.executable, "-m", "app", "--home", str(home), "run",
                               "--plain", "--no-watch"], env=env, cwd=REPO,
                              stdout=stdout, stderr=subprocess.PIPE, text=True)
    _wait(lambda: read_running(settings.state_dir) is not None or daemon.poll() is not None,
          what="api.json naming the server")
    assert daemon.poll() is None, daemon.communicate()
    return daemon


def _stop_daemon(daemon, timeout):
    """SIGTERM, as a service manager stops it; killed only if it does not end."""
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.communicate(timeout=timeout)
    finally:
        if daemon.poll() is None:
            daemon.kill()


def _comparable_status(out):
    info = json.loads(out)
    for s in info["sources"]:  # what the running service adds (its live state) is not compared
        for key in ("state", "watcher", "queued_paths", "waiting", "progress", "last_sync"):
            s.pop(key)
    info.pop("service")
    return info


@pytest.mark.slow
def test_commands_go_through_the_running_app_and_fall_back_when_it_stops(cli, home, docs):
    for i in range(3):
        (docs / f"n{i}.md").write_text(f"# Note {i}\n\nquokka notes number {i} about "
                                       "marsupials\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    cli.ok("sources", "add", "local", str(docs))
    cli.ok("sync")
    settings = load_settings(home=home)
    assert read_running(settings.state_dir) is None
    queries = [("search", "quokka", "--json"), ("search", "quokka", "--mode", "fts", "-k", "2"),
               ("failed", "--json"), ("failed",), ("sources", "list", "--json"),
               ("sources", "list")]
    before = {q: cli.ok(*q).out for q in queries}
    status_before = _comparable_status(cli.ok("status", "--json").out)

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    daemon = _start_daemon(home, settings, env)
    try:
        # Through the API: the same output, in this process and in a fresh one.
        for q in queries:
            assert cli.ok(*q).out == before[q], q
        status = json.loads(cli.ok("status", "--json").out)
        assert status["service"]["running"] and status["service"]["pid"] == daemon.pid
        assert _comparable_status(json.dumps(status)) == status_before
        r, heavy = _modules_after(home, "search", "quokka", "--json")
        assert r.returncode == 0, r.stderr
        assert r.stdout == before[("search", "quokka", "--json")]
        assert heavy == "", f"a routed search imported {heavy}"

        # `sync` works while the app runs (in-process it would exit 3: the app holds the index).
        (docs / "n9.md").write_text("# Note 9\n\nwombat burrows\n")
        r = cli("sync")
        assert r.code == 0, r.err
        assert r.out.startswith("docs: added 1, modified 0, deleted 0, moved 0, unchanged 4,")
        again = json.loads(cli.ok("sync", "--json").out)
        assert [(x["source_id"], x["added"], x["unchanged"]) for x in again] == [("docs", 0, 5)]
        hits = json.loads(cli.ok("search", "wombat", "--mode", "fts", "--json").out)
        assert [h["title"] for h in hits] == ["Note 9"]
        assert json.loads(cli.ok("status", "--json").out)["documents"] == 4

        # Errors keep their in-process message and exit code.
        r = cli("sync", "--source", "nope")
        assert (r.code, r.err.strip()) == (2, "lancedb-sync: No source named 'nope'.")
        r = cli("sources", "add", "local", str(docs))
        assert r.code == 2 and "exists already" in r.err
        r = cli.ok("retry", "--no-sync")
        assert r.out.endswith("failed or skipped files will be tried again.\n")

        # Adding and removing a source goes through the app (it saves the settings).
        other = docs.parent / "other"
        other.mkdir()
        (other / "o.md").write_text("# O\n\nplatypus\n")
        r = cli.ok("sources", "add", "local", str(other))
        assert r.out.startswith("Added source 'other'")
        listed = json.loads(cli.ok("sources", "list", "--json").out)
        assert [s["source_id"] for s in listed] == ["docs", "other"]
        cli.ok("sync", "--source", "other")
        r = cli.ok("sources", "remove", "other", "--purge")
        assert r.out == "Removed source 'other'; 1 documents deleted from the index.\n"
        assert [s.source_id for s in load_settings(home=home).sources] == ["docs"]
        before_stop = {q: cli.ok(*q).out for q in queries[:2]}
    finally:
        _stop_daemon(daemon, 60)
    assert daemon.returncode == 0

    # No app: in-process again, the same answers.
    assert read_running(settings.state_dir) is None
    for q in queries[:2]:
        assert cli.ok(*q).out == before_stop[q], q
    assert json.loads(cli.ok("status", "--json").out)["service"]["running"] is False
    r, heavy = _modules_after(home, "search", "quokka", "--mode", "fts", "--json")
    assert r.returncode == 0 and "lancedb" in heavy  # it opened the index itself


def test_a_server_that_does_not_answer_means_in_process(cli, home, docs):
    """api.json naming a live process (this one) where nothing listens: fall back."""
    from app.api.discovery import write_running

    (docs / "a.md").write_text("# A\n\nalpha\n")
    cli.ok("sources", "add", "local", str(docs))
    settings = load_settings(home=home)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_running(settings.state_dir, url=f"http://127.0.0.1:{port}", token="t" * 40,
                  index=settings.index_uri)
    assert read_running(settings.state_dir) is not None
    r = cli.ok("sync")
    assert r.out.startswith("docs: added 1,")
    assert json.loads(cli.ok("status", "--json").out)["documents"] == 1
    assert cli.ok("failed").out == "No failed files.\n"


@pytest.mark.slow
def test_ctrl_c_stops_a_sync_running_in_the_app_and_the_next_one_finishes_it(cli, home, docs,
                                                                                tmp_path):
    """`sync` through the app, interrupted: the app's pass stops at a batch boundary, the
    command says so with exit 130, nothing half-written is kept, and a later sync adds the
    rest. The parser waits on a gate file, so the pass is certainly under way at Ctrl-C."""
    from app.api.client import ApiClient

    cli.ok("sources", "add", "local", str(docs), "--pattern", "*.gated")
    cli.write_config('[extractors]\n".gated" = "tests.helpers.parsers:gated"\n')
    settings = load_settings(home=home)
    gate = tmp_path / "gate"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LANCEDB_SYNC_TEST_GATE": str(gate)}
    daemon = _start_daemon(home, settings, env, stdout=subprocess.DEVNULL)
    n = 300
    try:
        client = ApiClient.from_info(read_running(settings.state_dir))
        _wait(lambda: client.get("/api/v1/status")["sources"][0]["last_sync"] is not None,
              what="the app's first pass (of an empty folder)")
        gate.write_text("")
        for i in range(n):
            (docs / f"g{i:03}.gated").write_text(f"gated note {i} about echidnas\n")
        sync = subprocess.Popen([sys.executable, "-m", "app", "--home", str(home), "sync"],
                                env=env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        _wait(lambda: client.get("/api/v1/status")["current"] == "docs",
              what="the sync's pass to be under way (held by the gate)")
        sync.send_signal(signal.SIGINT)
        _wait(lambda: any(j["kind"] == "sync" and j["cancel_requested"]
                          for j in client.get("/api/v1/jobs")), what="the job to be cancelled")
        gate.unlink()  # the parse under way ends; the pass stops at the batch boundary
        out, err = sync.communicate(timeout=180)
        assert sync.returncode == 130, (out, err)
        assert "interrupted" in err and "nothing half-written was kept" in err, err
        assert "Traceback" not in err
        (job,) = [j for j in client.get("/api/v1/jobs") if j["kind"] == "sync"]
        assert job["state"] == "cancelled", job
        (report,) = job["result"]
        assert report["cancelled"] and report["added"] < n
        assert client.get("/api/v1/status")["sources"][0]["last_sync"]["outcome"] == "cancelled"
    finally:
        gate.unlink(missing_ok=True)
        _stop_daemon(daemon, 120)
    assert daemon.returncode == 0
    # In-process now: a sync completes what was left, and the index is whole.
    cli.ok("sync")
    assert json.loads(cli.ok("status", "--json").out)["documents"] == n
    assert cli("check").code == 0
