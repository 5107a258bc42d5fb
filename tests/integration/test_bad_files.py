"""Every format indexes; every kind of bad file ends as a recorded failure and the sync finishes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tests.conftest import FIXTURES, REPO

FORMATS = sorted(p.name for p in (FIXTURES / "formats").iterdir())

EXPECTED = {  # file → (status, error kind, words the reason must contain)
    "truncated.pdf": ("failed", "corrupt", "damaged"),
    "encrypted.pdf": ("failed", "encrypted", "password"),
    "binary.txt": ("failed", "binary", "binary"),
    "empty.txt": ("skipped", "empty", "empty"),
    "scanned.pdf": ("skipped", "no_text", "scanned"),
    "encrypted.docx": ("failed", "encrypted", "password"),
    "corrupt.docx": ("failed", "corrupt", "damaged"),
    "stuck.hang": ("failed", "timeout", "longer than 2 s"),
    "boom.crash": ("failed", "crashed", "crashed"),
    "gone.vanish": ("skipped", "vanished", "deleted"),
    "huge.txt": ("skipped", "too_large", "size limit"),
}


def test_formats_and_bad_files(cli, home, docs, monkeypatch):
    for name in FORMATS:
        shutil.copy(FIXTURES / "formats" / name, docs / name)
    bad = docs / "bad"
    bad.mkdir()
    for name in os.listdir(FIXTURES / "bad"):
        shutil.copy(FIXTURES / "bad" / name, bad / name)
    (bad / "stuck.hang").write_text("never parsed")
    (bad / "boom.crash").write_text("never parsed")
    (bad / "gone.vanish").write_text("deleted mid-sync")
    (bad / "huge.txt").write_text("big " * 40_000)
    cli.write_config('[extractors]\n".hang" = "tests.helpers.parsers:hang"\n'
                     '".crash" = "tests.helpers.parsers:crash"\n'
                     '".vanish" = "tests.helpers.mid_sync:vanish"\n')
    monkeypatch.setenv("LANCEDB_SYNC_PARSE_TIMEOUT", "2")
    monkeypatch.setenv("LANCEDB_SYNC_MAX_FILE_MB", "0.1")
    monkeypatch.setenv("MAX_RETRIES", "1")
    cli.ok("sources", "add", "local", str(docs), "--id", "mixed")

    rep = json.loads(cli.ok("sync", "--json").out)[0]
    assert rep["added"] == len(FORMATS)
    assert rep["failed"] + rep["skipped"] == len(EXPECTED)
    # A timeout, a crashed parser and a file that vanished mid-read may pass: tried again.
    assert rep["retrying"] == 3

    rows = json.loads(cli.ok("failed", "--all", "--json").out)  # skipped ones too
    failed = {os.path.basename(f["uri"]): f for f in rows}
    assert set(failed) == set(EXPECTED)
    for name, (status, _kind, words) in EXPECTED.items():
        assert failed[name]["status"] == status, name
        assert words in failed[name]["reason"], (name, failed[name]["reason"])
        assert "Traceback" not in failed[name]["reason"]

    for name in FORMATS:
        word = "zebrafish" + name.rsplit(".", 1)[1]
        hits = json.loads(cli.ok("search", word, "--mode", "fts", "--json").out)
        assert hits and hits[0]["uri"].endswith(name), (word, hits)

    pdf = json.loads(cli.ok("search", "zebrafishpdf", "--mode", "fts", "--json").out)[0]
    assert pdf["page"] is not None

    # The timeout and the crash are tried once more (MAX_RETRIES=1), then left alone; the
    # vanished file is gone from the listing, so it leaves the index.
    rep = json.loads(cli.ok("sync", "--json").out)[0]
    assert (rep["failed"], rep["retrying"], rep["modified"], rep["deleted"]) == (2, 0, 0, 1)
    failed = {os.path.basename(f["uri"]): f for f in json.loads(cli.ok("failed", "--json").out)}
    assert "Tried 2 times" in failed["stuck.hang"]["reason"]
    # Permanent failures are not retried while the files are unchanged; `retry` tries them.
    rep = json.loads(cli.ok("sync", "--json").out)[0]
    assert rep["failed"] == 0 and rep["modified"] == 0
    shutil.copy(FIXTURES / "formats" / "sample.txt", bad / "binary.txt")  # the user fixes it
    rep = json.loads(cli.ok("sync", "--json").out)[0]
    assert rep["modified"] == 1
    assert "binary.txt" not in {os.path.basename(f["uri"]) for f in
                                json.loads(cli.ok("failed", "--json").out)}
    r = cli.ok("retry", "--no-sync")
    assert "will be tried again" in r.out
    rep = json.loads(cli.ok("sync", "--json").out)[0]
    # Every remaining failure was attempted again (the vanished file is gone for good).
    assert rep["failed"] + rep["skipped"] == len(EXPECTED) - 2


def test_unreadable_file_is_recorded_and_the_rest_indexed(tmp_path):
    """As root, drop the capabilities that let root read a mode-000 file (DAC override)."""
    import tempfile

    base = tempfile.mkdtemp(prefix="lds-perm-")
    os.chmod(base, 0o777)
    docs = os.path.join(base, "docs")
    os.mkdir(docs)
    with open(os.path.join(docs, "fine.md"), "w") as fh:
        fh.write("# Fine\n\nA readable note about pelicans.\n")
    secret = os.path.join(docs, "secret.md")
    with open(secret, "w") as fh:
        fh.write("# Secret\n\nNobody may read this.\n")
    os.chmod(secret, 0)
    os.chmod(docs, 0o777)
    home = os.path.join(base, "home")
    prefix: list[str] = []
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": base}

    def run(*args):
        return subprocess.run([*prefix, sys.executable, "-m", "app", "--home", home, *args],
                              capture_output=True, text=True, env=env, cwd=base, timeout=300)

    try:
        assert run("sources", "add", "local", docs, "--id", "p").returncode == 0
        r = run("sync", "--json")
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)[0]
        assert rep["added"] == 1 and rep["failed"] == 1
        failed = json.loads(run("failed", "--json").stdout)
        assert [os.path.basename(f["uri"]) for f in failed] == ["secret.md"]
        assert "permissions" in failed[0]["reason"]
    finally:
        os.chmod(secret, 0o644)
        shutil.rmtree(base, ignore_errors=True)
