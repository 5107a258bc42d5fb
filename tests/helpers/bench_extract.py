"""Timing checks for extraction that are too machine-dependent to assert in unit tests.

    python -m tests.helpers.bench_extract [HTML_DIR]

1. HTML: every *.html under HTML_DIR (default: the Debian/Ubuntu Python docs,
   /usr/share/doc/python3.11/html) through the HTML extractor, in this process.
2. Pool overhead: 1,000 tiny .txt files through a 2-worker ExtractorPool, including worker
   start-up and shutdown, from one calling thread and from two.
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.core.extract import extract_path
from app.core.extract.sandbox import ExtractorPool

DEFAULT_HTML_DIR = Path("/usr/share/doc/python3.11/html")


def bench_html(folder: Path) -> None:
    files = sorted(folder.rglob("*.html"))
    if not files:
        print(f"html: no *.html under {folder}; skipped")
        return
    size = sum(f.stat().st_size for f in files)
    start = time.perf_counter()
    blocks = chars = 0
    for path in files:
        extracted = extract_path(path)
        blocks += len(extracted.blocks)
        chars += extracted.char_count
    elapsed = time.perf_counter() - start
    print(
        f"html: {len(files)} files, {size / 1e6:.1f} MB -> {blocks} blocks, {chars / 1e6:.1f} M "
        f"chars in {elapsed:.2f} s ({size / 1e6 / elapsed:.0f} MB/s)"
    )


def bench_pool(count: int = 1000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(count):
            path = Path(tmp) / f"tiny{i}.txt"
            path.write_text(f"Tiny file number {i}.\n\nA second paragraph.\n")
            files.append(path)
        for threads in (1, 2):
            start = time.perf_counter()
            with ExtractorPool(2) as pool, ThreadPoolExecutor(threads) as executor:
                list(executor.map(pool.extract, files))
            elapsed = time.perf_counter() - start
            print(
                f"pool: {count} tiny .txt files, 2 workers, {threads} calling thread(s): "
                f"{elapsed:.2f} s including start-up and close "
                f"({elapsed / count * 1e3:.2f} ms/file)"
            )


def main() -> None:
    bench_html(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_HTML_DIR)
    bench_pool()


if __name__ == "__main__":
    main()
