"""Taking a snapshot: pin the tables, hold and hash their files, upload what the bucket lacks,
publish the manifest — under the device's lease — then prune.

The order is the crash safety: data and index files are uploaded before the table manifests
that reference them, and the snapshot manifest is written last, so an interrupted backup never
looks complete and the next run uploads only what is still missing. What a snapshot is and what
to upload are decided in snapshot.py (pure); this module does the I/O around those decisions.
See docs/backup.md, "How it works".
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import __version__
from app.backup.bucket import Bucket
from app.backup.catalog import Catalog
from app.backup.errors import BackupBusyError, BackupCancelled, BackupError
from app.backup.identity import Identity
from app.backup.lease import Lease
from app.backup.prune import PruneResult, prune_locked
from app.backup.snapshot import (
    DEFAULT_ROOT,
    FileEntry,
    HashCache,
    LocalFile,
    RemoteObject,
    Snapshot,
    TableEntry,
    UploadPlan,
    latest_manifest,
    local_index_dir,
    manifest_rows,
    new_snapshot_id,
    plan_upload,
    table_files,
)
from app.backup.transfer import BackupProgress, ProgressCallback, Transfer, run_pool

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BackupResult:
    snapshot: Snapshot
    uploaded_files: int
    uploaded_bytes: int
    reused_files: int
    seconds: float
    pruned: PruneResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.snapshot.summary(), "uploaded_files": self.uploaded_files,
                "uploaded_bytes": self.uploaded_bytes, "reused_files": self.reused_files,
                "seconds": round(self.seconds, 3),
                "pruned": self.pruned.as_dict() if self.pruned else None}


def back_up(settings: Any, bucket: Bucket, me: Identity, *,
            on_progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
            prune: bool = True) -> BackupResult:
    """Take a snapshot of the local index and publish it; prune by retention afterwards."""
    from app.core.lock import IndexLockedError, WriterLock

    on_progress = on_progress or (lambda p: None)
    cancel = cancel or threading.Event()
    t0 = time.monotonic()
    index_dir = local_index_dir(settings)
    _ = bucket.client  # fail early on bad settings
    local_lock = WriterLock(settings.state_dir / "backup.lock")
    try:
        local_lock.acquire()
    except IndexLockedError:
        raise BackupBusyError("Another backup of this index is running; wait for it to "
                              "finish.") from None
    lease = Lease.of(bucket, me)
    device = me.device
    held: Path | None = None
    try:
        lease.acquire()
        on_progress(BackupProgress("pinning"))
        pinned = _pin(settings, index_dir)
        files = [f for table, (_v, name) in pinned.items()
                 for f in table_files(index_dir, table, name)]
        held = _hold(index_dir, files)
        source = held or index_dir
        entries = _hash(settings, source, files, pinned, on_progress, cancel)
        tables, model = _describe_tables(settings, source, pinned)
        on_progress(BackupProgress("checking", 0, len(entries)))
        existing = Catalog(bucket).snapshots(device.device_id)
        root = existing[-1].root if existing else DEFAULT_ROOT
        plan = _plan(bucket, device.device_id, root, entries, existing)
        if plan.conflicts:
            # A table was dropped and created again (a re-embed): its manifests reuse names
            # an older snapshot holds. Start a new root instead of overwriting them.
            root = f"{DEFAULT_ROOT}-{new_snapshot_id(datetime.now(UTC))}"
            log.info("backup: %d paths changed meaning (%s…); new root %s",
                     len(plan.conflicts), plan.conflicts[0], root)
            plan = _plan(bucket, device.device_id, root, entries, [])
        _upload(bucket, device.device_id, source, root, plan, on_progress, cancel, lease)
        now = datetime.now(UTC)
        snapshot = Snapshot(
            snapshot_id=new_snapshot_id(now), device_id=device.device_id,
            device_name=device.name, machine=me.machine,
            created_at=now.isoformat().replace("+00:00", "Z"), app_version=__version__,
            schema_version=_schema_version(), root=root,
            documents_table=settings.documents_table,
            chunks_table=settings.chunks_table,
            embed_model=model, tables=tables,
            files=tuple(entries), sources=tuple(_source_dicts(settings.sources)))
        on_progress(BackupProgress("publishing", len(entries), len(entries)))
        if cancel.is_set():
            raise BackupCancelled("The backup job was cancelled before it was published.")
        bucket.put(bucket.snapshot_key(device.device_id, snapshot.snapshot_id),
                   snapshot.to_json())
        pruned = prune_locked(settings, bucket, me, lease, sweep=False) if prune else None
        result = BackupResult(snapshot, len(plan.upload), plan.upload_bytes,
                              len(plan.present), time.monotonic() - t0, pruned)
        on_progress(BackupProgress("done", len(entries), len(entries),
                                   plan.upload_bytes, plan.upload_bytes))
        log.info("backup %s: %d files, %d uploaded (%d bytes) in %.1f s", snapshot.ref,
                 len(entries), result.uploaded_files, result.uploaded_bytes, result.seconds)
        return result
    finally:
        if held is not None:
            shutil.rmtree(held, ignore_errors=True)
        lease.release()
        local_lock.release()


def _pin(settings: Any, index_dir: Path) -> dict[str, tuple[int, str]]:
    """Pin the newest version of each table: documents first (see snapshot.py).

    When no writer is active we hold the writer lock for the moment of the pin, so the pair
    is exactly a committed state; with a writer active, the pair is crash-consistent."""
    from app.core.lock import IndexLockedError, IndexWriterLock

    lock = IndexWriterLock(settings.index_uri, settings.state_dir)
    try:
        lock.acquire()
    except IndexLockedError:
        lock = None  # type: ignore[assignment]
    try:
        pinned: dict[str, tuple[int, str]] = {}
        for table in (settings.documents_table, settings.chunks_table):
            found = latest_manifest(index_dir / f"{table}.lance")
            if found is None:
                raise BackupError(f"There is nothing to back up yet: the index at "
                                  f"{index_dir} has no table {table!r}. Run a sync first.")
            pinned[table] = found
        return pinned
    finally:
        if lock is not None:
            lock.release()


def _hold(index_dir: Path, files: list[LocalFile]) -> Path | None:
    """Hard-link the pinned files into a folder beside the index, so the writer's cleanup of
    old versions (after ten minutes) cannot delete them under a long upload. None where links
    are not possible (another file system, no support): then the files are read in place."""
    held = index_dir.parent / f".{index_dir.name}.backup-pin"
    shutil.rmtree(held, ignore_errors=True)
    try:
        for f in files:
            dst = held / f.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(index_dir / f.path, dst)
            except FileNotFoundError:
                continue  # cleaned up since the listing: not part of the pinned version
    except OSError:
        shutil.rmtree(held, ignore_errors=True)
        return None
    return held


def _hash(settings: Any, index_dir: Path, files: list[LocalFile],
          pinned: Mapping[str, tuple[int, str]], on_progress: ProgressCallback,
          cancel: threading.Event) -> list[FileEntry]:
    cache = HashCache(settings.state_dir / "backup-hashes.json")
    entries = []
    for i, f in enumerate(files):
        if cancel.is_set():
            raise BackupCancelled("The backup job was cancelled.")
        try:
            digest = cache.digest(index_dir, f)
        except FileNotFoundError:
            continue  # removed by the writer's cleanup: not referenced by the pinned version
        entries.append(FileEntry(f.path, f.size, digest))
        if i % 50 == 0:
            on_progress(BackupProgress("hashing", i, len(files), current=f.path))
    cache.save(e.path for e in entries)
    manifests = {f"{t}.lance/_versions/{name}" for t, (_v, name) in pinned.items()}
    missing = manifests - {e.path for e in entries}
    if missing:
        raise BackupError("The index changed during the backup (a pinned version was "
                          "cleaned up); run the backup again.")
    return entries


def _describe_tables(settings: Any, index_dir: Path, pinned: Mapping[str, tuple[int, str]]
                     ) -> tuple[tuple[TableEntry, ...], str]:
    """Each pinned table's row count at its version, and the index's embedding model —
    without importing LanceDB when the manifests and the sync state can tell."""
    entries = []
    for table, (version, name) in pinned.items():
        manifest = f"{table}.lance/_versions/{name}"
        try:
            rows = manifest_rows(index_dir / manifest)
        except (ValueError, OSError, struct.error):
            import lancedb

            t = lancedb.connect(str(index_dir)).open_table(table)
            t.checkout(version)
            rows = t.count_rows()
        entries.append(TableEntry(table, version, rows, manifest))
    return tuple(entries), _index_model(settings)


def _index_model(settings: Any) -> str:
    from app.core.state import read_meta

    return read_meta(settings.state_db_path, "index_model") or ""


def _plan(bucket: Bucket, device_id: str, root: str, entries: list[FileEntry],
          existing: list[Snapshot]) -> UploadPlan:
    base = bucket.root_prefix(device_id, root)
    sizes = bucket.objects(base)
    referenced = {f.path: f.sha256 for s in existing if s.root == root for f in s.files}
    unknown = [e for e in entries
               if e.path in sizes and sizes[e.path] == e.size and e.path not in referenced]
    # Objects no snapshot lists yet (left by an interrupted run): read their checksum.
    meta: dict[str, str | None] = {}
    if unknown:

        def head(e: FileEntry) -> tuple[str, str | None]:
            r = bucket.head(base + e.path)
            return e.path, r.get("Metadata", {}).get("sha256")

        with ThreadPoolExecutor(bucket.cfg.concurrency) as pool:
            meta = dict(pool.map(head, unknown))
    remote = {p: RemoteObject(size, referenced.get(p) or meta.get(p))
              for p, size in sizes.items()}
    return plan_upload(entries, remote, referenced)


def _upload(bucket: Bucket, device_id: str, index_dir: Path, root: str, plan: UploadPlan,
            on_progress: ProgressCallback, cancel: threading.Event, lease: Lease) -> None:
    cfg = bucket.cfg
    base = bucket.root_prefix(device_id, root)
    renew_lock = threading.Lock()

    def renew() -> None:
        with renew_lock:
            lease.renew()

    transfer = Transfer("uploading", len(plan.upload), plan.upload_bytes, on_progress, cancel,
                        renew)
    # BACKUP_MAX_BANDWIDTH_MB is for the whole backup; boto3 limits each file's transfer.
    per_file_bw = cfg.max_bandwidth // cfg.concurrency if cfg.max_bandwidth else None
    tconfig = bucket.transfer_config(max_bandwidth=per_file_bw)

    def one(f: FileEntry) -> None:
        transfer.check()
        key = base + f.path
        extra = {"Metadata": {"sha256": f.sha256}, **cfg.put_args()}
        try:
            bucket.client.upload_file(str(index_dir / f.path), cfg.bucket, key,
                                      ExtraArgs=extra, Callback=transfer.bytes, Config=tconfig)
        except FileNotFoundError:
            raise BackupError(f"The index changed during the backup ({f.path} was cleaned "
                              "up by the writer); run the backup again.") from None
        except BackupError:
            raise
        except Exception as exc:
            raise bucket.explain(exc, "put", key) from exc
        transfer.file_done(f.path)

    data = [f for f in plan.upload if not f.is_table_manifest]
    manifests = [f for f in plan.upload if f.is_table_manifest]
    # Table manifests go after all their data, so a table version in the bucket is whole.
    for group in (data, manifests):
        run_pool(one, group, transfer, cfg.concurrency)


def _schema_version() -> int:
    from app.core.records import SCHEMA_VERSION

    return SCHEMA_VERSION


def _source_dicts(sources: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"source_id": s.source_id, "source_type": s.source_type.value,
             "enabled": s.enabled, "config": dict(s.config),
             **({"poll_interval": s.poll_interval} if s.poll_interval else {})}
            for s in sources]
