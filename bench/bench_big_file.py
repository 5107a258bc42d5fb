"""Memory of one very large text file: peak resident memory of the app and its parser workers.

    python bench/bench_big_file.py [--work DIR] [--write docs/reliability.md]

Three runs of `lancedb-sync sync`, each in a fresh home, each on a folder holding one file of
generated English-like text:
  - 200 MB with the default settings: refused by the size limit (max_file_mb, 100 MB);
  - 95 MB with the default settings: refused by the text limit (max_text_mb, 20 million
    characters), after it was read, so this is the cost of finding out;
  - 19 MB, the largest kind of document the defaults index: indexed.
Peak memory is sampled every 20 ms over the whole process tree (the CLI and its workers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from report import write_section  # noqa: E402

WORDS = ("harbour lantern keeper ledger tide wind gull rope anchor chart compass beacon fog "
         "horn stone cliff wave salt net boat oar sail mast deck hull keel storm calm shore "
         "island reef current drift north south east west morning evening night watch").split()


def make_text(path: Path, size: int) -> None:
    rng = random.Random(size)
    with path.open("w") as fh:
        written = 0
        while written < size:
            para = "\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(6)) + "\n\n"
            fh.write(para)
            written += len(para)


def peak_of(cmd: list[str], env: dict[str, str]) -> tuple[int, float, float]:
    """(exit code, peak MB of the process tree, seconds)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            total = root.memory_info().rss
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.02)
    proc.communicate()
    return proc.returncode, peak / 1e6, time.perf_counter() - t


def run_case(work: Path, name: str, size: int) -> dict:
    folder = work / name / "docs"
    folder.mkdir(parents=True)
    make_text(folder / f"{name}.txt", size)
    home = work / name / "home"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "app", "--home", str(home)]
    subprocess.run([*base, "sources", "add", "local", str(folder), "--id", "big"], env=env,
                   check=True, capture_output=True)
    code, peak, seconds = peak_of([*base, "sync"], env)
    failed = json.loads(subprocess.run([*base, "failed", "--json"], env=env, check=True,
                                       capture_output=True, text=True).stdout)
    status = json.loads(subprocess.run([*base, "status", "--json"], env=env, check=True,
                                       capture_output=True, text=True).stdout)
    return {"case": name, "file_mb": round(size / 1e6), "exit": code,
            "peak_mb": round(peak), "seconds": round(seconds, 1),
            "indexed": status["documents"], "chunks": status["chunks"],
            "reason": failed[0]["reason"] if failed else ""}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-big-"))
    rows = [run_case(work, "size_200mb", 200_000_000),
            run_case(work, "text_95mb", 95_000_000),
            run_case(work, "text_19mb", 19_000_000)]
    for r in rows:
        print(json.dumps(r))
    if args.write:
        lines = ["<!-- bench_big_file:begin -->",
                 "| file | outcome | peak memory (app + workers) | time |", "|---|---|---|---|"]
        for r in rows:
            outcome = (f"indexed ({r['chunks']:,} chunks)" if r["indexed"]
                       else "refused: " + r["reason"].split(",")[0].split(";")[0])
            lines.append(f"| {r['file_mb']} MB text | {outcome} | {r['peak_mb']:,} MB | "
                         f"{r['seconds']} s |")
        lines.append("")
        lines.append("Measured by `bench/bench_big_file.py` on this 2-core machine.")
        lines.append("<!-- bench_big_file:end -->")
        write_section(args.write, "bench_big_file", "One very large file", "\n".join(lines))


if __name__ == "__main__":
    main()
