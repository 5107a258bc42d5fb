"""Corpus helpers for the benchmark: the real Python docs, edits to them, and a synthetic tree.

* ``python_docs_dir`` finds the Debian ``python3.11-doc`` HTML tree (~1,030 .html/.txt files);
* ``copy_tree`` + ``edit_fraction`` give a private copy whose files can be changed;
* ``make_tree`` generates a big tree of small text/markdown files for no-change rescans;
* ``git_status_seconds`` times ``git status`` on the same tree, as the yardstick for what a
  no-change rescan can cost;
* ``peak_rss_mb`` reports peak memory of this process and of its finished children.

Everything is deterministic for a given seed so that two runs measure the same work.

A small CLI helps try the pieces by hand::

    python bench/corpus.py docs-dir
    python bench/corpus.py make-tree DIR [--n-files N] [--seed S]
    python bench/corpus.py git-status DIR [--repeats R]
    python bench/corpus.py edit DIR [--fraction F] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

DOCS_PACKAGE = "python3.11-doc"
DOCS_FALLBACK = Path("/usr/share/doc/python3.11/html")
EDIT_SUFFIXES = (".html", ".txt")
FILES_PER_FOLDER = 50
# A fixed identity so commits work on machines without git config, and are reproducible.
GIT_IDENTITY = ("-c", "user.name=LanceDB Sync bench", "-c", "user.email=bench@example.invalid")

# Words for generated content and folder names. A plain list keeps generation fast and the
# text realistic enough (varied words, sentences) for chunkers and hashers to do real work.
_WORD_TEXT = (
    "archive backlog budget calendar client contract design draft estimate feedback forecast "
    "invoice journal kickoff ledger meeting memo milestone minutes notes onboarding outline "
    "planning policy proposal quarterly receipt recipe research review roadmap schedule "
    "sprint summary survey syllabus timeline travel update vendor weekly workshop lance "
    "vector index table column schema query search embedding document folder sync change "
    "delete rename garden kitchen project family health finance school reading music photo"
)
_WORDS = tuple(_WORD_TEXT.split())
_TOP_FOLDERS = ("work", "personal", "projects", "archive", "shared", "school", "notes", "misc")


class PeakRss(NamedTuple):
    """Peak resident set sizes in MiB, as the kernel reports them via getrusage."""

    self_mb: float
    children_mb: float


def peak_rss_mb() -> PeakRss:
    """Peak RSS of this process and of its waited-for children (largest child, not a sum)."""
    # ru_maxrss is in KiB on Linux. RUSAGE_CHILDREN covers children that have been waited for,
    # which is how the benchmark runs the app and the peer as subprocesses.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return PeakRss(round(own / 1024.0, 1), round(children / 1024.0, 1))


def python_docs_dir() -> Path:
    """The installed Python 3.11 HTML docs; raises FileNotFoundError with the install hint."""
    candidates: list[Path] = []
    try:
        listing = subprocess.run(
            ["dpkg", "-L", DOCS_PACKAGE], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:  # not a dpkg system: only the fallback path can work
        listing = ""
    for line in listing.splitlines():
        # The package ships one HTML tree; its index.html marks the root regardless of where
        # the packager put it.
        if line.endswith("/html/index.html"):
            candidates.append(Path(line).parent)
    candidates.append(DOCS_FALLBACK)
    for candidate in candidates:
        if (candidate / "index.html").is_file():
            return candidate
    raise FileNotFoundError(
        f"Python 3.11 HTML docs not found (looked in {', '.join(map(str, candidates))}); "
        f"install them with: apt-get install {DOCS_PACKAGE}"
    )


def copy_tree(src: Path, dst: Path) -> Path:
    """Make dst a fresh copy of src (dst is replaced), so the benchmark may edit its files."""
    src = Path(src).resolve()
    dst = Path(dst).resolve()
    if not src.is_dir():
        raise FileNotFoundError(f"source tree not found: {src}")
    # Refuse overlaps: replacing dst would then delete (part of) the source itself.
    if dst == src or src.is_relative_to(dst) or dst.is_relative_to(src):
        raise ValueError(f"copy_tree: {dst} overlaps {src}")
    if dst.exists():
        shutil.rmtree(dst)
    # Follow symlinks so the copy is self-contained (the Debian docs link jquery.js into
    # /usr/share/javascript with relative links that would dangle in a copy); skip dangling
    # ones rather than fail, since they are never documents.
    shutil.copytree(src, dst, symlinks=False, ignore_dangling_symlinks=True)
    return dst


def _edit_candidates(root: Path) -> list[Path]:
    files = [p for p in root.rglob("*") if p.suffix.lower() in EDIT_SUFFIXES and p.is_file()]
    # Sort on the relative path so the pick depends only on the tree, not on where it lives.
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    return files


def edit_fraction(root: Path, fraction: float = 0.01, seed: int = 0) -> list[Path]:
    """Append a distinctive paragraph to a deterministic fraction of the .html/.txt files.

    HTML gets a ``<p>`` just before the last ``</body>`` (appended at the end if there is
    none); text gets a trailing paragraph. Each edited file's mtime is moved forward so that
    mtime-based change detection sees it even within the filesystem's timestamp granularity.
    Returns the edited paths, sorted.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    root = Path(root).resolve()
    files = _edit_candidates(root)
    if not files:
        raise FileNotFoundError(f"no .html/.txt files under {root}")
    count = max(1, round(len(files) * fraction))
    chosen = sorted(random.Random(seed).sample(files, count))
    now_ns = time.time_ns()
    for number, path in enumerate(chosen):
        rel = path.relative_to(root).as_posix()
        # Unique per file and seed, and made of words no real doc contains, so a search for the
        # marker proves the edit was indexed.
        marker = f"zqxbench{seed}x{number}"
        sentence = (
            f"Benchmark edit {marker}: the quokka archivist {marker} re-indexed {rel} "
            f"with seed {seed}; this paragraph did not exist before the edit."
        )
        data = path.read_bytes()
        if path.suffix.lower() == ".html":
            paragraph = f"\n<p>{sentence}</p>\n".encode()
            # Byte-level search: the docs mix ASCII and UTF-8, and a decode/encode round trip
            # must not change any byte other than the insertion.
            cut = data.lower().rfind(b"</body>")
            data = data + paragraph if cut < 0 else data[:cut] + paragraph + data[cut:]
        else:
            data = data + f"\n\n{sentence}\n".encode()
        path.write_bytes(data)
        # At least one second past both the old mtime and now: coarse-mtime filesystems and
        # copies made within the same second must still look changed.
        old_ns = path.stat().st_mtime_ns
        new_ns = max(now_ns, old_ns) + 1_000_000_000
        os.utime(path, ns=(new_ns, new_ns))
    return chosen


