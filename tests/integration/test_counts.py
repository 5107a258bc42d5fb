"""A folder of files that are not all documents: empty, no text, unsupported, compressed,
without an extension, generated. Through the CLI, the Service and the REST API on a real
LanceDB: nothing is "failed", every surface shows the same counts, and the tray stays idle."""

from __future__ import annotations

import dataclasses
import gzip
import json

from app.config import load_settings
from app.models import Counts
from app.service import Service
from app.ui import status as st
from tests.helpers.api import LiveApi, wait_until

PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89"


def make_mixed(root):
    (root / "notes.md").write_text("# Notes\n\nThe quokka lives on Rottnest Island.\n")
    (root / "empty.txt").write_text("")
    (root / "blank.md").write_text("   \n\n")
    (root / "photo.png").write_bytes(PNG)
    (root / "archive.tar.bz2").write_bytes(b"BZh91AY&SY" + bytes(range(200)))
    (root / "README").write_text("Kettle descaling: use citric acid and rinse twice.\n")
    (root / "copyright").write_text("Copyright 2024 The Basalt Columns Society.\n")
    (root / "blob").write_bytes(b"\0\x01\x02" * 100)
    (root / "changelog.txt.gz").write_bytes(gzip.compress(b"Volcanic basalt columns cool.\n"))
    (root / "searchindex.js").write_text("Search.setIndex({docnames:['a','b']})\n")
    (root / "jquery.min.js").write_text("!function(e){" + "var a=1;" * 300 + "}(window);\n")
    lib = root / "_static"
    lib.mkdir()
    (lib / "underscore.js").write_text("// underscore\nvar _ = {};\n")
    (root / "node_modules" / "left-pad").mkdir(parents=True)
    (root / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1;\n")


INDEXED = {"notes.md", "README", "copyright", "changelog.txt.gz"}
SKIPPED = {"empty.txt", "blank.md", "searchindex.js", "jquery.min.js", "underscore.js"}
UNSUPPORTED = {"photo.png", "archive.tar.bz2", "blob"}


def test_mixed_folder_counts_agree_everywhere_and_nothing_failed(cli, home, docs):
    make_mixed(docs)
    cli.ok("sources", "add", "local", str(docs), "--id", "docs")
    rep = json.loads(cli.ok("sync", "--json").out)[0]
    assert (rep["added"], rep["failed"], rep["skipped"], rep["unsupported"]) == (
        len(INDEXED), 0, len(SKIPPED), len(UNSUPPORTED)), rep
    want = Counts(indexed=len(INDEXED), skipped=len(SKIPPED), unsupported=len(UNSUPPORTED))

    # `status --json`: per source and in total.
    info = json.loads(cli.ok("status", "--json").out)
    src = info["sources"][0]
    got = (src["documents"], src["in_progress"], src["failed"], src["skipped"],
           src["unsupported"], src["ignored"])
    assert got == (want.indexed, 0, 0, want.skipped, want.unsupported, 0)
    assert info["counts"]["documents"] == want.indexed and info["failed"] == 0
    text = cli.ok("status").out
    assert f"{want.indexed} indexed, 0 in progress, 0 failed, {want.skipped} skipped by " \
           f"design, {want.unsupported} unsupported" in text

    # `failed`: nothing failed; `failed --all` lists the others, each with a short reason.
    out = cli.ok("failed").out
    assert out.startswith("No failed files.") and "failed --all" in out
    rows = json.loads(cli.ok("failed", "--all", "--json").out)
    by_name = {r["uri"].rsplit("/", 1)[-1]: r for r in rows}
    assert {n for n, r in by_name.items() if r["status"] == "skipped"} == SKIPPED
    assert {n for n, r in by_name.items() if r["status"] == "unsupported"} == UNSUPPORTED
    assert "search index" in by_name["searchindex.js"]["reason"]
    assert "minified" in by_name["jquery.min.js"]["reason"]
    assert by_name["photo.png"]["reason"] == "Unsupported file type (.png)."
    assert not any("node_modules" in r["uri"] for r in rows)  # never walked
    assert json.loads(cli.ok("failed", "--json").out) == []

    # Compressed and extension-less text is searchable.
    hits = [h["uri"] for h in json.loads(cli.ok("search", "basalt columns", "--json").out)]
    assert any(u.endswith("changelog.txt.gz") for u in hits)
    assert any(u.endswith("copyright") for u in hits)

    # The Service (what the tray reads) and the REST API say the same.
    settings = load_settings(home=home)
    status = Service(settings).read_status()
    want = dataclasses.replace(want, chunks=status.source("docs").chunks)
    assert want.chunks == info["chunks"] > 0
    assert status.source("docs").counts == want
    assert status.counts == want
    api = LiveApi(settings, watch=False).start()
    try:
        client = api.client()

        def settled():
            body = client.get("/api/v1/status").json()
            s = body["sources"][0]
            return body if s["state"] == "idle" and not s["progress"] else None

        body = wait_until(settled, timeout=300, what="the service to settle")
        s = body["sources"][0]
        assert (s["documents"], s["in_progress"], s["failed"], s["skipped"], s["unsupported"],
                s["ignored"]) == (want.indexed, 0, 0, want.skipped, want.unsupported, 0)
        assert body["counts"] == want.as_dict()
        failed = client.get("/api/v1/failed", params={"status": "failed"}).json()
        assert failed == []
        every = client.get("/api/v1/failed").json()
        assert len(every) == len(SKIPPED) + len(UNSUPPORTED)
        # The tray's snapshot of this service: idle, not "needs attention".
        snap = st.fetch_snapshot(api.service)
        assert snap.counts.failed == 0 and snap.counts.skipped == want.skipped
        assert st.tray_state(snap) == st.IDLE
    finally:
        api.stop()
