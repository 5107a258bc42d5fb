"""The paths that must feel instant import none of the heavy libraries: `--help`, `status`,
`failed`, `sources list` and a sync that finds nothing changed (each in a fresh process, through
the real command line). LanceDB costs ~2 s to import here, pyarrow 0.4 s, numpy 0.2 s, Qt 0.4 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

HEAVY = ("lancedb", "pyarrow", "numpy", "PySide6", "wordllama", "boto3")


def imported_by(home, *args: str) -> tuple[int, list[str]]:
    probe = textwrap.dedent(f"""
        import json, sys
        from app.cli import main
        try:
            code = main({["--home", str(home), *args]!r})
        except SystemExit as exc:
            code = exc.code
        print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))
    """)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert r.returncode == 0, r.stderr
    code, heavy = json.loads(r.stdout.strip().splitlines()[-1])
    return code, heavy


@pytest.fixture(scope="module")
def synced_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("audit") / "home"
    docs = home.parent / "docs"
    docs.mkdir()
    for i in range(5):
        (docs / f"n{i}.md").write_text(f"# Note {i}\n\nA short note about gannets {i}.\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = [sys.executable, "-m", "app", "--home", str(home)]
    assert subprocess.run([*run, "sources", "add", "local", str(docs), "--id", "d"],
                          env=env, cwd=REPO, capture_output=True).returncode == 0
    r = subprocess.run([*run, "sync"], env=env, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return home


@pytest.mark.parametrize("args", [("--help",), ("status",), ("status", "--json"), ("failed",),
                                  ("sources", "list"), ("sync",)])
def test_instant_paths_import_nothing_heavy(synced_home, args):
    code, heavy = imported_by(synced_home, *args)
    assert code == 0
    assert heavy == [], f"{' '.join(args)} imported {heavy}"


def test_the_audit_can_fail(synced_home):
    # A search must load the model and LanceDB: the probe does see heavy imports.
    code, heavy = imported_by(synced_home, "search", "gannets", "--mode", "fts")
    assert code == 0 and "lancedb" in heavy
