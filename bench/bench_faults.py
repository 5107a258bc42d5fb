"""Every fault point, both ways, several times: does the index always come back equal to a clean
run? Prints one line per point and mode; --write puts the table into docs/reliability.md.

    python bench/bench_faults.py [--repeat 3] [--work DIR] [--write docs/reliability.md]

For each point of app/core/faults.py and each mode (`kill`: SIGKILL, as a power cut; `error`:
OSError(ENOSPC), as a full disk), and each repetition r, the fault fires at the (r+1)-th time the
point is reached where the scenario reaches it more than once, so different batches are hit.
One repetition:
  1. a fresh home indexes a 400-file corpus (several batches);
  2. the corpus changes (modified, deleted, touched, renamed and new files);
  3. `lancedb-sync sync` (or `cleanup`, or `sources remove --purge`) runs with the fault;
  4. `lancedb-sync sync` runs again, then `lancedb-sync check`;
  5. the index is compared with a clean run over the same files: per document its status,
     content hash and chunk count, and the set of chunk ids.
Exit codes of step 3 and 4 are recorded; "clean" means step 5 matched and check exited 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from report import write_section  # noqa: E402

from app.core.faults import POINTS  # noqa: E402

N_FILES = 400


def write_corpus(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for i in range(N_FILES):
        sub = root / f"d{i % 8}"
        sub.mkdir(exist_ok=True)
        paras = "\n\n".join(f"Section {j} of record {i}: the harbour ledger notes tide {j}, "
                            f"wind {i % 13} and lamp {i * j % 17}. " * 4 for j in range(1 + i % 5))
        (sub / f"r{i:03}.md").write_text(f"# Record {i}\n\n{paras}\n")


def edit_corpus(root: Path) -> None:
    files = sorted(root.rglob("*.md"))
    for p in files[100:400]:
        p.write_text(p.read_text() + "\n\nAn addendum about the foghorn.\n")
    for p in files[40:60]:
        p.unlink()
    for p in files[60:80]:
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    for p in files[80:100]:
        p.rename(p.with_name("moved-" + p.name))
    for i in range(40):
        (root / f"new{i}.md").write_text(f"# New {i}\n\nA new record about buoy {i}.\n")


def cli(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", "--home", str(home), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=1800,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def index_state(home: Path) -> tuple[dict, set]:
    import lancedb

    db = lancedb.connect(str(home / "data" / "index"))
    docs = db.open_table("processed_documents").search().select(
        ["doc_uid", "status", "content_hash", "chunk_count"]).limit(None).to_arrow().to_pylist()
    chunks = db.open_table("document_chunks").search().select(["chunk_id"]).limit(None) \
        .to_arrow().column("chunk_id").to_pylist()
    rows = {d["doc_uid"]: (d["status"], d["content_hash"], d["chunk_count"]) for d in docs}
    if len(rows) != len(docs) or len(set(chunks)) != len(chunks):
        return {"duplicates": True}, set()
    return rows, set(chunks)


def scenario_for(point: str) -> str:
    if point.startswith("purge"):
        return "purge"
    if point == "maintain-between-tables":
        return "cleanup"
    if point.startswith("repair"):
        return point
    return "edit"


def prepare(work: Path, scenario: str) -> tuple[Path, Path]:
    corpus, home = work / "corpus", work / "home"
    if home.exists():
        shutil.rmtree(home)
    write_corpus(corpus)
    assert cli(home, "sources", "add", "local", str(corpus), "--id", "c").returncode == 0
    assert cli(home, "sync").returncode == 0
    if scenario in ("edit", "cleanup", "repair-after-orphans", "repair-after-duplicates"):
        edit_corpus(corpus)
    if scenario == "cleanup":
        assert cli(home, "sync").returncode == 0
    if scenario == "repair-after-orphans":
        r = cli(home, "sync", env={"LANCEDB_SYNC_FAULT": "after-chunks:1:error"})
        assert r.returncode == 1, r.stderr
    if scenario == "repair-after-duplicates":
        import lancedb

        table = lancedb.connect(str(home / "data" / "index")).open_table("document_chunks")
        table.add(table.search().limit(200).to_arrow())
    return corpus, home


def truth_for(work: Path, scenario: str) -> tuple[dict, set]:
    corpus, home = work / "corpus", work / "truth"
    if home.exists():
        shutil.rmtree(home)
    write_corpus(corpus)
    if scenario != "purge":
        edit_corpus(corpus)
    assert cli(home, "sources", "add", "local", str(corpus), "--id", "c").returncode == 0
    assert cli(home, "sync").returncode == 0
    return index_state(home)


def command_for(scenario: str) -> list[str]:
    if scenario == "purge":
        return ["sources", "remove", "c", "--purge"]
    if scenario == "cleanup":
        return ["cleanup"]
    return ["sync"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--write", type=Path)
    ap.add_argument("--points", nargs="*")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-faults-"))
    truths: dict[str, tuple[dict, set]] = {}
    results = []
    t0 = time.perf_counter()
    for point in args.points or list(POINTS):
        scenario = scenario_for(point)
        if scenario not in truths:
            truths[scenario] = truth_for(work, scenario)
        for mode in ("kill", "error"):
            exits: Counter[str] = Counter()
            clean = 0
            for rep in range(args.repeat):
                # Points reached once per run take N=1; the batch points take N=1, 2, 3…
                nth = 1 + rep if point in ("after-chunks", "after-documents",
                                           "after-mirror") else 1
                spec = f"{point}:{nth}" + (":error" if mode == "error" else "")
                _corpus, home = prepare(work, scenario)
                first = cli(home, *command_for(scenario), env={"LANCEDB_SYNC_FAULT": spec})
                expected = {-9} if mode == "kill" else (
                    {0} if point.startswith("maintain") else {1})
                if first.returncode not in expected:
                    print(f"  unexpected exit {first.returncode} at {point} {mode} rep {rep}: "
                          f"{first.stderr[-600:]}", file=sys.stderr)
                second = cli(home, "sync")
                check = cli(home, "check")
                same = index_state(home) == truths[scenario]
                ok = same and check.returncode == 0 and second.returncode == 0
                clean += ok
                exits[f"{first.returncode}→{second.returncode}"] += 1
                if not ok:
                    print(f"  NOT CLEAN: {point} {mode} rep {rep}: {check.stdout[-800:]}",
                          file=sys.stderr)
            row = {"point": point, "mode": mode, "clean": clean, "runs": args.repeat,
                   "exits": dict(exits)}
            results.append(row)
            print(json.dumps(row), flush=True)
    minutes = (time.perf_counter() - t0) / 60
    total = sum(r["runs"] for r in results)
    good = sum(r["clean"] for r in results)
    print(f"{good} of {total} runs clean ({minutes:.1f} min)")
    if args.write:
        lines = ["<!-- bench_faults:begin -->",
                 f"{good} of {total} interrupted runs ended equal to a clean run, with "
                 "`lancedb-sync check` clean (`bench/bench_faults.py --repeat "
                 f"{args.repeat}`, {N_FILES}-file corpus, {minutes:.0f} min on this 2-core "
                 "machine).", "",
                 "| point | kill: clean | kill: exit codes | error: clean | error: exit codes |",
                 "|---|---|---|---|---|"]
        by_point: dict[str, dict[str, dict]] = {}
        for r in results:
            by_point.setdefault(r["point"], {})[r["mode"]] = r
        for point, modes in by_point.items():
            k, e = modes["kill"], modes["error"]

            def codes(r: dict) -> str:
                return ", ".join(f"{c} ×{n}" for c, n in sorted(r["exits"].items()))
            lines.append(f"| `{point}` | {k['clean']}/{k['runs']} | {codes(k)} | "
                         f"{e['clean']}/{e['runs']} | {codes(e)} |")
        lines += ["", "Exit codes read `failing run → next sync`: -9 is the kill, 1 the full "
                  "disk reported in one line, 0 a run that finished (maintenance failures never "
                  "fail a pass).", "<!-- bench_faults:end -->"]
        write_section(args.write, "bench_faults", "Every fault point", "\n".join(lines))


if __name__ == "__main__":
    main()
