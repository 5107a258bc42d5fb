"""The life of a local folder through the public CLI, on a real LanceDB and the real model."""

from __future__ import annotations

import json
import os
import shutil
import time

import lancedb
import pytest

WORDS = {
    "alpha.md": "# Alpha\n\nThe quokka is a small marsupial that lives on Rottnest Island.\n",
    "beta.txt": "Kettle descaling: use citric acid and rinse the kettle twice afterwards.\n",
    "nested/gamma.md": "# Gamma\n\nVolcanic basalt columns form when thick lava cools slowly.\n",
}


def make_docs(root):
    for rel, text in WORDS.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def report(cli, *extra):
    r = cli.ok("sync", "--json", *extra)
    return json.loads(r.out)[0]


def tables(home):
    db = lancedb.connect(str(home / "data" / "index"))
    return db.open_table("processed_documents"), db.open_table("document_chunks")


def assert_consistent(home):
    """Every indexed document's chunks exist once; no chunk without its document."""
    docs, chunks = tables(home)
    d = docs.to_arrow().to_pylist()
    c = chunks.search().select(["chunk_id", "doc_uid", "content_hash"]).limit(None) \
        .to_arrow().to_pylist()
    uids = [r["doc_uid"] for r in d]
    assert len(uids) == len(set(uids)), "duplicate document rows"
    ids = [r["chunk_id"] for r in c]
    assert len(ids) == len(set(ids)), "duplicate chunk rows"
    by_doc = {}
    for r in c:
        by_doc.setdefault(r["doc_uid"], []).append(r)
    assert set(by_doc) <= set(uids), "orphan chunks"
    for row in d:
        got = by_doc.get(row["doc_uid"], [])
        if row["status"] == "indexed":
            assert len(got) == row["chunk_count"]
            assert {r["content_hash"] for r in got} == {row["content_hash"]}
    return d, c


def search_uris(cli, query, *extra):
    r = cli.ok("search", query, "--json", *extra)
    return [h["uri"] for h in json.loads(r.out)]


@pytest.fixture
def indexed(cli, docs):
    make_docs(docs)
    cli.ok("sources", "add", "local", str(docs), "--id", "docs")
    rep = report(cli)
    assert rep["added"] == 3 and rep["failed"] == 0
    return docs


def test_add_sync_search_and_schema(cli, home, indexed):
    docs_rows, _chunk_rows = assert_consistent(home)
    assert len(docs_rows) == 3
    uris = search_uris(cli, "marsupial on an island")
    assert uris[0].endswith("alpha.md")
    assert search_uris(cli, "citric acid", "--mode", "fts")[0].endswith("beta.txt")
    assert search_uris(cli, "cooling lava", "--mode", "vector")[0].endswith("gamma.md")
    docs_t, chunks_t = tables(home)
    assert docs_t.schema.metadata[b"lancedb_sync.schema_version"] == b"1"
    assert chunks_t.schema.field("vector").type.list_size == 256
    assert chunks_t.schema.metadata[b"lancedb_sync.embed_model"] == b"wordllama/l2_supercat-256"
    idx = {tuple(i.columns): i.index_type for i in chunks_t.list_indices()}
    assert idx[("text",)] == "FTS" and idx[("doc_uid",)] == "BTree"
    row = next(r for r in docs_rows if r["uri"].endswith("alpha.md"))
    assert row["doc_uid"] == f"docs:{indexed / 'alpha.md'}"
    assert row["status"] == "indexed" and row["title"] == "Alpha"
    assert len(row["content_hash"]) == 64


def test_nothing_changed_resync_touches_nothing(cli, home, indexed):
    docs_t, chunks_t = tables(home)
    versions = (docs_t.version, chunks_t.version)
    time.sleep(2.1)  # leave the racy window so the re-sync is the plain token path
    rep = report(cli)
    assert (rep["added"], rep["modified"], rep["deleted"], rep["unchanged"]) == (0, 0, 0, 3)
    docs_t, chunks_t = tables(home)
    assert (docs_t.version, chunks_t.version) == versions


