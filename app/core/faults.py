"""Fault injection for the reliability tests: `LANCEDB_SYNC_FAULT=POINT[:N[:error]]`.

At the N-th time (default the 1st) this process reaches the named point, it is killed with
SIGKILL, exactly as a power cut would stop it, or, with `:error`, an `OSError(ENOSPC)` is raised
there, as a full disk would. Every point is a step of the commit protocol, of a purge or of
maintenance; docs/reliability.md lists them with what each one proves. Unset in normal use: one
dictionary lookup per point.
"""

from __future__ import annotations

import errno
import os
import signal

# point -> where it sits (for docs/reliability.md and the tests that walk every point)
POINTS: dict[str, str] = {
    "after-chunks": "a batch's chunks are written, its document rows are not",
    "after-documents": "a batch's document rows are written, the sync state is not",
    "after-mirror": "a batch is committed and mirrored; the next batch has not started",
    "delete-after-documents": "removed documents' rows are deleted, their chunks are not",
    "delete-after-chunks": "removed documents are gone from both tables, the state is not",
    "touch-after-documents": "a touched file's new token is written, the state is not",
    "move-after-chunks": "a renamed file's chunks are copied to its new id, its rows are not",
    "move-after-documents": "a rename is committed in both tables, its old chunks remain",
    "purge-after-documents": "a removed source's document rows are deleted, its chunks are not",
    "purge-after-chunks": "a removed source is gone from both tables, the state is not",
    "maintain-before": "a pass's writes are done, maintenance has not started",
    "maintain-after-indexes": "missing indexes are created, compaction has not run",
    "maintain-between-tables": "the chunks table is compacted, the documents table is not",
    "repair-after-duplicates": "repair removed duplicate chunks and has not put one copy back",
    "repair-after-orphans": "repair deleted orphan chunks; the state does not know yet",
}

_HITS: dict[str, int] = {}


class InjectedFault(OSError):
    """The error a `:error` fault raises: a full disk, at an exact point."""


def fault(point: str) -> None:
    wanted = os.environ.get("LANCEDB_SYNC_FAULT")
    if not wanted:
        return
    name, _, rest = wanted.partition(":")
    if name != point:
        return
    nth, _, mode = rest.partition(":")
    _HITS[point] = _HITS.get(point, 0) + 1
    # Exactly the N-th time: a service that retries in the same process must get past it.
    if _HITS[point] != int(nth or 1):
        return
    if mode == "error":
        raise InjectedFault(errno.ENOSPC, f"No space left on device (injected at {point})")
    os.kill(os.getpid(), signal.SIGKILL)
