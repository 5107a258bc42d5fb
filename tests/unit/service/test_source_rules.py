"""The one check of a source's settings every face uses (app/service/source_rules.py)."""

from __future__ import annotations

import pytest

from app.models import SourceConfig, SourceType
from app.service.source_rules import SourceConfigError, check_source


def local(sid, *paths):
    return SourceConfig(SourceType.LOCAL_FILESYSTEM, sid, {"watch_paths": [str(p) for p in paths]})


@pytest.fixture
def tree(tmp_path):
    for d in ("docs/inner", "notes", "docs-old"):
        (tmp_path / d).mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize(("folder", "how"), [
    ("docs", "is already indexed by"), ("docs/inner", "is inside"), (".", "contains")])
def test_a_folder_overlapping_another_sources_is_refused(tree, folder, how):
    with pytest.raises(SourceConfigError) as err:
        check_source(local("new", tree / folder), [local("docs", tree / "docs")])
    assert how in str(err.value) and "the source 'docs'" in str(err.value)
    assert "twice" in str(err.value) and err.value.field == "watch_paths"


def test_neighbours_and_similar_names_are_fine(tree):
    others = [local("docs", tree / "docs")]
    check_source(local("notes", tree / "notes"), others)
    check_source(local("old", tree / "docs-old"), others)  # a prefix of the name, not a parent


def test_a_symlink_into_another_source_is_an_overlap(tree):
    (tree / "link").symlink_to(tree / "docs" / "inner")
    with pytest.raises(SourceConfigError, match="'docs'"):
        check_source(local("new", tree / "link"), [local("docs", tree / "docs")])


def test_one_sources_own_folders_must_not_overlap(tree):
    with pytest.raises(SourceConfigError, match="overlap"):
        check_source(local("new", tree / "docs", tree / "docs" / "inner"), [])


def test_names_and_folders(tree):
    others = [local("docs", tree / "docs")]
    with pytest.raises(SourceConfigError, match="exists already") as err:
        check_source(local("docs", tree / "notes"), others)
    assert err.value.field == "source_id"
    for sid in ("", "a:b"):
        with pytest.raises(SourceConfigError, match="':'"):
            check_source(local(sid, tree / "notes"), others)
    with pytest.raises(SourceConfigError, match="is not a folder"):
        check_source(local("x", tree / "missing"), others)
    with pytest.raises(SourceConfigError, match="at least one folder"):
        check_source(local("x"), others)
    with pytest.raises(SourceConfigError, match="not an absolute path"):
        check_source(local("x", "relative/dir"), others)


def test_editing_a_source_is_checked_against_the_others_only(tree):
    others = [local("docs", tree / "docs"), local("notes", tree / "notes")]
    check_source(local("docs", tree / "docs"), others, editing=True)
    with pytest.raises(SourceConfigError, match="'notes'"):
        check_source(local("docs", tree / "docs", tree / "notes"), others, editing=True)
