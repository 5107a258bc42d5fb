"""Misbehaving extractor plugins, to exercise the sandbox.

Referenced as "tests.helpers.parsers:<name>" in ExtractorPool(plugins=...). They run inside
worker processes, so they must stay importable top-level functions.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from pathlib import Path

from app.core.extract.types import Block, Extracted

_HOG_CHUNK = 64 * 1024 * 1024
# Safety net if no memory limit is in force: stop after this much address space. The chunks are
# calloc'ed and never touched, so even reaching the cap uses almost no physical memory.
_HOG_CAP = 16 * 1024 * 1024 * 1024


def ok(path: str) -> Extracted:
    """A well-behaved parser: the file's text as one paragraph."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return Extracted((Block(text),), "text/plain", Path(path).stem, {"pid": str(os.getpid())})


def hang(path: str) -> Extracted:
    """Never returns, like a parser stuck in an infinite loop."""
    while True:
        time.sleep(3600)


def crash(path: str) -> Extracted:
    """Dies from a segmentation fault, like a native parser reading past a buffer."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the test directory
    except (ImportError, ValueError, OSError):
        pass
    ctypes.string_at(0)
    os._exit(139)  # not reached where address 0 faults; a hard exit still counts as a crash


def exit_hard(path: str) -> Extracted:
    """Leaves without a word, like native code calling exit()."""
    os._exit(3)


def hog(path: str) -> Extracted:
    """Allocates memory until it runs out, like a decompression bomb."""
    chunks = []
    while len(chunks) * _HOG_CHUNK < _HOG_CAP:
        chunks.append(bytes(_HOG_CHUNK))  # bytes(n) is calloc'ed: address space, not RAM
    return Extracted((Block("hog hit its cap without a memory limit"),), "text/plain")


def boom(path: str) -> Extracted:
    """Raises an ordinary exception, like a parser choking on bad input."""
    raise ValueError("unexpected byte 0xff at offset 12")


def deny(path: str) -> Extracted:
    """Fails like a file whose permissions changed after it was listed."""
    raise PermissionError(13, "Permission denied", path)


def vanish(path: str) -> Extracted:
    """Fails like a file deleted between listing and reading."""
    raise FileNotFoundError(2, "No such file or directory", path)


def io_error(path: str) -> Extracted:
    """Fails like a disk or network share that stopped answering."""
    raise OSError(errno.EIO, "Input/output error", path)


def flaky(path: str) -> Extracted:
    """Fails while a `<file>.fail` marker sits next to the file, then reads it like `ok`: a
    transient failure that a Retry (not an edit of the file) must recover from."""
    if Path(path + ".fail").exists():
        raise ValueError("the parser could not read this file (marker present)")
    return ok(path)


def gated(path: str) -> Extracted:
    """Waits while the file named by LANCEDB_SYNC_TEST_GATE exists, then parses as `ok`: holds
    a pass mid-batch for exactly as long as a test needs."""
    gate = os.environ.get("LANCEDB_SYNC_TEST_GATE")
    while gate and os.path.exists(gate):
        time.sleep(0.02)
    return ok(path)
