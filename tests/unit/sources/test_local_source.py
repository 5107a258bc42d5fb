import os
from pathlib import Path

from app.models import SourceConfig, SourceType
from app.sources.local import LocalFolderSource

PATTERNS = ("*.txt", "*.md", "*.pdf")


def src(*roots, **config):
    cfg = {"watch_paths": [str(r) for r in roots], **config}
    return LocalFolderSource(SourceConfig(SourceType.LOCAL_FILESYSTEM, "s", cfg),
                             default_patterns=PATTERNS)


def rels(listing, root):
    return sorted(os.path.relpath(i.native_id, root) for i in listing.items)


def write(root, rel, text="x"):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_patterns_hidden_junk_and_excludes(tmp_path):
    for rel in ["a.txt", "b.md", "c.exe", ".hidden.txt", ".git/x.txt", "sub/d.txt",
                "~$lock.txt", ".~lock.e.txt#", "f.txt.swp", "build/out.txt", "notes.tmp"]:
        write(tmp_path, rel)
    listing = src(tmp_path, exclude_patterns=["build/"]).list()
    assert rels(listing, tmp_path) == ["a.txt", "b.md", "sub/d.txt"]
    assert listing.complete_roots == (str(tmp_path),)


def test_gitignore_and_own_ignore_file_nested(tmp_path):
    write(tmp_path, ".gitignore", "*.md\n")
    write(tmp_path, "sub/.lancedbsyncignore", "secret/\nkeep.txt\n")
    for rel in ["a.txt", "b.md", "sub/keep.txt", "sub/other.txt", "sub/secret/s.txt",
                "keep.txt"]:
        write(tmp_path, rel)
    assert rels(src(tmp_path).list(), tmp_path) == ["a.txt", "keep.txt", "sub/other.txt"]
    assert "b.md" in rels(src(tmp_path, respect_gitignore=False).list(), tmp_path)


def test_symlinks_skipped_by_default_and_loops_terminate(tmp_path):
    write(tmp_path, "real/a.txt")
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.symlink(tmp_path, tmp_path / "real" / "loop")
    assert rels(src(tmp_path).list(), tmp_path) == ["real/a.txt"]
    followed = rels(src(tmp_path, follow_symlinks=True).list(), tmp_path)
    # Each directory is entered once, by whichever path reaches it first: no loop, no duplicate.
    assert len(followed) == 1 and followed[0] in ("real/a.txt", "link/a.txt")


def test_missing_root_is_a_problem_not_a_crash(tmp_path):
    write(tmp_path, "a.txt")
    listing = src(tmp_path, tmp_path / "gone").list()
    assert listing.complete_roots == (str(tmp_path),)
    assert listing.problems[0][0] == str(tmp_path / "gone")
    assert "not found" in listing.problems[0][1]


def test_unreadable_subfolder_reported(tmp_path):
    import json
    import subprocess
    import sys

    write(tmp_path, "locked/a.txt")
    write(tmp_path, "open/b.txt")
    os.chmod(tmp_path / "locked", 0)
    # Root reads everything unless it drops the capability to override permissions.
    caps = "-dac_override,-dac_read_search"
    prefix = (["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--"]
              if os.geteuid() == 0 else [])
    script = (
        "import json, sys\n"
        "from app.models import SourceConfig, SourceType\n"
        "from app.sources.local import LocalFolderSource\n"
        "cfg = SourceConfig(SourceType.LOCAL_FILESYSTEM, 's', {'watch_paths': [sys.argv[1]]})\n"
        "l = LocalFolderSource(cfg, default_patterns=('*.txt',)).list()\n"
        "print(json.dumps({'items': [i.name for i in l.items], 'problems': l.problems}))\n")
    try:
        out = subprocess.run([*prefix, sys.executable, "-c", script, str(tmp_path)],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])})
    finally:
        os.chmod(tmp_path / "locked", 0o755)
    listing = json.loads(out.stdout)
    assert listing["items"] == ["b.txt"]
    assert listing["problems"][0][0].endswith("locked")
    assert "Nothing under it was deleted" in listing["problems"][0][1]


def test_token_moves_with_content_change(tmp_path):
    p = write(tmp_path, "a.txt", "one")
    t1 = src(tmp_path).list().items[0].version_token
    p.write_text("three")
    t2 = src(tmp_path).list().items[0].version_token
    assert t1 != t2


def test_list_paths_applies_the_same_rules_as_a_full_walk(tmp_path):
    write(tmp_path, ".gitignore", "*.md\n")
    write(tmp_path, "sub/.lancedbsyncignore", "drafts/\n")
    for rel in ["sub/a.txt", "sub/b.md", "sub/drafts/c.txt", "sub/deep/d.txt", "e.txt"]:
        write(tmp_path, rel)
    source = src(tmp_path, exclude_patterns=["e.txt"])
    full = {i.native_id for i in source.list().items}
    hinted = source.list_paths([str(tmp_path / r) for r in
                                ["sub/a.txt", "sub/b.md", "sub/drafts/c.txt", "sub/deep",
                                 "e.txt", "sub/gone.txt"]])
    assert {i.native_id for i in hinted.items} == full == {
        str(tmp_path / "sub/a.txt"), str(tmp_path / "sub/deep/d.txt")}
    # Every hinted path is complete: what the index holds there may be removed.
    assert str(tmp_path / "sub/gone.txt") in hinted.complete_roots
    assert hinted.problems == ()
    assert source.list_paths(["/elsewhere/x.txt"]).complete_roots == ()


def test_hints_for_a_folder_and_the_files_in_it_list_each_file_once(tmp_path):
    for rel in ["new/a.txt", "new/deep/b.txt", "new-other/c.txt"]:
        write(tmp_path, rel)
    source = src(tmp_path)
    hinted = source.list_paths([str(tmp_path / r) for r in
                                ["new/deep/b.txt", "new", "new/a.txt", "new/deep",
                                 "new-other/c.txt"]])
    ids = [i.native_id for i in hinted.items]
    assert sorted(ids) == sorted(str(tmp_path / r) for r in
                                 ["new/a.txt", "new/deep/b.txt", "new-other/c.txt"])
