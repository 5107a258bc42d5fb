"""Ingest benchmark: LanceDB Sync against LangChain's indexing API, same corpus, same embedder.

    python bench/bench_ingest.py [--work DIR] [--tree-files 100000] [--skip-peer] [--skip-tree]
                                 [--write docs/benchmarks.md]

Corpus 1 is the Python documentation of Debian's python3.11-doc package (HTML and reST sources,
about 1,000 files, 67 MB). Corpus 2 is a generated tree of small text files (100,000 by default)
for the no-change rescan, compared with `git status` on the same tree.

Each side runs in its own process. Our times are `Indexer.sync_source` calls inside one process
(as the service runs them) plus, separately, the cold CLI; the peer's are load + split + index()
inside its process (see bench/peer_langchain.py). Prints the figures and, with --write, replaces
the generated section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from corpus import copy_tree, edit_fraction, git_status_seconds, make_tree, python_docs_dir  # noqa: E402
from report import write_section  # noqa: E402

BEGIN = "<!-- bench_ingest:begin -->"
END = "<!-- bench_ingest:end -->"


def run_json(args: list[str], env: dict | None = None) -> tuple[dict, float]:
    t = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1]), wall


def best_wall(args: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        r = subprocess.run(args, capture_output=True, text=True, cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
        best = min(best, time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return best


def bench_docs(work: Path, skip_peer: bool) -> dict:
    src = python_docs_dir()
    ours_corpus = copy_tree(src, work / "ours_corpus")
    out: dict = {"corpus": str(src)}
    # The same files as the peer reads (its loaders cover .html and .txt), not our wider default
    # (which would add the docs' JavaScript, including a 4 MB search index).
    same_files = ["--pattern", "*.html", "--pattern", "*.txt"]
    ours, _ = run_json([sys.executable, str(HERE / "ours_phases.py"), str(ours_corpus),
                        str(work / "ours_home"), "--edit-fraction", "0.01", *same_files])
    out["ours"] = ours
    app = [sys.executable, "-m", "app", "--home", str(work / "ours_home")]
    out["ours_cli_nochange_sync_seconds"] = round(best_wall([*app, "sync"]), 3)
    out["ours_cli_help_seconds"] = round(best_wall([*app, "--help"]), 3)
    out["ours_cli_status_seconds"] = round(best_wall([*app, "status"]), 3)
    # The whole first sync as a person runs it: process start, imports, model load, indexes.
    cold = [sys.executable, "-m", "app", "--home", str(work / "cold_home")]
    subprocess.run([*cold, "sources", "add", "local", str(src), "--pattern", "*.html",
                    "--pattern", "*.txt"], check=True, cwd=REPO,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    out["ours_cli_initial_seconds"] = round(best_wall([*cold, "sync"], repeats=1), 2)
    if skip_peer:
        return out
    peer_corpus = copy_tree(src, work / "peer_corpus")
    peer = [sys.executable, str(HERE / "peer_langchain.py"), str(peer_corpus),
            str(work / "peer_work")]
    out["peer_initial"], _ = run_json([*peer, "--phase", "initial"])
    out["peer_resync"], _ = run_json([*peer, "--phase", "resync"])
    edit_fraction(peer_corpus, 0.01)
    out["peer_edit"], _ = run_json([*peer, "--phase", "resync"])
    return out


def bench_tree(work: Path, n_files: int) -> dict:
    tree = work / "tree"
    t = time.perf_counter()
    make_tree(tree, n_files)
    out: dict = {"files": n_files, "generate_seconds": round(time.perf_counter() - t, 1)}
    ours, _ = run_json([sys.executable, str(HERE / "ours_phases.py"), str(tree),
                        str(work / "tree_home"), "--resyncs", "5"])
    out["ours"] = ours
    out["git_status_seconds"] = round(git_status_seconds(tree, repeats=5), 4)
    return out


def ratio(a: float, b: float) -> float:
    return round(a / b, 1) if b else float("inf")


def render(docs: dict | None, tree: dict | None) -> str:
    lines = [BEGIN, "",
             f"Measured {time.strftime('%Y-%m-%d')} on this project's CI machine kind "
             f"({os.cpu_count()} cores, {platform.machine()}, Python "
             f"{platform.python_version()}), by `python bench/bench_ingest.py --write "
             "docs/benchmarks.md`.", ""]
    if docs:
        o = docs["ours"]
        lines += ["### Python documentation (python3.11-doc: HTML + reST sources)", "",
                  "| figure | LanceDB Sync | LangChain `index()` | ratio | target |",
                  "|---|---|---|---|---|"]
        p_i = docs.get("peer_initial")
        p_r = docs.get("peer_resync")
        p_e = docs.get("peer_edit")
        lines.append(
            f"| initial ingest ({o['initial']['added']} files, {o['chunks']:,} chunks"
            + (f" / peer {p_i['chunks']:,} chunks" if p_i else "") + ") | "
            f"{o['initial_seconds']:.1f} s | " + (f"{p_i['seconds']:.1f} s" if p_i else "—")
            + " | " + (f"**{ratio(p_i['seconds'], o['initial_seconds'])}×** faster" if p_i
                       else "—") + " | ≥ 5× |")
        lines.append(
            f"| no-change re-sync (in process) | {o['resync_seconds'] * 1000:.0f} ms | "
            + (f"{p_r['seconds']:.1f} s" if p_r else "—") + " | "
            + (f"**{ratio(p_r['seconds'], o['resync_seconds']):,.0f}×** faster" if p_r
               else "—") + " | ≥ 100×, < 1 s |")
        edit_pct = 100 * o["edit_seconds"] / o["initial_seconds"]
        lines.append(
            f"| re-sync after editing 1% ({o['edit_files']} files) | {o['edit_seconds']:.2f} s "
            f"= **{edit_pct:.1f}%** of initial | "
            + (f"{p_e['seconds']:.1f} s" if p_e else "—") + " | "
            + (f"{ratio(p_e['seconds'], o['edit_seconds'])}× faster" if p_e else "—")
            + " | ≤ 3% of initial |")
        lines.append(
            f"| peak memory, initial ingest (app + parser workers) | "
            f"{o['initial_peak_tree_rss_mb']:.0f} MB | "
            + (f"{p_i['peak_rss_mb']:.0f} MB" if p_i else "—") + " | | < 1 GB |")
        lines += ["",
                  f"Cold command line: the first `lancedb-sync sync` of the corpus took "
                  f"{docs['ours_cli_initial_seconds']:.1f} s wall, start to finish (process "
                  f"start, imports, model load and index build included). On the same index, "
                  f"`lancedb-sync sync` with nothing "
                  f"changed {docs['ours_cli_nochange_sync_seconds']:.2f} s wall (process start "
                  f"included), `status` {docs['ours_cli_status_seconds']:.2f} s, `--help` "
                  f"{docs['ours_cli_help_seconds']:.2f} s. Imports inside the benchmark process: "
                  f"ours {o['import_seconds']:.2f} s"
                  + (f", peer {p_i['import_load_seconds']:.2f} s (imports + model load)"
                     if p_i else "") + "; neither is in the table's figures.", ""]
        if docs.get("peer_reused_from"):
            lines += [f"(Peer figures from the run of {docs['peer_reused_from']} on the same "
                      "machine; the peer's code and corpus did not change since.)", ""]
        if p_i:
            lines += [f"Peer details: load {p_i['load_seconds']:.1f} s, split "
                      f"{p_i['split_seconds']:.1f} s, index() {p_i['index_seconds']:.1f} s on "
                      f"initial; re-sync load {p_r['load_seconds']:.1f} s, index() "
                      f"{p_r['index_seconds']:.1f} s ({p_r['num_skipped']:,} skipped, "
                      f"{p_r['num_added']} added, {p_r['num_deleted']} deleted); 1% edit "
                      f"{p_e['num_added']} added, {p_e['num_deleted']} deleted; "
                      f"{p_i['load_errors']} load errors.", ""]
    if tree:
        o = tree["ours"]
        lines += [f"### Generated tree ({tree['files']:,} small text files)", "",
                  "| figure | LanceDB Sync | `git status` | ratio | target |",
                  "|---|---|---|---|---|",
                  f"| no-change rescan (best of {len(o['resync_all_seconds'])}) | "
                  f"{o['resync_seconds']:.3f} s | {tree['git_status_seconds']:.3f} s | "
                  f"**{ratio(o['resync_seconds'], tree['git_status_seconds'])}×** git's time | "
                  "≤ 5× |",
                  f"| initial ingest | {o['initial_seconds']:.1f} s "
                  f"({tree['files'] / o['initial_seconds']:.0f} files/s, {o['chunks']:,} chunks)"
                  f" | | | |", ""]
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, help="scratch folder (default: a new temp folder)")
    p.add_argument("--tree-files", type=int, default=100_000)
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--skip-tree", action="store_true")
    p.add_argument("--skip-docs", action="store_true")
    p.add_argument("--write", type=Path, help="update the generated section of this file")
    p.add_argument("--reuse", type=Path,
                   help="figures.json of an earlier run: take the peer's and the tree's figures "
                        "from it when --skip-peer / --skip-tree (the peer does not change with "
                        "our code)")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lancedb-sync-bench-"))
    if work.exists() and any(work.iterdir()):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    docs = None if args.skip_docs else bench_docs(work, args.skip_peer)
    tree = None if args.skip_tree else bench_tree(work, args.tree_files)
    if args.reuse:
        old = json.loads(args.reuse.read_text())
        if args.skip_peer and docs and old.get("docs"):
            for key in ("peer_initial", "peer_resync", "peer_edit"):
                if key in old["docs"]:
                    docs[key] = old["docs"][key]
            docs["peer_reused_from"] = old.get("measured", "an earlier run")
        if args.skip_tree and tree is None:
            tree = old.get("tree")
    (work / "figures.json").write_text(json.dumps(
        {"measured": time.strftime("%Y-%m-%d %H:%M"), "docs": docs, "tree": tree}, indent=2))
    section = render(docs, tree)
    print(section)
    print(f"\nraw figures: {work / 'figures.json'}")
    if args.write:
        write_section(args.write, "bench_ingest", "Ingest (bench/bench_ingest.py)", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
