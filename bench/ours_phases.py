"""LanceDB Sync's side of the benchmark: phases run in one process, as the service runs them.

    python bench/ours_phases.py CORPUS HOME [--edit-fraction 0.01] [--resyncs 3]

Phases: `initial` (empty index → everything indexed), `resync` (nothing changed; best of
`--resyncs`), and with `--edit-fraction`, `edit` (that fraction of the files changed, then one
pass). Times are wall seconds of `Indexer.sync_source` only: imports and the process start are
reported apart (`import_seconds`), because the service pays them once, not per sync. Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class _TreeRssSampler:
    """Peak of (this process + its parser workers) resident memory, sampled every 0.1 s.

    getrusage's figure for children is no use here: a spawned worker is forked before it
    execs, so the kernel charges it the parent's resident size at that moment.
    """

    def __init__(self) -> None:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.1):
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            self.peak = max(self.peak, total)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak / 2**20, 1)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("corpus", type=Path)
    p.add_argument("home", type=Path)
    p.add_argument("--edit-fraction", type=float, default=0.0)
    p.add_argument("--resyncs", type=int, default=3)
    p.add_argument("--pattern", action="append", default=[],
                   help="file patterns (default: every supported format)")
    args = p.parse_args()

    t0 = time.perf_counter()
    from app.config import load_settings, save_sources
    from app.core.sync import Indexer
    from app.models import SourceConfig, SourceType
    from app.sources.registry import make_source

    settings = load_settings(home=args.home, env={})
    config: dict = {"watch_paths": [str(args.corpus.resolve())]}
    if args.pattern:
        config["file_patterns"] = args.pattern
    source = SourceConfig(SourceType.LOCAL_FILESYSTEM, "bench", config)
    # Saved like `sources add` would, so the CLI can be timed on the same home afterwards.
    settings = save_sources(settings, (source,))
    sampler = _TreeRssSampler()
    with Indexer(settings, sources=make_source) as ix:
        # Like the peer's figures, ours exclude imports and the model load: a process pays them
        # once, not per sync. (The cold command line is timed separately, start to finish.)
        _ = ix.store
        ix.embedder.embedder.embed(["warm up"])
        import_s = time.perf_counter() - t0
        out: dict = {"import_seconds": round(import_s, 3)}
        sampler.start()
        t = time.perf_counter()
        rep = ix.sync_source(source)
        out["initial_seconds"] = round(time.perf_counter() - t, 3)
        out["initial_peak_tree_rss_mb"] = sampler.stop()
        out["initial"] = rep.as_dict()
        out["initial_peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        out["chunks"] = rep.chunks_written
        if rep.failed or not rep.added:
            out["warning"] = f"initial pass: {rep.added} added, {rep.failed} failed"
        # Leave the "racy" window (files written in the last 2 s are hashed once more) so the
        # re-sync measures the steady state a person sees minutes after a sync.
        time.sleep(2.1)
        times = []
        for _ in range(max(1, args.resyncs)):
            t = time.perf_counter()
            rep = ix.sync_source(source)
            times.append(time.perf_counter() - t)
            assert not rep.changed, rep.as_dict()
        out["resync_seconds"] = round(min(times), 4)
        out["resync_all_seconds"] = [round(x, 4) for x in times]
        out["resync"] = rep.as_dict()
        if args.edit_fraction:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from corpus import edit_fraction

            edited = edit_fraction(args.corpus, args.edit_fraction)
            t = time.perf_counter()
            rep = ix.sync_source(source)
            out["edit_seconds"] = round(time.perf_counter() - t, 3)
            out["edit_files"] = len(edited)
            out["edit"] = rep.as_dict()
            assert rep.modified == len(edited), rep.as_dict()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["children_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
