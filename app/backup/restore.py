"""Restore: download a snapshot, check every file, and swap it into place.

Nothing on this computer changes until the whole snapshot is here and checked: files go to a
staging folder beside the target (kept, so an interrupted restore resumes), each file's SHA-256
must match the manifest, each table must open at its pinned version with its recorded row count,
and only then do two renames put it in place. Restoring this home's index holds the index's
writer lock throughout, so a sync cannot interleave, and afterwards repairs what a snapshot taken
during a sync can hold and rebuilds the sync-state mirror, so the next sync re-indexes only files
that differ.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.backup.bucket import Bucket
from app.backup.errors import (
    BackupConfigError,
    BackupError,
    IntegrityError,
    RestoreRefusedError,
    UnsafeSnapshotError,
)
from app.backup.s3 import is_missing
from app.backup.snapshot import FileEntry, Snapshot, local_index_dir, sha256_file
from app.backup.transfer import BackupProgress, ProgressCallback, Transfer, run_pool


@dataclass(slots=True)
class RestoreResult:
    snapshot: Snapshot
    target: Path
    files: int
    bytes: int
    seconds: float
    documents_to_redo: int = 0
    sources_restored: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.snapshot.summary(), "target": str(self.target),
                "seconds": round(self.seconds, 3), "documents_to_redo": self.documents_to_redo,
                "sources_restored": self.sources_restored}


def restore_snapshot(settings: Any, bucket: Bucket, snapshot: Snapshot, *,
                     target: Path | None = None, force: bool = False,
                     on_progress: ProgressCallback | None = None,
                     cancel: threading.Event | None = None) -> RestoreResult:
    """Download a snapshot, verify every checksum, and swap it into place.

    Without `target`, it replaces this home's index (holding the writer lock, so a running
    sync cannot interleave), then repairs what a snapshot taken during a sync can hold and
    rebuilds the sync-state mirror, so the next sync re-indexes only files that differ.
    With `target`, the index files go to that folder and nothing else is touched."""
    on_progress = on_progress or (lambda p: None)
    cancel = cancel or threading.Event()
    t0 = time.monotonic()
    home_index = target is None
    dest = (local_index_dir(settings) if home_index else Path(target)).expanduser().resolve()
    tables = (settings.documents_table, settings.chunks_table)
    if home_index and (snapshot.documents_table, snapshot.chunks_table) != tables:
        raise BackupConfigError(
            f"The snapshot's tables are {snapshot.documents_table} and "
            f"{snapshot.chunks_table}, but this index uses {tables[0]} and "
            f"{tables[1]}. Set LANCEDB_TABLE_NAME and LANCEDB_CHUNKS_TABLE_NAME to "
            "the snapshot's names, or restore with --to DIR.")
    if _non_empty_index(dest) and not force:
        raise RestoreRefusedError(
            f"{dest} already holds an index. Restoring would replace it; run again with "
            "--force to do that (the current index is deleted once the restore is in "
            "place).")
    indexer = None
    if home_index:
        from app.core.sync import Indexer

        indexer = Indexer(settings)  # takes the writer lock, or raises IndexLockedError
    try:
        staging = dest.parent / f".{dest.name}.restoring-{snapshot.snapshot_id}"
        try:
            _download(bucket, snapshot, staging, on_progress, cancel)
        except UnsafeSnapshotError:
            # Nothing of a snapshot that tried to escape is worth resuming from.
            shutil.rmtree(staging, ignore_errors=True)
            raise
        on_progress(BackupProgress("verifying", len(snapshot.files), len(snapshot.files)))
        _check_tables(staging, snapshot)
        on_progress(BackupProgress("swapping", len(snapshot.files), len(snapshot.files)))
        _swap_into_place(staging, dest)
        result = RestoreResult(snapshot, dest, len(snapshot.files), snapshot.total_bytes, 0.0)
        if indexer is not None:
            report = indexer.store.repair()
            indexer.rebuild_mirror(report.documents_to_redo)
            indexer.state.close_unfinished_runs("interrupted")
            result.documents_to_redo = len(report.documents_to_redo)
            if not settings.sources and snapshot.sources:
                result.sources_restored = _restore_sources(settings, snapshot)
    finally:
        if indexer is not None:
            indexer.close()
    result.seconds = time.monotonic() - t0
    on_progress(BackupProgress("done", len(snapshot.files), len(snapshot.files)))
    return result


def _download(bucket: Bucket, snapshot: Snapshot, staging: Path, on_progress: ProgressCallback,
              cancel: threading.Event) -> None:
    cfg = bucket.cfg
    base = bucket.root_prefix(snapshot.device_id, snapshot.root)
    wanted = {f.path for f in snapshot.files}
    if staging.is_symlink():  # not a folder an earlier attempt of ours left
        staging.unlink()
    if staging.exists():  # an earlier attempt: keep what it finished, drop anything else
        for p in sorted(staging.rglob("*"), reverse=True):
            rel = p.relative_to(staging).as_posix()
            if p.is_file() and rel not in wanted:
                p.unlink()
    transfer = Transfer("downloading", len(snapshot.files), snapshot.total_bytes, on_progress,
                        cancel)
    tconfig = bucket.transfer_config()

    def one(f: FileEntry) -> None:
        transfer.check()
        path = _inside(staging, f.path)
        if path.is_file() and path.stat().st_size == f.size and sha256_file(path) == f.sha256:
            transfer.file_done(f.path)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        key = base + f.path
        try:
            bucket.client.download_file(cfg.bucket, key, str(part), Callback=transfer.bytes,
                                        Config=tconfig)
        except BackupError:
            raise
        except Exception as exc:
            if is_missing(exc) or "404" in str(exc):
                raise IntegrityError(f"The snapshot is damaged: {f.path} is missing from "
                                     f"the bucket. Restore another snapshot.", f.path) from None
            raise bucket.explain(exc, "get", key) from exc
        digest = sha256_file(part)
        if part.stat().st_size != f.size or digest != f.sha256:
            part.unlink(missing_ok=True)
            raise IntegrityError(
                f"The snapshot is damaged: {f.path} does not match its checksum (sha256 "
                f"{digest[:12]}…, expected {f.sha256[:12]}…). Nothing was changed; restore "
                "another snapshot ('lancedb-sync snapshots' lists them).", f.path)
        os.replace(part, path)
        transfer.file_done(f.path)

    run_pool(one, list(snapshot.files), transfer, cfg.concurrency)


def _check_tables(staging: Path, snapshot: Snapshot) -> None:
    """Each table opens at the pinned version with the recorded row count."""
    import lancedb

    db = lancedb.connect(str(staging))
    for t in snapshot.tables:
        try:
            table = db.open_table(t.name)
            version, rows = int(table.version), table.count_rows()
        except Exception as exc:
            raise BackupError(f"The restored table {t.name} does not open: {exc}") from exc
        if version != t.version or rows != t.rows:
            raise BackupError(f"The restored table {t.name} opens at version {version} with "
                              f"{rows} rows; the snapshot recorded version {t.version} with "
                              f"{t.rows} rows.")


def _restore_sources(settings: Any, snapshot: Snapshot) -> int:
    from app.config import parse_source, save_sources

    sources = tuple(parse_source(dict(s), "the snapshot") for s in snapshot.sources)
    save_sources(settings, sources)
    return len(sources)


def _inside(folder: Path, rel: str) -> Path:
    """`folder / rel` resolved, refused unless it stays inside `folder`.

    The second line of defence behind `check_snapshot` (which refuses such manifests when they
    are read): it also catches what no rule about the text of a path can, such as a symbolic link
    inside a staging folder left from an earlier attempt."""
    root = folder.resolve()
    path = (root / rel).resolve()
    if path == root or not path.is_relative_to(root):
        raise UnsafeSnapshotError(
            f"Restore refused to write {rel!r}: it would land at {path}, outside the staging "
            f"folder {root}. Nothing was changed; restore again, and if this repeats, check "
            "the snapshot manifest in the bucket.", rel)
    return path


def _non_empty_index(path: Path) -> bool:
    if not path.is_dir():
        return False
    for table in path.glob("*.lance"):
        data = table / "data"
        if data.is_dir() and any(data.iterdir()):
            return True
    return False


def _swap_into_place(staging: Path, dest: Path) -> None:
    """Two renames on one file system: the old index moves aside, the new one takes its name.
    A crash between them leaves the old index intact beside an empty name (restore again)."""
    old = dest.parent / f".{dest.name}.replaced-{int(time.time())}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(staging, dest)
    shutil.rmtree(old, ignore_errors=True)
