"""Every step of the commit protocol, of a purge, of repair and of maintenance, interrupted in
both ways (`LANCEDB_SYNC_FAULT=POINT:N[:error]`): killed as by a power cut, or failing as on a
full disk. After the failing run and one more, the index equals a clean run over the same files
and `lancedb-sync check` finds nothing.

The failing run goes through the real CLI (a subprocess for a kill; in this process for an error,
which is the same code and much faster), the recovery through the CLI in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from app.core import faults
from tests.conftest import REPO, Cli
from tests.helpers.consistency import assert_mirror_matches, assert_same_index

N_FILES = 40


def write_corpus(root) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(N_FILES):
        paras = "\n\n".join(f"Paragraph {j} of note {i}: ledger {i * 7 + j} mentions harbour "
                            f"lights, tide tables and the keeper's log, entry {j}." * 3
                            for j in range(2 + i % 4))
        (root / f"note{i:02}.md").write_text(f"# Note {i}\n\n{paras}\n")


def edit_corpus(root) -> None:
    """One of every kind of change: modified, deleted, touched, renamed, added."""
    for i in range(0, 5):
        p = root / f"note{i:02}.md"
        p.write_text(p.read_text() + f"\n\nAn addendum about lighthouse {i}.\n")
    for i in range(5, 8):
        (root / f"note{i:02}.md").unlink()
    for i in range(8, 11):
        p = root / f"note{i:02}.md"
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    for i in range(11, 14):
        (root / f"note{i:02}.md").rename(root / f"renamed{i:02}.md")
    for i in range(5):
        (root / f"new{i}.md").write_text(f"# New {i}\n\nA fresh note about the foghorn {i}.\n")


def clean_run(tmp_path, corpus, capsys, source_id="c"):
    truth = Cli(tmp_path / "truth", capsys)
    truth.ok("sources", "add", "local", str(corpus), "--id", source_id)
    truth.ok("sync")
    return tmp_path / "truth" / "data" / "index"


def run_sub(home, *args, env):
    return subprocess.run(
        [sys.executable, "-m", "app", "--home", str(home), *args], capture_output=True,
        text=True, cwd=REPO, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO), "LANCEDB_SYNC_PARSE_TIMEOUT": "120",
             **env})


@pytest.fixture(autouse=True)
def _fresh_fault_counters(monkeypatch):
    faults._HITS.clear()
    yield
    faults._HITS.clear()


def fail_once(cli, home, mode, point, *args, expect_ok=False):
    """Run `lancedb-sync ARGS` with the fault; assert it failed the way it should."""
    spec = f"{point}:1" + (":error" if mode == "error" else "")
    if mode == "kill":
        r = run_sub(home, *args, env={"LANCEDB_SYNC_FAULT": spec})
        assert r.returncode == -signal.SIGKILL, (point, r.returncode, r.stderr[-2000:])
        return
    os.environ["LANCEDB_SYNC_FAULT"] = spec
    try:
        r = cli(*args)
    finally:
        del os.environ["LANCEDB_SYNC_FAULT"]
    assert faults._HITS.get(point) == 1, f"{point} was never reached"
    assert "Traceback" not in r.err
    if expect_ok:
        assert r.code == 0, (point, r.err)
        assert "tried again later" in r.out + r.err or "failed" in r.out, r.out
    else:
        assert r.code == 1, (point, r.code, r.out, r.err)
        # One line that says what happened and what to do.
        assert len(r.err.strip().splitlines()) == 1, r.err
        assert "disk holding the index is full" in r.err, r.err


def assert_recovered(cli, home, tmp_path, corpus, capsys):
    cli.ok("sync")
    assert_same_index(home / "data" / "index", clean_run(tmp_path, corpus, capsys))
    assert_mirror_matches(home)
    r = cli("check")
    assert r.code == 0, r.out
    # And nothing is left to do: the next pass finds every file unchanged.
    rep = json.loads(cli.ok("sync", "--json").out)[0]
    assert rep["added"] == rep["modified"] == rep["deleted"] == rep["moved"] == 0, rep


SYNC_POINTS = ["after-chunks", "after-documents", "after-mirror", "delete-after-documents",
               "delete-after-chunks", "touch-after-documents", "move-after-chunks",
               "move-after-documents"]
MAINTAIN_POINTS = ["maintain-before", "maintain-after-indexes"]
MODES = ["error", "kill"]


def synced(cli, tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    cli.ok("sources", "add", "local", str(corpus), "--id", "c")
    cli.ok("sync")
    return corpus


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("point", SYNC_POINTS)
def test_sync_interrupted_at_every_commit_step(cli, home, tmp_path, capsys, point, mode):
    corpus = synced(cli, tmp_path)
    edit_corpus(corpus)
    fail_once(cli, home, mode, point, "sync")
    assert_recovered(cli, home, tmp_path, corpus, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("point", MAINTAIN_POINTS)
def test_maintenance_failure_never_fails_the_pass(cli, home, tmp_path, capsys, point, mode):
    corpus = synced(cli, tmp_path)
    edit_corpus(corpus)
    fail_once(cli, home, mode, point, "sync", expect_ok=True)
    if mode == "error":
        # Recorded for `status`, and the next pass that writes tries again.
        assert "index upkeep failed" in cli.ok("status").out.lower()
    assert_recovered(cli, home, tmp_path, corpus, capsys)
    assert "index upkeep failed" not in cli.ok("status").out.lower()


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_cleanup_interrupted_between_the_tables(cli, home, tmp_path, capsys, mode):
    corpus = synced(cli, tmp_path)
    edit_corpus(corpus)
    cli.ok("sync")
    fail_once(cli, home, mode, "maintain-between-tables", "cleanup", expect_ok=True)
    assert_recovered(cli, home, tmp_path, corpus, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("point", ["purge-after-documents", "purge-after-chunks"])
def test_purge_interrupted(cli, home, tmp_path, capsys, point, mode):
    corpus = synced(cli, tmp_path)
    fail_once(cli, home, mode, point, "sources", "remove", "c", "--purge")
    # The removal did not finish, so the source is still configured: a sync puts the index
    # back exactly as a clean run has it (no duplicates on top of leftovers) ...
    assert_recovered(cli, home, tmp_path, corpus, capsys)
    # ... and the purge, run again, empties it.
    cli.ok("sources", "remove", "c", "--purge")
    assert json.loads(cli.ok("check", "--json").out)["found"]["documents"] == 0
    assert cli("check").code == 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_repair_interrupted_while_removing_orphans(cli, home, tmp_path, capsys, mode):
    corpus = synced(cli, tmp_path)
    edit_corpus(corpus)
    fail_once(cli, home, "error", "after-chunks", "sync")  # leaves chunks without rows
    assert cli("check").code == 1
    faults._HITS.clear()
    fail_once(cli, home, mode, "repair-after-orphans", "sync")
    assert_recovered(cli, home, tmp_path, corpus, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_repair_interrupted_while_removing_duplicates(cli, home, tmp_path, capsys, mode):
    import lancedb

    corpus = synced(cli, tmp_path)
    chunks = lancedb.connect(str(home / "data" / "index")).open_table("document_chunks")
    copies = chunks.search().limit(25).to_arrow()
    chunks.add(copies)  # what appending on top of orphans used to do
    r = json.loads(cli("check", "--json").out)
    assert r["found"]["duplicate_chunk_ids"]["count"] == 25
    # Any write repairs first: here the pass after a user's edit.
    edit_corpus(corpus)
    fail_once(cli, home, mode, "repair-after-duplicates", "sync")
    assert_recovered(cli, home, tmp_path, corpus, capsys)


def test_every_fault_point_is_tested_and_documented():
    tested = {*SYNC_POINTS, *MAINTAIN_POINTS, "maintain-between-tables", "purge-after-documents",
              "purge-after-chunks", "repair-after-orphans", "repair-after-duplicates"}
    assert tested == set(faults.POINTS)
    doc = (REPO / "docs" / "reliability.md").read_text()
    missing = [p for p in faults.POINTS if f"`{p}`" not in doc]
    assert not missing, missing


def test_a_fault_fires_exactly_once_per_process(monkeypatch):
    monkeypatch.setenv("LANCEDB_SYNC_FAULT", "after-chunks:2:error")
    faults.fault("after-chunks")
    with pytest.raises(OSError) as info:
        faults.fault("after-chunks")
    assert info.value.errno == 28
    faults.fault("after-chunks")  # a retry in the same process gets past it
    faults.fault("after-documents")

