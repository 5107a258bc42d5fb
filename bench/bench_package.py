"""Frozen build figures: bundle and package sizes, cold start to tray visible, self-check time.

    packaging/build-linux.sh                      # makes dist/lancedb-sync and the .deb
    python bench/bench_package.py [--dist dist] [--runs 3] [--write docs/benchmarks.md]

Starts the frozen onedir's tray (no arguments) under its own Xvfb with trayer as the tray host,
in a fresh home each run, and times from exec until the app logs "tray ready" (its tray icon
has been shown); then times `self-check`. Prints the figures; --write puts them in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import write_section  # the bench folder is on sys.path when run

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers import xdisplay  # noqa: E402

BEGIN, END = "<!-- bench_package:begin -->", "<!-- bench_package:end -->"


def tree_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()
               ) / 1e6


def components(onedir: Path, top: int = 8) -> list[tuple[str, float]]:
    inner = onedir / "_internal"
    sizes = []
    for entry in inner.iterdir():
        if entry.is_symlink():
            continue
        size = tree_mb(entry) if entry.is_dir() else entry.stat().st_size / 1e6
        sizes.append((entry.name, size))
    return sorted(sizes, key=lambda x: -x[1])[:top]


def start_display() -> tuple[list[subprocess.Popen], dict[str, str]]:
    xvfb, display = xdisplay.start_xvfb()
    env = {**os.environ, "DISPLAY": display}
    env.pop("QT_QPA_PLATFORM", None)
    trayer = xdisplay.start_trayer(display)
    time.sleep(1.0)
    return [trayer, xvfb], env


def cold_start(exe: Path, env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as home:
        run_env = {**env, "HOME": home}
        for key in ("LANCEDB_SYNC_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME",
                    "XDG_CACHE_HOME"):
            run_env.pop(key, None)
        log = Path(home) / ".local" / "state" / "lancedb-sync" / "log" / "lancedb-sync.log"
        t0 = time.monotonic()
        proc = subprocess.Popen([str(exe)], env=run_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while time.monotonic() - t0 < 30:
                if log.exists() and "tray ready" in log.read_text(errors="replace"):
                    return time.monotonic() - t0
                if proc.poll() is not None:
                    raise RuntimeError(f"the tray exited with {proc.returncode}")
                time.sleep(0.01)
            raise TimeoutError("no tray within 30 s")
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def self_check(exe: Path) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home, "QT_QPA_PLATFORM": "offscreen"}
        t0 = time.monotonic()
        out = subprocess.run([str(exe), "self-check"], env=env, capture_output=True, text=True,
                             timeout=300)
        seconds = time.monotonic() - t0
    report = json.loads(out.stdout)
    if out.returncode != 0:
        raise RuntimeError(f"self-check failed: {out.stdout}")
    return seconds, report


def measure(dist: Path, runs: int) -> dict:
    onedir = dist / "lancedb-sync"
    exe = onedir / "lancedb-sync"
    debs = sorted(dist.glob("lancedb-sync_*.deb"))
    result = {"onedir_mb": round(tree_mb(onedir)),
              "deb": debs[-1].name if debs else None,
              "deb_mb": round(debs[-1].stat().st_size / 1e6, 1) if debs else None,
              "components": [(n, round(s)) for n, s in components(onedir)]}
    procs, env = start_display()
    try:
        starts = [cold_start(exe, env) for _ in range(runs)]
    finally:
        for p in procs:
            p.terminate()
    result["tray_start_s"] = [round(s, 2) for s in starts]
    result["tray_start_median_s"] = round(statistics.median(starts), 2)
    seconds, report = self_check(exe)
    result["self_check_s"] = round(seconds, 2)
    result["self_check_checks"] = {c["name"]: c["seconds"] for c in report["checks"]}
    t0 = time.monotonic()
    subprocess.run([str(exe), "--help"], capture_output=True, check=True)
    result["help_s"] = round(time.monotonic() - t0, 2)
    return result


def render(r: dict) -> str:
    comps = ", ".join(f"{n} {s} MB" for n, s in r["components"][:6])
    deb_ok = r["deb_mb"] is not None and r["deb_mb"] <= 250
    return "\n".join([
        BEGIN, "",
        f"Measured {time.strftime('%Y-%m-%d')} on this project's CI machine kind "
        f"({os.cpu_count()} cores, {platform.machine()}), by `python bench/bench_package.py "
        "--write docs/benchmarks.md` on the build of `packaging/build-linux.sh`.", "",
        "| figure | result | target |",
        "|---|---|---|",
        f"| `.deb` package (zstd) | **{r['deb_mb']} MB** | ≤ 250 MB {'(met)' if deb_ok else ''}|",
        f"| onedir on disk | {r['onedir_mb']} MB | |",
        f"| cold start of the frozen app to tray visible (fresh home, median of "
        f"{len(r['tray_start_s'])}) | **{r['tray_start_median_s']:.2f} s** "
        f"({', '.join(f'{s:.2f}' for s in r['tray_start_s'])}) | ≤ 3 s |",
        f"| `self-check` (imports, index + search, parser worker, S3 client, keyring, Qt) | "
        f"{r['self_check_s']:.1f} s | |",
        f"| `lancedb-sync --help`, frozen | {r['help_s']:.2f} s | |",
        "",
        f"What dominates the bundle: {comps}. See docs/packaging.md for what was trimmed.",
        "", END])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dist", type=Path, default=REPO / "dist")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--write", type=Path)
    a = p.parse_args()
    for tool in ("Xvfb", "trayer"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed (apt-get install xvfb trayer)", file=sys.stderr)
            return 2
    result = measure(a.dist, a.runs)
    print(json.dumps(result, indent=2))
    if a.write:
        write_section(a.write, "bench_package", "Frozen build (bench/bench_package.py)",
                      render(result))
        print(f"wrote {a.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
