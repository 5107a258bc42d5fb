"""Turning the errors of the layers below (the OS, LanceDB, SQLite) into sentences a person can
act on. Used by every face (CLI, daemon, tray) so a full disk reads the same everywhere."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator

_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# LanceDB (Rust) reports I/O errors as text, e.g. "LanceError(IO): … No space left on device
# (os error 28)"; SQLite as "database or disk is full".
_DISK_FULL_TEXT = ("no space left on device", "os error 28", "disk quota exceeded",
                   "database or disk is full", "os error 122")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_disk_full(exc: BaseException) -> bool:
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS:
            return True
        text = str(e).lower()
        if any(t in text for t in _DISK_FULL_TEXT):
            return True
    return False


def free_mb(path: str) -> float | None:
    try:
        return shutil.disk_usage(path).free / 1e6
    except OSError:
        return None


def disk_full_message(where: str) -> str:
    free = free_mb(where)
    left = f" ({free:,.0f} MB free)" if free is not None else ""
    return (f"The disk holding the index is full{left}: {where}. Free some space there (or "
            "move the index to a larger disk with LANCEDB_URI), then run the sync again; "
            "nothing half-written was kept, and the next sync finishes the repair.")


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"