def test_modify_touch_rename_move_delete(cli, home, indexed):
    docs = indexed
    (docs / "beta.txt").write_text("Kettle descaling: vinegar works too, then boil fresh water.\n")
    rep = report(cli)
    assert rep["modified"] == 1 and rep["chunks_embedded"] == 1
    assert search_uris(cli, "vinegar", "--mode", "fts")[0].endswith("beta.txt")
    assert search_uris(cli, "citric", "--mode", "fts") == []

    # Touch without change: the token moves, the content hash does not.
    st = (docs / "alpha.md").stat()
    os.utime(docs / "alpha.md", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    rep = report(cli)
    assert (rep["modified"], rep["touched"], rep["unchanged"], rep["chunks_embedded"]) == \
        (0, 1, 2, 0)

    # Rename and move across folders: no extraction, no embedding, chunks carried over.
    (docs / "alpha.md").rename(docs / "alpha-renamed.md")
    (docs / "other").mkdir()
    shutil.move(docs / "nested" / "gamma.md", docs / "other" / "gamma.md")
    rep = report(cli)
    assert rep["moved"] == 2 and rep["added"] == 0 and rep["deleted"] == 0
    assert rep["chunks_embedded"] == 0
    assert search_uris(cli, "quokka", "--mode", "fts")[0].endswith("alpha-renamed.md")
    assert search_uris(cli, "basalt", "--mode", "fts")[0].endswith("other/gamma.md")

    (docs / "beta.txt").unlink()
    rep = report(cli)
    assert rep["deleted"] == 1
    assert search_uris(cli, "vinegar", "--mode", "fts") == []
    docs_rows, _ = assert_consistent(home)
    assert sorted(os.path.basename(r["native_id"]) for r in docs_rows) == [
        "alpha-renamed.md", "gamma.md"]


def test_folder_removed_deletes_nothing_and_says_so(cli, home, indexed, tmp_path):
    moved_away = tmp_path / "unmounted"
    indexed.rename(moved_away)
    r = cli.ok("sync")
    assert "Folder not found" in r.out and "Nothing under it was deleted" in r.out
    status = json.loads(cli.ok("status", "--json").out)
    assert "Folder not found" in status["sources"][0]["problems"][0]
    assert "Folder not found" in cli.ok("status").out
    docs_rows, _ = assert_consistent(home)
    assert len(docs_rows) == 3
    moved_away.rename(indexed)
    rep = report(cli)
    assert rep["unchanged"] == 3 and rep["added"] == 0


def test_pattern_and_exclude_changes(cli, home, docs):
    make_docs(docs)
    cli.ok("sources", "add", "local", str(docs), "--id", "md", "--pattern", "*.md",
           "--exclude", "nested/")
    rep = report(cli)
    assert rep["added"] == 1  # alpha.md only
    cfg = home / "config" / "config.toml"
    cfg.write_text(cfg.read_text().replace('exclude_patterns = [\n    "nested/",\n]', "")
                   .replace('exclude_patterns = ["nested/"]', ""))
    rep = report(cli)
    assert rep["added"] == 1  # gamma.md now included
    cfg.write_text(cfg.read_text().replace('"*.md"', '"*.txt"'))
    rep = report(cli)
    assert rep["added"] == 1 and rep["deleted"] == 2
    d, _ = assert_consistent(home)
    assert [os.path.basename(r["native_id"]) for r in d] == ["beta.txt"]


def test_model_change_refused_until_reembed(cli, home, indexed, monkeypatch):
    monkeypatch.setenv("LANCEDB_SYNC_EMBEDDER", "wordllama:128")
    r = cli("sync")
    assert r.code == 1
    assert "re-embedding" in r.err and "lancedb-sync reembed" in r.err
    _, chunks_t = tables(home)
    assert chunks_t.schema.field("vector").type.list_size == 256  # untouched
    r = cli("reembed")  # stdin is not a terminal: it must ask for --yes, not guess
    assert r.code == 2 and "--yes" in r.err
    cli.ok("reembed", "--yes")
    _, chunks_t = tables(home)
    assert chunks_t.schema.field("vector").type.list_size == 128
    assert search_uris(cli, "marsupial island")[0].endswith("alpha.md")
    rep = report(cli)
    assert rep["unchanged"] == 3
    assert_consistent(home)


def test_sources_list_remove_purge_status(cli, home, indexed):
    listed = json.loads(cli.ok("sources", "list", "--json").out)
    assert listed[0]["source_id"] == "docs" and listed[0]["documents"] == 3
    status = json.loads(cli.ok("status", "--json").out)
    assert status["documents"] == 3 and status["sources"][0]["last_outcome"] == "ok"
    assert cli("sources", "remove", "nope").code == 2
    cli.ok("sources", "remove", "docs", "--purge")
    d, c = assert_consistent(home)
    assert d == [] and c == []
    assert "No sources yet" in cli.ok("sources", "list").out


def test_user_errors_exit_nonzero_without_traceback(cli, home, docs, monkeypatch):
    r = cli("sync")
    assert r.code == 2 and "No sources configured" in r.err
    r = cli("sources", "add", "local", str(docs / "missing"))
    assert r.code == 2 and "is not a folder" in r.err
    monkeypatch.setenv("MAX_RETRIES", "lots")
    r = cli("status")
    assert r.code == 2 and "MAX_RETRIES" in r.err and "whole number" in r.err
    assert "Traceback" not in r.err


def test_cleanup_keeps_index_searchable(cli, home, indexed):
    r = cli.ok("cleanup")
    assert "orphan chunks" in r.out
    assert search_uris(cli, "quokka", "--mode", "fts")[0].endswith("alpha.md")
    assert_consistent(home)


def test_search_filters(cli, home, indexed, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "marsupials.txt").write_text("Wombats are marsupials that dig burrows.\n")
    cli.ok("sources", "add", "local", str(other), "--id", "other")
    cli.ok("sync")
    assert {os.path.basename(u) for u in search_uris(cli, "marsupial")} >= {
        "alpha.md", "marsupials.txt"}
    only_other = search_uris(cli, "marsupial", "--source", "other")
    assert [os.path.basename(u) for u in only_other] == ["marsupials.txt"]
    only_md = search_uris(cli, "marsupial", "--type", "md")
    assert only_md and all(u.endswith(".md") for u in only_md)
    nested = search_uris(cli, "lava", "--path", str(indexed / "nested"))
    assert [os.path.basename(u) for u in nested] == ["gamma.md"]
    assert search_uris(cli, "marsupial", "--after", "2999-01-01") == []
    r = cli("search", "x", "--after", "yesterday")
    assert r.code == 2 and "--after expects a date" in r.err
    hit = json.loads(cli.ok("search", "quokka", "--json").out)[0]
    assert "«quokka»" in hit["snippet"] and hit["title"] == "Alpha"


def test_python_api_runs_one_pass(tmp_path, docs):
    """The seed's Python API: a SourceConfig, and the Service every face uses."""
    import asyncio

    from app.config import load_settings, save_sources
    from app.models import SourceConfig, SourceType
    from app.service import Service

    make_docs(docs)
    settings = load_settings(home=tmp_path / "api-home", env={})
    source = SourceConfig(source_type=SourceType.LOCAL_FILESYSTEM, source_id="notes",
                          config={"watch_paths": [str(docs)], "file_patterns": ["*.md"]},
                          poll_interval=60, enabled=True)
    service = Service(save_sources(settings, (source,)))
    seen = []
    [report] = asyncio.run(service.sync_once(on_progress=seen.append))
    assert (report.added, report.failed) == (2, 0)
    phases = [p.phase for p in seen]
    assert phases[0] == "scanning" and "indexing" in phases and phases[-1] == "done"
    indexing = [p for p in seen if p.phase == "indexing"]
    assert indexing[-1].done == indexing[-1].total == 2
    # The writer lock was released: another run can write.
    assert asyncio.run(service.sync_once())[0].unchanged == 2
    assert service.search("marsupial", k=1)[0].uri.endswith("alpha.md")


def test_second_writer_is_refused(tmp_path, docs):
    from app.config import load_settings
    from app.core.lock import IndexLockedError
    from app.core.sync import Indexer

    settings = load_settings(home=tmp_path / "h", env={})
    with Indexer(settings), pytest.raises(IndexLockedError, match="Another LanceDB Sync"):
        Indexer(settings)


def test_targeted_recheck_of_hinted_paths(home, indexed, tmp_path):
    """What the watcher will drive: only the hinted paths are looked at."""
    from app.config import load_settings
    from app.core.sync import Indexer

    docs = indexed
    settings = load_settings(home=home, env={})
    source = settings.source("docs")
    (docs / "beta.txt").write_text("Kettle descaling: lemon juice, then rinse.\n")
    (docs / "nested" / "new.md").write_text("# New\n\nAxolotls regrow their limbs.\n")
    (docs / "alpha.md").unlink()
    (docs / "not-hinted.md").write_text("# Quiet\n\nNobody told the watcher about pangolins.\n")
    (docs / ".hidden.md").write_text("secret")
    from app.sources.registry import make_source

    with Indexer(settings, sources=make_source) as ix:
        rep = ix.sync_source(source, [str(docs / "beta.txt"), str(docs / "nested"),
                                      str(docs / "alpha.md"), str(docs / ".hidden.md"),
                                      "/somewhere/else.md"])
        assert (rep.modified, rep.added, rep.deleted) == (1, 1, 1)
        from app.core.search import Searcher
        from app.core.store import Store

        store = Store(settings.index_uri, settings.documents_table, settings.chunks_table,
                      model_id="", dim=256, read_only=True)
        fts = Searcher(store, None)
        assert fts.search("axolotls", mode="fts")[0].uri.endswith("new.md")
        assert fts.search("pangolins", mode="fts") == []  # not hinted, not looked at
        assert fts.search("quokka", mode="fts") == []
        # A hint under a watched folder that is gone (unmounted) deletes nothing.
        (docs / "nested").rename(tmp_path / "away")
        docs.rename(tmp_path / "unmounted")
        rep = ix.sync_source(source, [str(docs / "nested" / "gamma.md")])
        assert rep.deleted == 0 and rep.problems
        (tmp_path / "unmounted").rename(docs)
        # The full pass still catches what no hint mentioned.
        rep = ix.sync_source(source)
        assert rep.added == 1 and rep.deleted == 2  # pangolins; the moved-away folder's files
    assert_consistent(home)
