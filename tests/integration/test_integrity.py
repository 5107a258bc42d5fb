"""Index integrity under ordinary failures, each through the public CLI with real files: damaged
chunk sets, a save during a parse, a parser that times out on a new version, names that are not
UTF-8, folders that cannot be read, chunks without a committed row, two homes on one index, a
nearly full disk, maintenance, FIFOs and closed pipes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap

import blake3
import lancedb
import pytest

from app.core import faults
from tests.conftest import REPO
from tests.helpers.consistency import assert_consistent, assert_mirror_matches

LONG = "\n\n".join(f"Paragraph {i}: the lighthouse keeper logged tide {i} and the wind. " * 12
                   for i in range(8))


def sync(cli) -> dict:
    return json.loads(cli.ok("sync", "--json").out)[0]


def chunks_table(home):
    return lancedb.connect(str(home / "data" / "index")).open_table("document_chunks")


def fts(cli, word) -> list[str]:
    return [os.path.basename(h["uri"]) for h in
            json.loads(cli.ok("search", word, "--mode", "fts", "--json").out)]


@pytest.fixture
def three(cli, docs):
    (docs / "long.md").write_text("# Long\n\n" + LONG)
    (docs / "short.md").write_text("# Short\n\nA pelican note.\n")
    (docs / "other.md").write_text("# Other\n\nA heron note.\n")
    cli.ok("sources", "add", "local", str(docs), "--id", "d")
    assert sync(cli)["added"] == 3
    return docs


# -- 2. a flagged document is extracted again even if its bytes did not change -------------------

@pytest.mark.parametrize("damage", ["one chunk lost", "every chunk lost"])
def test_damaged_document_is_reindexed_although_unchanged(cli, home, three, damage):
    chunks = chunks_table(home)
    uid = f"d:{three / 'long.md'}"
    rows = chunks.search().where(f"doc_uid = '{uid}'").select(["chunk_id"]).limit(None) \
        .to_arrow().column("chunk_id").to_pylist()
    assert len(rows) > 2
    victims = rows[:1] if damage == "one chunk lost" else rows
    chunks.delete("chunk_id IN (" + ",".join(f"'{c}'" for c in victims) + ")")

    r = cli("check")
    assert r.code == 1
    assert ("different number of chunks" if damage == "one chunk lost"
            else "indexed documents have no chunks") in r.out
    # The file did not change, yet the next write repairs it: extracted and chunked again.
    rep = sync(cli)
    assert rep["modified"] == 1 and rep["added"] == 0
    assert cli("check").code == 0
    assert_consistent(home / "data" / "index")
    assert "long.md" in fts(cli, "lighthouse")


def test_check_repair_reindexes_and_cleanup_promise_is_kept(cli, home, three):
    chunks = chunks_table(home)
    uid = f"d:{three / 'long.md'}"
    first = chunks.search().where(f"doc_uid = '{uid}'").limit(1).to_arrow()
    chunks.delete(f"chunk_id = '{first.column('chunk_id')[0].as_py()}'")
    r = cli("check", "--repair")
    assert r.code == 0, r.out
    assert "indexed 1 documents again" in r.out and "consistent now" in r.out
    assert json.loads(cli.ok("check", "--json").out)["clean"] is True

    # `cleanup` says a damaged document "will be re-indexed on the next sync": it is.
    chunks.delete(f"doc_uid = '{uid}'")
    out = cli.ok("cleanup").out
    assert "1 documents will be re-indexed" in out
    assert sync(cli)["modified"] == 1
    assert cli("check").code == 0


# -- 3. a save between parsing and hashing ------------------------------------------------------

def test_save_during_parse_never_pairs_old_text_with_new_hash(cli, home, docs):
    cli.write_config('[extractors]\n".note" = "tests.helpers.mid_sync:saved_while_parsing"\n')
    note = docs / "draft.note"
    note.write_text("A draft that mentions OLDWORD and the harbour.\n")
    cli.ok("sources", "add", "local", str(docs), "--id", "d")
    rep = sync(cli)
    assert rep["added"] == 1 and rep["failed"] == 0
    row = assert_consistent(home / "data" / "index")[0]
    assert row["content_hash"] == blake3.blake3(note.read_bytes()).hexdigest()
    assert fts(cli, "NEWWORD") == ["draft.note"] and fts(cli, "OLDWORD") == []
    assert sync(cli)["modified"] == 0


# -- 4. transient failures keep the previous version and are retried, bounded -------------------

def test_timeout_on_a_new_version_keeps_the_old_one_and_retries(cli, home, docs, monkeypatch):
    cli.write_config('[extractors]\n".note" = "tests.helpers.mid_sync:hang_when_marked"\n')
    monkeypatch.setenv("LANCEDB_SYNC_PARSE_TIMEOUT", "3")
    monkeypatch.setenv("MAX_RETRIES", "1")
    note = docs / "log.note"
    note.write_text("The quokka census, first edition.\n" * 20)
    cli.ok("sources", "add", "local", str(docs), "--id", "d")
    assert sync(cli)["added"] == 1

    note.write_text("HANG-NOW The quokka census, second edition.\n" * 20)
    rep = sync(cli)
    assert (rep["failed"], rep["retrying"], rep["modified"]) == (1, 1, 0)
    assert fts(cli, "quokka") == ["log.note"]  # the previous version is still searchable
    failed = json.loads(cli.ok("failed", "--json").out)
    assert len(failed) == 1 and "previous version is still searchable" in failed[0]["reason"]
    status = json.loads(cli.ok("status", "--json").out)
    assert (status["documents"], status["failed"]) == (1, 1)
    assert cli("check").code == 0

    rep = sync(cli)  # the one retry MAX_RETRIES allows
    assert (rep["failed"], rep["retrying"]) == (1, 0)
    assert "Tried 2 times" in json.loads(cli.ok("failed", "--json").out)[0]["reason"]
    rep = sync(cli)  # then it waits for the file to change
    assert (rep["failed"], rep["modified"]) == (0, 0)
    assert fts(cli, "quokka") == ["log.note"]

    note.write_text("The quokka census, third edition with pelicans.\n" * 20)
    rep = sync(cli)
    assert (rep["modified"], rep["failed"]) == (1, 0)
    assert json.loads(cli.ok("failed", "--json").out) == []
    assert fts(cli, "pelicans") == ["log.note"]
    assert cli("check").code == 0


# -- 5. names that are not UTF-8, newlines, paths beyond PATH_MAX -------------------------------

def test_odd_file_names_are_indexed_or_recorded_never_a_crash(cli, home, docs):
    root = os.fsencode(docs)
    with open(os.path.join(root, b"caf\xe9.md"), "wb") as fh:
        fh.write(b"# Cafe\n\nEspresso tasting notes for the latin1 name.\n")
    os.mkdir(os.path.join(root, b"dir\xff"))
    with open(os.path.join(root, b"dir\xff", b"inner.md"), "wb") as fh:
        fh.write(b"# Inner\n\nA note about albatrosses in a badly named folder.\n")
    (docs / "new\nline.md").write_text("# Newline\n\nA note about cormorants.\n")
    (docs / "fine.md").write_text("# Fine\n\nA note about puffins.\n")
    # A folder chain whose full path is longer than PATH_MAX (4,096 bytes).
    deep = os.open(docs, os.O_RDONLY)
    try:
        for _ in range(22):
            os.mkdir("d" * 200, dir_fd=deep)
            nxt = os.open("d" * 200, os.O_RDONLY, dir_fd=deep)
            os.close(deep)
            deep = nxt
        fd = os.open("deep.md", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=deep)
        os.write(fd, b"# Deep\n\nA note too deep to open by its path.\n")
        os.close(fd)
    finally:
        os.close(deep)

    cli.ok("sources", "add", "local", str(docs), "--id", "d")
    r = cli("sync", "--json")
    assert r.code == 0, r.err
    rep = json.loads(r.out)[0]
    assert rep["added"] == 4
    # The folder beyond PATH_MAX cannot be opened by path: a problem named, not a crash.
    assert len(rep["problems"]) == 1 and "File name too long" in rep["problems"][0]
    for word, name in (("espresso", "caf\\xe9.md"), ("albatrosses", "dir\\xff/inner.md"),
                       ("cormorants", "new\nline.md"), ("puffins", "fine.md")):
        hits = json.loads(cli.ok("search", word, "--mode", "fts", "--json").out)
        assert hits and hits[0]["doc_uid"].endswith("/" + name), (word, hits)
    for cmd in (("status", "--json"), ("failed", "--json"), ("sources", "list", "--json")):
        json.loads(cli.ok(*cmd).out)
    cli.ok("status")
    assert cli("check").code == 0
    # The same names give the same ids next time: nothing is added again.
    rep = sync(cli)
    assert (rep["added"], rep["modified"], rep["deleted"]) == (0, 0, 0)
    os.remove(os.path.join(root, b"caf\xe9.md"))
    assert sync(cli)["deleted"] == 1
    assert cli("check").code == 0


# -- 6. what cannot be listed or looked at is a problem, never a deletion -----------------------

def _unprivileged(base):
    prefix: list[str] = []
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": base}

    def run(*args):
        return subprocess.run([*prefix, sys.executable, "-m", "app", "--home",
                               os.path.join(base, "home"), *args], capture_output=True,
                              text=True, env=env, cwd=base, timeout=600)
    return run


def test_unreadable_folders_are_problems_not_deletions():
    base = tempfile.mkdtemp(prefix="lds-noread-")
    os.chmod(base, 0o777)
    docs = os.path.join(base, "docs")
    for sub, animal in (("closed", "walrus"), ("noexec", "narwhal"), ("open", "beluga")):
        os.makedirs(os.path.join(docs, sub))
        for i in range(2):
            with open(os.path.join(docs, sub, f"{sub}{i}.md"), "w") as fh:
                fh.write(f"# {sub} {i}\n\nA note about the {animal}.\n")
    run = _unprivileged(base)
    try:
        assert run("sources", "add", "local", docs, "--id", "p").returncode == 0
        r = run("sync", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)[0]["added"] == 6
        os.chmod(os.path.join(docs, "closed"), 0)  # cannot be listed
        os.chmod(os.path.join(docs, "noexec"), 0o644)  # listed, but nothing in it can be stat'ed
        r = run("sync", "--json")
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)[0]
        assert rep["deleted"] == 0 and rep["unchanged"] == 2
        assert len(rep["problems"]) == 2
        assert all("Nothing under it was deleted" in p for p in rep["problems"])
        status = run("status")
        assert "WARNING" in status.stdout and "could not be read" in status.stdout
        assert "closed" in status.stdout and "noexec" in status.stdout
        health = json.loads(run("status", "--json").stdout)["service"]["health"]
        assert health["status"] == "warning"
        hits = json.loads(run("search", "walrus", "--mode", "fts", "--json").stdout)
        assert hits, "the unreadable folder's documents stay searchable"
    finally:
        os.chmod(os.path.join(docs, "closed"), 0o755)
        os.chmod(os.path.join(docs, "noexec"), 0o755)
    try:
        rep = json.loads(run("sync", "--json").stdout)[0]
        assert rep["problems"] == [] and rep["deleted"] == 0 and rep["unchanged"] == 6
        assert "could not be read" not in run("status").stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- 7. search shows only committed documents --------------------------------------------------

def test_search_never_returns_chunks_without_their_committed_row(cli, home, three, monkeypatch):
    (three / "fresh.md").write_text("# Fresh\n\nThe zanzibarquux appears only here.\n")
    (three / "short.md").write_text("# Short\n\nA pelican note, now with a flamingoquux.\n")
    faults._HITS.clear()
    monkeypatch.setenv("LANCEDB_SYNC_FAULT", "after-chunks:1:error")
    assert cli("sync").code == 1
    monkeypatch.delenv("LANCEDB_SYNC_FAULT")
    faults._HITS.clear()
    # Their chunks are in the table, but no committed row names them.
    words = " ".join(chunks_table(home).search().select(["text"]).limit(None).to_arrow()
                     .column("text").to_pylist())
    assert "zanzibarquux" in words and "flamingoquux" in words
    for mode in ("fts", "hybrid", "vector"):
        hits = json.loads(cli.ok("search", "zanzibarquux flamingoquux", "--mode", mode,
                                 "--json").out)
        assert not {os.path.basename(h["uri"]) for h in hits} & {"fresh.md"}, (mode, hits)
        assert all(h["uri"] for h in hits)  # never a hit without a document (empty path)
    assert fts(cli, "flamingoquux") == []
    sync(cli)
    assert fts(cli, "zanzibarquux") == ["fresh.md"] and fts(cli, "flamingoquux") == ["short.md"]


# -- 9. one writer per index, not per home -----------------------------------------------------

def test_second_home_on_the_same_index_is_refused_with_the_holder(tmp_path, docs):
    from app.config import load_settings
    from app.core.sync import Indexer

    (docs / "a.md").write_text("# A\n\nshared\n")
    index = tmp_path / "shared-index"
    env = {"LANCEDB_URI": str(index)}
    first = load_settings(home=tmp_path / "one", env=env)
    with Indexer(first):
        r = subprocess.run(
            [sys.executable, "-m", "app", "--home", str(tmp_path / "two"), "sources", "add",
             "local", str(docs)], capture_output=True, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=300)
        assert r.returncode == 0
        r = subprocess.run(
            [sys.executable, "-m", "app", "--home", str(tmp_path / "two"), "sync"],
            capture_output=True, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=300)
    assert r.returncode == 3, r.stderr
    assert f"pid {os.getpid()}" in r.stderr and str(index) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# -- 11. a nearly full disk ---------------------------------------------------------------------

def test_sync_refuses_to_start_on_a_nearly_full_disk(cli, home, docs, monkeypatch):
    (docs / "a.md").write_text("# A\n\ntext\n")
    cli.ok("sources", "add", "local", str(docs), "--id", "d")
    monkeypatch.setenv("LANCEDB_SYNC_MIN_FREE_DISK_MB", str(1 << 20))
    r = cli("sync")
    assert r.code == 1
    assert "MB free" in r.err and "free some space" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (home / "data" / "index").exists()


# -- 12. maintenance does not make the next start rebuild the mirror ---------------------------

def test_no_change_sync_after_maintenance_does_not_open_lancedb(cli, home, three):
    cli.ok("cleanup")  # compacts and prunes: new table versions without new rows
    probe = textwrap.dedent(f"""
        import sys
        from app.cli import main
        code = main(["--home", {str(home)!r}, "sync"])
        print("LANCEDB" if "lancedb" in sys.modules else "NO-LANCEDB", code)
    """)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert r.stdout.split()[-2:] == ["NO-LANCEDB", "0"], r.stdout + r.stderr


# -- 15. the run journal survives a power cut -----------------------------------------------------

def test_sync_state_commits_are_durable(cli, home, three):
    from app.core.state import SyncState

    state = SyncState.open(home / "data" / "state")
    try:
        assert state._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert state._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        state.close()


# -- 17. FIFOs and devices are never opened; a closed pipe ends quietly --------------------------

def test_fifo_is_skipped_with_a_reason_and_a_closed_pipe_is_quiet(cli, home, docs):
    (docs / "real.md").write_text("# Real\n\nA note about gannets.\n")
    os.mkfifo(docs / "pipe.md")  # opening it for reading would block forever
    for i in range(300):
        (docs / f"empty{i}.txt").write_text("")  # 300 skipped files: a long `failed` listing
    cli.ok("sources", "add", "local", str(docs), "--id", "d")
    r = subprocess.run([sys.executable, "-m", "app", "--home", str(home), "sync", "--json"],
                       capture_output=True, text=True, cwd=REPO, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)[0]
    # The pipe is something the app does not read (unsupported); the empty files are skipped.
    assert (rep["added"], rep["skipped"], rep["unsupported"]) == (1, 300, 1)
    failed = {os.path.basename(f["uri"]): f
              for f in json.loads(cli.ok("failed", "--all", "--json").out)}
    assert "named pipe" in failed["pipe.md"]["reason"]
    assert failed["pipe.md"]["status"] == "unsupported"
    again = sync(cli)
    assert again["skipped"] == again["unsupported"] == 0  # recorded once, not retried

    proc = subprocess.Popen([sys.executable, "-m", "app", "--home", str(home), "failed"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline()  # like `| head -1`: read a line, then go away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert proc.returncode in (0, -signal.SIGPIPE), err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_mirror_matches_after_every_kind_of_change(cli, home, three):
    (three / "short.md").write_text("# Short\n\nA pelican note, edited.\n")
    (three / "other.md").rename(three / "moved.md")
    (three / "new.md").write_text("# New\n\nA new note.\n")
    sync(cli)
    assert_mirror_matches(home)
    with sqlite3.connect(home / "data" / "state" / "sync-state.sqlite3") as db:
        assert db.execute("SELECT value FROM meta WHERE key='dirty'").fetchone()[0] == "0"


def test_run_plain_says_why_it_is_holding_on_a_nearly_full_disk(cli, home, docs):
    (docs / "a.md").write_text("# A\n\ntext\n")
    cli.ok("sources", "add", "local", str(docs), "--id", "d")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--home", str(home), "run", "--plain", "--no-watch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "LANCEDB_SYNC_MIN_FREE_DISK_MB": "1048576"})
    try:
        line = proc.stdout.readline()  # the first thing it says
        assert "MB free on the index's disk" in line and "held" in line, line
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err


# -- 16. very large files: refused with a reason, never read into memory whole -----------------

@pytest.mark.slow
def test_200mb_file_is_refused_by_the_size_limit_and_long_text_by_the_text_limit(
        cli, home, docs, monkeypatch):
    big = docs / "huge.txt"
    with big.open("wb") as fh:
        line = b"harbour lantern keeper ledger tide wind gull rope anchor chart compass\n"
        for _ in range(200_000_000 // len(line) + 1):
            fh.write(line)
    (docs / "long.txt").write_text("lantern keeper tide " * 60_000)  # 1.2 million characters
    (docs / "fine.md").write_text("# Fine\n\nA note about terns.\n")
    monkeypatch.setenv("LANCEDB_SYNC_MAX_TEXT_MB", "1")
    cli.ok("sources", "add", "local", str(docs), "--id", "d")
    rep = sync(cli)
    assert (rep["added"], rep["skipped"], rep["failed"]) == (1, 2, 0)
    failed = {os.path.basename(f["uri"]): f["reason"]
              for f in json.loads(cli.ok("failed", "--all", "--json").out)}
    assert "200.0 MB, more than the 100 MB size limit" in failed["huge.txt"]
    assert "LANCEDB_SYNC_MAX_FILE_MB" in failed["huge.txt"]
    assert "1.2 million characters" in failed["long.txt"]
    assert "LANCEDB_SYNC_MAX_TEXT_MB" in failed["long.txt"]
    assert sync(cli)["skipped"] == 0  # not read again while unchanged
    assert cli("check").code == 0