def _leaf_folders(n_folders: int) -> list[str]:
    """Relative folder paths at depth 3 or 4, spread evenly so each holds ~FILES_PER_FOLDER."""
    fan = 12
    folders = []
    for i in range(n_folders):
        top = _TOP_FOLDERS[(i // (fan * fan)) % len(_TOP_FOLDERS)]
        # The top index keeps names unique once the folder names wrap around.
        top = f"{top}-{i // (fan * fan)}"
        mid = f"{_WORDS[(i // fan) % len(_WORDS)]}-{(i // fan) % fan:02d}"
        leaf = f"{2010 + i % fan}"
        parts = [top, mid, leaf]
        if i % 3 == 0:
            # A third of the folders one level deeper, like archive/ subfolders in real trees.
            parts.append(f"q{i % 4 + 1}")
        folders.append("/".join(parts))
    return folders


def make_tree(root: Path, n_files: int = 100_000, seed: int = 0) -> Path:
    """Generate n_files small .md/.txt files (a few hundred bytes) in nested folders.

    ~FILES_PER_FOLDER files per folder, at depth 3-4. Content and names depend only on
    n_files and seed. root must not exist or be empty, so no stale file can skew a count.
    """
    if n_files < 1:
        raise ValueError("n_files must be positive")
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"make_tree: {root} exists and is not empty")
    rng = random.Random(seed)
    n_folders = -(-n_files // FILES_PER_FOLDER)
    folders = _leaf_folders(n_folders)
    words = _WORDS
    for index in range(n_files):
        folder = root / folders[index // FILES_PER_FOLDER]
        if index % FILES_PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        topic = words[rng.randrange(len(words))]
        body = " ".join(rng.choices(words, k=rng.randint(30, 70)))
        if index % 2 == 0:
            name = f"{topic}-{index:06d}.md"
            text = (
                f"# {topic.title()} {index}\n\n{body.capitalize()}.\n\n"
                f"- item {rng.randint(1, 999)}\n- item {rng.randint(1, 999)}\n"
            )
        else:
            name = f"{topic}-{index:06d}.txt"
            text = f"{topic.upper()} {index}\n\n{body.capitalize()}.\n"
        # newline="" keeps the bytes identical across platforms, hence identical hashes.
        with open(folder / name, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    return root


def _git(args: Sequence[str], git_dir: Path, work_tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Ignore the user's and the system's git config (fsmonitor, untracked cache, signing,
    # hooks paths...) so the figure is git's default behaviour on this tree, everywhere.
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", f"--work-tree={work_tree}", *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )


def git_status_seconds(root: Path, repeats: int = 3, git_dir: Path | None = None) -> float:
    """Best-of-repeats wall time of ``git status --porcelain`` on root, after one warm run.

    The repository lives outside root (a temporary git dir unless one is given), so the tree
    the app scans is not changed by a .git folder full of objects. With a given git_dir that
    already holds a repository, init/add/commit are skipped ("once").
    """
    if repeats < 1:
        raise ValueError("repeats must be positive")
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"tree not found: {root}")
    owns_git_dir = git_dir is None
    git_path = Path(tempfile.mkdtemp(prefix="bench-git-")) if git_dir is None else Path(git_dir)
    try:
        if not (git_path / "HEAD").exists():
            _git(["init", "-q"], git_path, root)
            _git(["add", "-A"], git_path, root)
            _git([*GIT_IDENTITY, "commit", "-q", "-m", "bench baseline"], git_path, root)
        # The warm run also refreshes the index's stat data after the add, which a real
        # repository would already have; it is not measured.
        _git(["status", "--porcelain"], git_path, root)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            _git(["status", "--porcelain"], git_path, root)
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        if owns_git_dir:
            shutil.rmtree(git_path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark corpus helpers")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("docs-dir", help="print the Python docs folder")
    tree = sub.add_parser("make-tree", help="generate a synthetic tree, print timing")
    tree.add_argument("root", type=Path)
    tree.add_argument("--n-files", type=int, default=100_000)
    tree.add_argument("--seed", type=int, default=0)
    status = sub.add_parser("git-status", help="time git status on a tree")
    status.add_argument("root", type=Path)
    status.add_argument("--repeats", type=int, default=3)
    edit = sub.add_parser("edit", help="edit a fraction of the .html/.txt files under root")
    edit.add_argument("root", type=Path)
    edit.add_argument("--fraction", type=float, default=0.01)
    edit.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    result: dict[str, object]
    if args.command == "docs-dir":
        result = {"docs_dir": str(python_docs_dir())}
    elif args.command == "make-tree":
        start = time.perf_counter()
        make_tree(args.root, n_files=args.n_files, seed=args.seed)
        result = {
            "root": str(args.root),
            "n_files": args.n_files,
            "seconds": round(time.perf_counter() - start, 3),
        }
    elif args.command == "git-status":
        start = time.perf_counter()
        best = git_status_seconds(args.root, repeats=args.repeats)
        result = {
            "root": str(args.root),
            "git_status_seconds": round(best, 4),
            "total_seconds_incl_init_add_commit": round(time.perf_counter() - start, 3),
        }
    else:
        edited = edit_fraction(args.root, fraction=args.fraction, seed=args.seed)
        result = {"root": str(args.root), "edited": [str(p) for p in edited]}
    result["peak_rss"] = peak_rss_mb()._asdict()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
