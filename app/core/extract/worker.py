"""The loop that runs inside each sandbox worker process.

Kept apart from sandbox.py and free of heavy imports: under the "spawn" start method (and in a
PyInstaller build) the child imports this module by name before anything else, so it must be
importable on its own and cheap to import.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

# Messages, parent -> worker: (path, max_bytes), or None to exit.
# Worker -> parent: READY once after start-up, then two per request: LOADED once the reader for
# the file's type is imported (or could not be), then ("ok", Extracted) or ("error", kind,
# reason). The parent gives the load and the parse separate time limits: a cold import of a
# parser library is not the file's doing.
READY = ("ready",)
LOADED = ("loaded",)
Request = tuple[str, int | None] | None
Reply = tuple[Any, ...]


def _limit_memory(megabytes: int) -> None:
    import resource

    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    # The address-space cap makes a runaway parser get MemoryError (or die) in this worker
    # instead of pushing the whole desktop into swap.
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def memory_reason(memory_limit_mb: int | None) -> str:
    limit = f"more than {memory_limit_mb} MB of" if memory_limit_mb else "too much"
    return (
        f"Reading this file needed {limit} memory, so it was skipped; the file may be damaged "
        "or unusually complex."
    )


def _load(path: str, plugins: Mapping[str, str] | None) -> Reply | None:
    """Import the reader for this file's type; None when it is ready, else the error reply."""
    from app.core.extract import load_reader

    try:
        load_reader(path, plugins=plugins)
    except Exception as exc:
        return _error_reply(exc)
    return None


def _handle(path: str, max_bytes: int | None, plugins: Mapping[str, str] | None,
            max_chars: int | None = None) -> Reply:
    from app.core.extract import extract_path

    try:
        result = extract_path(path, max_bytes=max_bytes, plugins=plugins, max_chars=max_chars)
    except Exception as exc:
        return _error_reply(exc)
    # Checked here, so a document too long to index is never copied to the app's process.
    if max_chars is not None and result.char_count > max_chars:
        return ("error", "too_large", too_much_text_reason(result.char_count, max_chars))
    return ("ok", result)


def too_much_text_reason(chars: int, max_chars: int) -> str:
    return (f"This file holds {chars / 1e6:.1f} million characters of text, more than the "
            f"{max_chars / 1e6:g} million one document may hold, so it was skipped; raise "
            "max_text_mb (LANCEDB_SYNC_MAX_TEXT_MB) to index it.")


def _error_reply(exc: Exception) -> Reply:
    from app.core.extract.types import ExtractionError

    if isinstance(exc, ExtractionError):
        return ("error", exc.kind, exc.reason)
    if isinstance(exc, MemoryError):
        return ("error", "memory", "")
    return (
        "error",
        "internal",
        f"Something unexpected went wrong while reading this file ({type(exc).__name__}); "
        "it will be retried later.",
    )


def run_worker(
    conn: Connection, memory_limit_mb: int | None, plugins: Mapping[str, str] | None,
    low_priority: bool = False, max_chars: int | None = None,
) -> None:
    """Process entry point: answer extraction requests until told to stop or orphaned."""
    # Ctrl+C in a terminal reaches the whole process group; shutting workers down is the
    # parent's job, and a KeyboardInterrupt here would only be misreported as a parser failure.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_limit_mb and sys.platform.startswith("linux"):
        _limit_memory(memory_limit_mb)
    if low_priority:
        from app.core.priority import lower_process_priority

        lower_process_priority()
    import app.core.extract  # noqa: F401  (fail here, visibly, rather than on the first file)

    # Tells the parent start-up worked, so a later death is a reader's or a file's doing.
    conn.send(READY)

    while True:
        try:
            request: Request = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        if request is None:
            return
        path, max_bytes = request
        reply = _load(path, plugins)
        try:
            conn.send(LOADED)
        except (BrokenPipeError, OSError):
            return
        if reply is None:
            reply = _handle(path, max_bytes, plugins, max_chars)
        if reply[0] == "error" and reply[1] == "memory":
            reply = ("error", "memory", memory_reason(memory_limit_mb))
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("error", "memory", memory_reason(memory_limit_mb)))
            return
        except (BrokenPipeError, OSError):
            return
        if reply[0] == "error" and reply[1] == "memory":
            return  # after a MemoryError the heap may be fragmented; the parent starts a fresh one
