"""One writer per index: exclusive lock files held for as long as a process writes.

Two locks, taken together: one beside the index folder (so two homes, or two state folders,
pointed at the same `LANCEDB_URI` cannot both write to it) and one in the state folder (so two
indexes cannot share one sync state). A remote index (`s3://…`) has no folder to lock beside;
its lock lives in the state folder only, which protects it on this machine.

The lock file names its holder (process id, command, home) so the second writer can say who
holds the index.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from app.paths import local_index_folder


class IndexLockedError(Exception):
    """Another process is writing to this index."""


def index_lock_path(index_uri: str) -> Path | None:
    """The lock file of a local index: beside its folder, named after it, so it survives the
    folder being swapped by a restore. None for a remote index."""
    folder = local_index_folder(index_uri)
    return None if folder is None else folder.parent / f".{folder.name}.writer.lock"


def holder_description() -> str:
    """Who holds a lock, for the message the next writer gets: process id, host, command and
    home ("pid 4242 on laptop: lancedb-sync run, home /media/usb/lds")."""
    args = list(sys.argv[1:])
    home = os.environ.get("LANCEDB_SYNC_HOME", "")
    if "--home" in args:
        i = args.index("--home")
        home = args[i + 1] if i + 1 < len(args) else home
        del args[i:i + 2]
    command = " ".join(["lancedb-sync", *[a for a in args[:2] if not a.startswith("-")]])
    where = f", home {home}" if home else ""
    return f"pid {os.getpid()} on {socket.gethostname()}: {command}{where}"


class WriterLock:
    def __init__(self, path: Path, what: str = "this index") -> None:
        self.path = path
        self.what = what
        self._fh = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            if os.name == "nt":
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise IndexLockedError(
                f"Another LanceDB Sync process ({holder}) is writing to {self.what}. Wait for it "
                "to finish, or stop it, then try again.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(holder_description())
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class IndexWriterLock:
    """The index's lock and the state folder's lock, taken in that order, both or neither."""

    def __init__(self, index_uri: str, state_dir: Path) -> None:
        self.locks: list[WriterLock] = []
        folder = local_index_folder(index_uri)
        path = index_lock_path(index_uri)
        if folder is not None and path is not None:
            self.locks.append(WriterLock(path, f"the index at {folder}"))
        self.locks.append(WriterLock(Path(state_dir) / "writer.lock",
                                     f"the sync state in {state_dir}"))

    def acquire(self) -> None:
        taken: list[WriterLock] = []
        try:
            for lock in self.locks:
                lock.acquire()
                taken.append(lock)
        except BaseException:
            for lock in reversed(taken):
                lock.release()
            raise

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()

    def __enter__(self) -> IndexWriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
