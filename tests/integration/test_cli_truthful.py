"""What the command line says must be true (issue 16, items 4-8): overlapping sources refused
in one place, no hidden documents after removing a source, the embedding-model setting
checked at load, `status` about this index only, and the CLI's rough edges.

In-process CLI (tests/conftest.py `cli`) and the Service, on real LanceDB in temp homes.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from app.config import load_settings, save_sources
from app.models import SourceConfig, SourceType
from tests.integration.test_sync_cli import assert_consistent, make_docs, report

pytestmark = pytest.mark.slow


@pytest.fixture
def indexed(cli, docs):
    make_docs(docs)
    cli.ok("sources", "add", "local", str(docs), "--id", "docs")
    assert report(cli)["added"] == 3
    return docs


# -- 4. overlapping sources ----------------------------------------------------------------------

def test_overlapping_folders_are_refused_naming_the_other_source(cli, home, docs, tmp_path):
    (docs / "inner").mkdir()
    cli.ok("sources", "add", "local", str(docs), "--id", "docs")
    for folder in (docs, docs / "inner", tmp_path):
        r = cli("sources", "add", "local", str(folder), "--id", "other")
        assert r.code == 2, r
        assert "'docs'" in r.err and "indexed twice" in r.err and "Traceback" not in r.err
    r = cli("sources", "add", "local", str(docs / "inner"), str(docs), "--id", "both")
    assert r.code == 2 and "overlap" in r.err
    # A sibling folder is fine.
    sibling = tmp_path / "sibling"
    sibling.mkdir()
    cli.ok("sources", "add", "local", str(sibling), "--id", "sibling")
    assert [s.source_id for s in load_settings(home=home).sources] == ["docs", "sibling"]


def test_the_service_refuses_overlaps_for_every_face(home, docs):
    from app.service import Service
    from app.service.errors import USAGE
    from app.service.source_rules import SourceConfigError

    (docs / "inner").mkdir()
    service = Service(load_settings(home=home))
    asyncio.run(service.add_source(SourceConfig(SourceType.LOCAL_FILESYSTEM, "docs",
                                                {"watch_paths": [str(docs)]})))
    inner = SourceConfig(SourceType.LOCAL_FILESYSTEM, "inner",
                         {"watch_paths": [str(docs / "inner")]})
    with pytest.raises(SourceConfigError, match=r"inside .* the source 'docs'") as err:
        asyncio.run(service.add_source(inner))
    assert err.value.field == "watch_paths" and isinstance(err.value, USAGE)
    # Editing a source may keep its own folder; moving it onto another source's may not.
    asyncio.run(service.update_source(SourceConfig(
        SourceType.LOCAL_FILESYSTEM, "docs", {"watch_paths": [str(docs)],
                                              "exclude_patterns": ["*.tmp"]})))
    assert [s.source_id for s in service.settings.sources] == ["docs"]


# -- 5. removing a source ------------------------------------------------------------------------

def test_removing_a_source_deletes_its_documents(cli, home, indexed):
    r = cli.ok("sources", "remove", "docs")
    assert "3 documents deleted from the index" in r.out
    assert assert_consistent(home) == ([], [])
    assert cli.ok("search", "marsupial", "--mode", "fts").out == "No results.\n"
    assert cli("sources", "remove", "docs").code == 2  # gone, and nothing left of it


def test_documents_left_by_a_removed_source_are_listed_and_removable(cli, home, indexed):
    # An earlier version's "remove, keep documents": the source is gone, its rows stay.
    save_sources(load_settings(home=home), ())
    listed = cli.ok("sources", "list").out
    assert "docs" in listed and "left in the index by a removed source" in listed
    assert "lancedb-sync sources remove docs" in listed
    r = cli.ok("sources", "remove", "docs", "--purge")
    assert "3 documents deleted" in r.out
    assert assert_consistent(home) == ([], [])
    assert "No sources yet" in cli.ok("sources", "list").out


def test_cleanup_removes_documents_of_removed_sources(cli, home, indexed):
    save_sources(load_settings(home=home), ())
    out = cli.ok("cleanup").out
    assert "Deleted 3 documents left in the index by the removed source 'docs'" in out
    assert assert_consistent(home) == ([], [])


def test_the_service_will_not_keep_a_removed_sources_documents(home, indexed):
    from app.service import Service
    from app.service.source_rules import SourceConfigError

    service = Service(load_settings(home=home))
    with pytest.raises(SourceConfigError, match="disable the source"):
        asyncio.run(service.remove_source("docs", purge=False))
    assert service.settings.source("docs") is not None
    assert asyncio.run(service.remove_source("docs")) == 3
    assert service.counts() == {} and service.detached_sources() == {}


# -- 6. the embedding model ----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["foo", "wordllama:512", "ollama:", "openai"])
def test_an_unknown_embedder_is_a_configuration_error(cli, monkeypatch, value):
    monkeypatch.setenv("LANCEDB_SYNC_EMBEDDER", value)
    r = cli("status")
    assert r.code == 2
    for form in ("wordllama", "wordllama:DIM", "ollama:MODEL", "openai:MODEL"):
        assert form in r.err


def test_going_back_to_the_index_model_needs_no_reembed(home, indexed):
    from app.service import Service

    service = Service(load_settings(home=home))
    assert not service.reembed_needed("wordllama")
    assert service.reembed_needed("wordllama:64")


# -- 7. status about this index ------------------------------------------------------------------

def test_status_with_another_index_does_not_show_the_old_counts(cli, home, indexed, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv("LANCEDB_URI", str(tmp_path / "other-index"))
    info = json.loads(cli.ok("status", "--json").out)
    assert info["documents"] == 0 and info["embed_model"] is None
    text = cli.ok("status").out
    assert "describes the index at" in text and str(home) in text
    report(cli)  # a sync of the new index rebuilds the state from it
    assert json.loads(cli.ok("status", "--json").out)["documents"] == 3
    assert "describes" not in cli.ok("status").out


def test_an_unusable_index_path_is_named_not_blamed_on_the_disk(cli, home, docs, tmp_path,
                                                                monkeypatch):
    cli.ok("sources", "add", "local", str(docs), "--id", "docs")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    monkeypatch.setenv("LANCEDB_URI", str(a_file / "index"))
    text = cli.ok("status").out
    assert f"{a_file} is a file, not a folder" in text and "free" not in text.lower()
    r = cli("sync")
    assert r.code == 2 and "is a file, not a folder" in r.err


def test_no_permission_is_named(tmp_path, monkeypatch):
    import os

    from app.service import health

    folder = tmp_path / "locked"
    folder.mkdir()
    monkeypatch.setattr(health.os, "access", lambda p, mode: str(p) != str(folder))
    problem = health.index_location_problem(str(folder / "index"))
    assert problem and f"no permission to create folders in {folder}" in problem
    assert health.check_disk(str(folder / "index"), 100).ok
    assert health.index_location_problem(str(tmp_path / "fine" / "index")) is None
    assert os.path.isdir(folder)


# -- 8. CLI rough edges --------------------------------------------------------------------------

@pytest.mark.parametrize("command", [("sync",), ("retry",), ("retry", "--no-sync"),
                                     ("search", "anything")])
def test_an_unknown_source_exits_2_the_same_everywhere(cli, indexed, command):
    r = cli(*command, "--source", "nosuch")
    assert r.code == 2, r
    assert r.err.strip() == "lancedb-sync: No source named 'nosuch'."


def test_a_cli_sync_writes_the_log_file(cli, home, indexed):
    log = (home / "logs" / "lancedb-sync.log").read_text()
    assert "sync started (command line): docs" in log
    assert "sync of docs finished: added 3" in log
