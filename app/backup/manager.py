"""`BackupManager`: backup, list, restore, verify and prune snapshots; search one on S3.

Bucket layout (under `S3_PREFIX`):

    devices/<device-id>/lease.json                 the writer lease (see s3.Lease)
    devices/<device-id>/snapshots/<snapshot>.json  one snapshot manifest each (written last)
    devices/<device-id>/index/<table>.lance/…      the index files, shared by all snapshots

A snapshot exists once its manifest is written; objects are uploaded before it, table manifests
after their data, so an interrupted backup never looks complete and a re-run uploads only what
the bucket lacks. `index/` is a LanceDB database as LanceDB itself lays it out, so a snapshot can
be searched in place (each table checked out at the version the snapshot pins).

All methods block; run them off the event loop. Progress callbacks are called from worker
threads, one at a time; `cancel` is checked between and inside transfers.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import __version__
from app.backup.bucket import Bucket
from app.backup.connection import Check, test_connection
from app.backup.errors import (
    BackupBusyError,
    BackupCancelled,
    BackupConfigError,
    BackupError,
    IntegrityError,
    RestoreRefusedError,
    SnapshotNotFoundError,
    UnsafeSnapshotError,
)
from app.backup.identity import Device, Identity
from app.backup.lease import Lease
from app.backup.s3 import CredentialsProvider, S3Settings, is_missing, storage_options
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
    manifest_rows,
    new_snapshot_id,
    plan_retention,
    plan_upload,
    sha256_file,
    table_files,
    unreferenced,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[["BackupProgress"], None]


@dataclass(slots=True)
class BackupProgress:
    phase: str  # pinning | hashing | checking | uploading | publishing | pruning |
    #             downloading | verifying | swapping | done
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    current: str = ""


@dataclass(slots=True)
class PruneResult:
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    deleted_objects: int = 0
    deleted_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "dropped": self.dropped,
                "deleted_objects": self.deleted_objects, "deleted_bytes": self.deleted_bytes}


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


@dataclass(slots=True)
class VerifyResult:
    snapshot: Snapshot
    checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class ChooseSnapshotError(SnapshotNotFoundError):
    """The bucket holds several devices; the person must say which one."""

    def __init__(self, message: str, devices: list[tuple[str, str, int]]) -> None:
        super().__init__(message)
        self.devices = devices


class _Transfer:
    """Shared progress of a pool of transfers; raises BackupCancelled inside boto3 callbacks."""

    def __init__(self, phase: str, files_total: int, bytes_total: int,
                 on_progress: ProgressCallback, cancel: threading.Event,
                 tick: Callable[[], None] = lambda: None) -> None:
        self.progress = BackupProgress(phase, 0, files_total, 0, bytes_total)
        self.on_progress, self.cancel, self.tick = on_progress, cancel, tick
        self.failed = threading.Event()
        self._lock = threading.Lock()
        self._last = 0.0

    def check(self) -> None:
        if self.cancel.is_set():
            raise BackupCancelled("The backup job was cancelled.")
        if self.failed.is_set():
            raise BackupCancelled("stopped: another transfer failed")

    def bytes(self, n: int) -> None:
        self.check()
        with self._lock:
            self.progress.bytes_done += n
            now = time.monotonic()
            if now - self._last >= 0.2:
                self._last = now
                self._emit()

    def file_done(self, path: str) -> None:
        with self._lock:
            self.progress.files_done += 1
            self.progress.current = path
            self._emit()
        self.tick()

    def _emit(self) -> None:
        try:
            self.on_progress(BackupProgress(**{k: getattr(self.progress, k) for k in (
                "phase", "files_done", "files_total", "bytes_done", "bytes_total", "current")}))
        except Exception:
            log.exception("backup progress callback failed")


class BackupManager:
    def __init__(self, settings: Any, *, credentials_provider: CredentialsProvider | None = None,
                 machine: str | None = None) -> None:
        self.settings = settings
        self.credentials_provider = credentials_provider
        self.bucket = Bucket(settings, credentials_provider)
        self.identity = Identity(settings.paths.data_dir, settings.backup_device_name, machine)

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def cfg(self) -> S3Settings:
        return self.bucket.cfg

    @property
    def client(self) -> Any:
        return self.bucket.client

    @property
    def device(self) -> Device:
        return self.identity.device

    @property
    def machine(self) -> str:
        return self.identity.machine

    def device_prefix(self, device_id: str | None = None) -> str:
        return self.bucket.device_prefix(device_id or self.device.device_id)

    def _index_dir(self) -> Path:
        folder = self.settings.index_dir
        if folder is None:
            raise BackupConfigError(f"Backups need a local index folder; LANCEDB_URI is "
                                    f"{self.settings.index_uri}.")
        return folder

    def _tables(self) -> tuple[str, str]:
        return self.settings.documents_table, self.settings.chunks_table

    def test_connection(self) -> list[Check]:
        return test_connection(self.client, self.cfg)

    # -- listing snapshots ----------------------------------------------------------------------

    def device_ids(self) -> list[str]:
        out: list[str] = []
        for page in self.bucket.pages(f"{self.cfg.prefix}devices/", "/"):
            for cp in page.get("CommonPrefixes", []):
                out.append(cp["Prefix"].rstrip("/").rsplit("/", 1)[-1])
        return sorted(out)

    def snapshots(self, device_id: str | None = None) -> list[Snapshot]:
        """Complete snapshots (their manifest is written), oldest first."""
        devices = [device_id] if device_id else self.device_ids()
        out: list[Snapshot] = []
        for dev in devices:
            for key in self._snapshot_keys(dev):
                snap = self._read_snapshot(key)
                if snap is not None:
                    out.append(snap)
        return sorted(out, key=lambda s: (s.created_at, s.snapshot_id))

    def _snapshot_keys(self, device_id: str) -> list[str]:
        keys = []
        for page in self.bucket.pages(f"{self.device_prefix(device_id)}snapshots/"):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
        return keys

    def _read_snapshot(self, key: str) -> Snapshot | None:
        """The snapshot a manifest object describes; None if it does not parse (skipped with a
        warning, as before). A manifest that parses but names unsafe paths raises
        UnsafeSnapshotError instead: skipping it would quietly hand restore an older snapshot
        and hide that someone altered the bucket."""
        body = self.bucket.get(key)
        try:
            return Snapshot.from_json(body, f"The snapshot manifest s3://{self.cfg.bucket}/{key}")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping unreadable snapshot manifest %s: %s", key, exc)
            return None

    def resolve(self, spec: str | None) -> Snapshot:
        """`None` (the latest, if the bucket holds one device), `DEVICE` (its latest) or
        `DEVICE/SNAPSHOT` (an id, a unique prefix of one, or `latest`). DEVICE is an id or a
        name."""
        device_part, _, snap_part = (spec or "").partition("/")
        snaps = self.snapshots()
        if not snaps:
            raise SnapshotNotFoundError(f"There are no snapshots in {self.cfg.where} yet. Run "
                                        "'lancedb-sync backup' on the device to back up.")
        if device_part:
            wanted = device_part.lower()
            by_id = [s for s in snaps if s.device_id == wanted]
            chosen = by_id or [s for s in snaps if s.device_name.lower() == wanted]
            if not chosen:
                chosen = [s for s in snaps if s.device_id.startswith(wanted)]
            if not chosen:
                raise SnapshotNotFoundError(
                    f"No device {device_part!r} in {self.cfg.where}. See 'lancedb-sync "
                    "snapshots' for the devices and their snapshots.")
            if len({s.device_id for s in chosen}) > 1:
                raise SnapshotNotFoundError(
                    f"{device_part!r} names several devices ("
                    f"{', '.join(sorted({s.device_id for s in chosen}))}); use the device id.")
            snaps = chosen
        else:
            devices: dict[str, tuple[str, int]] = {}
            for s in snaps:
                devices[s.device_id] = (s.device_name, devices.get(s.device_id, ("", 0))[1] + 1)
            if len(devices) > 1:
                listing = [(d, name, n) for d, (name, n) in sorted(devices.items())]
                raise ChooseSnapshotError(
                    "The bucket holds snapshots of several devices; choose one: " + "; ".join(
                        f"{d} ({name}, {n} snapshots)" for d, name, n in listing), listing)
        if not snap_part or snap_part == "latest":
            return snaps[-1]
        matches = [s for s in snaps if s.snapshot_id == snap_part] or \
            [s for s in snaps if s.snapshot_id.startswith(snap_part)]
        if len(matches) != 1:
            what = "No" if not matches else "More than one"
            raise SnapshotNotFoundError(
                f"{what} snapshot {snap_part!r} of device {snaps[-1].device_id}. See "
                "'lancedb-sync snapshots'.")
        return matches[0]

    # -- backup ---------------------------------------------------------------------------------

    def backup(self, *, on_progress: ProgressCallback | None = None,
               cancel: threading.Event | None = None, prune: bool = True) -> BackupResult:
        """Take a snapshot of the local index and publish it; prune by retention afterwards."""
        from app.core.lock import IndexLockedError, WriterLock

        on_progress = on_progress or (lambda p: None)
        cancel = cancel or threading.Event()
        t0 = time.monotonic()
        index_dir = self._index_dir()
        _ = self.client  # fail early on bad settings
        local_lock = WriterLock(self.settings.state_dir / "backup.lock")
        try:
            local_lock.acquire()
        except IndexLockedError:
            raise BackupBusyError("Another backup of this index is running; wait for it to "
                                  "finish.") from None
        lease = self._lease()
        held: Path | None = None
        try:
            lease.acquire()
            on_progress(BackupProgress("pinning"))
            pinned = self._pin(index_dir)
            files = [f for table, (_v, name) in pinned.items()
                     for f in table_files(index_dir, table, name)]
            held = _hold(index_dir, files)
            source = held or index_dir
            entries = self._hash(source, files, pinned, on_progress, cancel)
            tables, model = self._describe_tables(source, pinned)
            on_progress(BackupProgress("checking", 0, len(entries)))
            existing = self.snapshots(self.device.device_id)
            root = existing[-1].root if existing else DEFAULT_ROOT
            plan = self._plan(root, entries, existing)
            if plan.conflicts:
                # A table was dropped and created again (a re-embed): its manifests reuse names
                # an older snapshot holds. Start a new root instead of overwriting them.
                root = f"{DEFAULT_ROOT}-{new_snapshot_id(datetime.now(UTC))}"
                log.info("backup: %d paths changed meaning (%s…); new root %s",
                         len(plan.conflicts), plan.conflicts[0], root)
                plan = self._plan(root, entries, [])
            self._upload(source, root, plan, on_progress, cancel, lease)
            now = datetime.now(UTC)
            snapshot = Snapshot(
                snapshot_id=new_snapshot_id(now), device_id=self.device.device_id,
                device_name=self.device.name, machine=self.machine,
                created_at=now.isoformat().replace("+00:00", "Z"), app_version=__version__,
                schema_version=_schema_version(), root=root,
                documents_table=self.settings.documents_table,
                chunks_table=self.settings.chunks_table,
                embed_model=model, tables=tables,
                files=tuple(entries), sources=tuple(_source_dicts(self.settings.sources)))
            on_progress(BackupProgress("publishing", len(entries), len(entries)))
            if cancel.is_set():
                raise BackupCancelled("The backup job was cancelled before it was published.")
            key = f"{self.device_prefix()}snapshots/{snapshot.snapshot_id}.json"
            self.bucket.put(key, snapshot.to_json())
            pruned = self._prune_locked(lease, sweep=False) if prune else None
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

    def _lease(self) -> Lease:
        return Lease.of(self.bucket, self.identity)

    def _pin(self, index_dir: Path) -> dict[str, tuple[int, str]]:
        """Pin the newest version of each table: documents first (see snapshot.py).

        When no writer is active we hold the writer lock for the moment of the pin, so the pair
        is exactly a committed state; with a writer active, the pair is crash-consistent."""
        from app.core.lock import IndexLockedError, IndexWriterLock

        lock = IndexWriterLock(self.settings.index_uri, self.settings.state_dir)
        try:
            lock.acquire()
        except IndexLockedError:
            lock = None  # type: ignore[assignment]
        try:
            pinned: dict[str, tuple[int, str]] = {}
            for table in self._tables():
                found = latest_manifest(index_dir / f"{table}.lance")
                if found is None:
                    raise BackupError(f"There is nothing to back up yet: the index at "
                                      f"{index_dir} has no table {table!r}. Run a sync first.")
                pinned[table] = found
            return pinned
        finally:
            if lock is not None:
                lock.release()

    def _hash(self, index_dir: Path, files: list[LocalFile],
              pinned: Mapping[str, tuple[int, str]], on_progress: ProgressCallback,
              cancel: threading.Event) -> list[FileEntry]:
        cache = HashCache(self.settings.state_dir / "backup-hashes.json")
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

    def _describe_tables(self, index_dir: Path, pinned: Mapping[str, tuple[int, str]]
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
        return tuple(entries), self._index_model()

    def _index_model(self) -> str:
        from app.core.state import read_meta

        return read_meta(self.settings.state_db_path, "index_model") or ""

    def _remote_objects(self, root: str) -> dict[str, int]:
        base = f"{self.device_prefix()}{root}/"
        out: dict[str, int] = {}
        for page in self.bucket.pages(base):
            for o in page.get("Contents", []):
                out[o["Key"][len(base):]] = int(o["Size"])
        return out

    def _plan(self, root: str, entries: list[FileEntry],
              existing: list[Snapshot]) -> UploadPlan:
        sizes = self._remote_objects(root)
        referenced = {f.path: f.sha256 for s in existing if s.root == root for f in s.files}
        unknown = [e for e in entries
                   if e.path in sizes and sizes[e.path] == e.size and e.path not in referenced]
        # Objects no snapshot lists yet (left by an interrupted run): read their checksum.
        meta: dict[str, str | None] = {}
        if unknown:
            base = f"{self.device_prefix()}{root}/"

            def head(e: FileEntry) -> tuple[str, str | None]:
                r = self.bucket.head(base + e.path)
                return e.path, r.get("Metadata", {}).get("sha256")

            with ThreadPoolExecutor(self.cfg.concurrency) as pool:
                meta = dict(pool.map(head, unknown))
        remote = {p: RemoteObject(size, referenced.get(p) or meta.get(p))
                  for p, size in sizes.items()}
        return plan_upload(entries, remote, referenced)

    def _upload(self, index_dir: Path, root: str, plan: UploadPlan,
                on_progress: ProgressCallback, cancel: threading.Event, lease: Lease) -> None:
        from boto3.s3.transfer import TransferConfig

        cfg = self.cfg
        base = f"{self.device_prefix()}{root}/"
        renew_lock = threading.Lock()

        def renew() -> None:
            with renew_lock:
                lease.renew()

        transfer = _Transfer("uploading", len(plan.upload), plan.upload_bytes, on_progress,
                             cancel, renew)
        per_file_bw = cfg.max_bandwidth // cfg.concurrency if cfg.max_bandwidth else None
        tconfig = TransferConfig(multipart_threshold=cfg.chunk_size,
                                 multipart_chunksize=cfg.chunk_size, max_concurrency=2,
                                 max_bandwidth=per_file_bw)

        def one(f: FileEntry) -> None:
            transfer.check()
            key = base + f.path
            extra = {"Metadata": {"sha256": f.sha256}, **cfg.put_args()}
            try:
                self.client.upload_file(str(index_dir / f.path), cfg.bucket, key,
                                        ExtraArgs=extra, Callback=transfer.bytes,
                                        Config=tconfig)
            except FileNotFoundError:
                raise BackupError(f"The index changed during the backup ({f.path} was cleaned "
                                  "up by the writer); run the backup again.") from None
            except BackupError:
                raise
            except Exception as exc:
                raise self.bucket.explain(exc, "put", key) from exc
            transfer.file_done(f.path)

        data = [f for f in plan.upload if not f.is_table_manifest]
        manifests = [f for f in plan.upload if f.is_table_manifest]
        # Table manifests go after all their data, so a table version in the bucket is whole.
        for group in (data, manifests):
            self._run_pool(one, group, transfer)

    def _run_pool(self, fn: Callable[[Any], None], items: list[Any], transfer: _Transfer) -> None:
        if not items:
            return
        errors: list[BaseException] = []
        with ThreadPoolExecutor(self.cfg.concurrency, thread_name_prefix="backup") as pool:
            futures = [pool.submit(fn, item) for item in items]
            for fut in futures:
                exc = fut.exception()
                if exc is not None:
                    transfer.failed.set()
                    errors.append(exc)
        if errors:
            if transfer.cancel.is_set():
                raise BackupCancelled("The backup job was cancelled; what was transferred is "
                                      "kept and the next run continues from there.")
            real = [e for e in errors if not (isinstance(e, BackupCancelled)
                                               and "another transfer failed" in str(e))]
            raise (real or errors)[0]

    # -- retention ------------------------------------------------------------------------------

    def prune(self, *, keep_last: int | None = None, keep_days: int | None = None) -> PruneResult:
        lease = self._lease()
        lease.acquire()
        try:
            return self._prune_locked(lease, keep_last, keep_days)
        finally:
            lease.release()

    def _prune_locked(self, lease: Lease, keep_last: int | None = None,
                      keep_days: int | None = None, *, sweep: bool = True) -> PruneResult:
        """Drop the snapshots retention does not keep, then delete the objects no kept snapshot
        lists. With `sweep=False` (after a backup) objects are only looked at when a snapshot
        was dropped; `backup prune` always sweeps (leftovers of interrupted runs too)."""
        keep_last = self.settings.backup_keep_last if keep_last is None else keep_last
        keep_days = self.settings.backup_keep_days if keep_days is None else keep_days
        prefix = self.device_prefix()
        keys = self._snapshot_keys(self.device.device_id)
        snaps = [self._read_snapshot(k) for k in keys]
        readable = [s for s in snaps if s is not None]
        plan = plan_retention(readable, keep_last, keep_days)
        result = PruneResult([s.snapshot_id for s in plan.keep],
                             [s.snapshot_id for s in plan.drop])
        # Snapshot manifests first: a snapshot stops existing before any of its files go.
        self.bucket.delete_many([f"{prefix}snapshots/{s.snapshot_id}.json" for s in plan.drop])
        if len(readable) != len(snaps):
            log.warning("prune: some snapshot manifests are unreadable; no files deleted")
            return result
        if not sweep and not plan.drop:
            return result
        lease.renew()
        objects: dict[str, int] = {}
        for page in self.bucket.pages(prefix):
            for o in page.get("Contents", []):
                rel = o["Key"][len(prefix):]
                if rel.split("/", 1)[0].startswith(DEFAULT_ROOT) and "/" in rel:
                    objects[rel] = int(o["Size"])
        doomed = unreferenced(objects, plan.keep)
        self.bucket.delete_many([prefix + rel for rel in doomed])
        result.deleted_objects = len(doomed)
        result.deleted_bytes = sum(objects[r] for r in doomed)
        return result

    # -- verify ---------------------------------------------------------------------------------

    def verify(self, snapshot: Snapshot, *, download: bool = False,
               on_progress: ProgressCallback | None = None,
               cancel: threading.Event | None = None) -> VerifyResult:
        """Every file of the snapshot is in the bucket with its size and checksum. Without
        `download`, the checksum is the one stored with the object at upload; with it, every
        object is read back and hashed."""
        on_progress = on_progress or (lambda p: None)
        cancel = cancel or threading.Event()
        base = f"{self.device_prefix(snapshot.device_id)}{snapshot.root}/"
        problems: list[str] = []
        lock = threading.Lock()
        transfer = _Transfer("verifying", len(snapshot.files), snapshot.total_bytes,
                             on_progress, cancel)

        def one(f: FileEntry) -> None:
            transfer.check()
            key = base + f.path
            try:
                if download:
                    got = self._fetch_digest(key, transfer)
                    size = None
                else:
                    head = self.client.head_object(Bucket=self.cfg.bucket, Key=key)
                    got = head.get("Metadata", {}).get("sha256")
                    size = int(head["ContentLength"])
            except Exception as exc:
                if is_missing(exc):
                    with lock:
                        problems.append(f"{f.path}: missing from the bucket")
                    return
                raise self.bucket.explain(exc, "get", key) from exc
            with lock:
                if size is not None and size != f.size:
                    problems.append(f"{f.path}: size {size} in the bucket, {f.size} expected")
                elif got is None:
                    problems.append(f"{f.path}: replaced in the bucket since the backup (it "
                                    "carries no checksum); 'backup verify --download' checks "
                                    "its contents")
                elif got != f.sha256:
                    problems.append(f"{f.path}: checksum mismatch (sha256 {got[:12]}…, "
                                    f"expected {f.sha256[:12]}…)")
            transfer.file_done(f.path)

        self._run_pool(one, list(snapshot.files), transfer)
        return VerifyResult(snapshot, len(snapshot.files), sorted(problems))

    def _fetch_digest(self, key: str, transfer: _Transfer) -> str:
        import hashlib

        h = hashlib.sha256()
        body = self.client.get_object(Bucket=self.cfg.bucket, Key=key)["Body"]
        for block in body.iter_chunks(1 << 20):
            h.update(block)
            transfer.bytes(len(block))
        return h.hexdigest()

    # -- restore --------------------------------------------------------------------------------

    def restore(self, snapshot: Snapshot, *, target: Path | None = None, force: bool = False,
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
        dest = (self._index_dir() if home_index else Path(target)).expanduser().resolve()
        if home_index and (snapshot.documents_table, snapshot.chunks_table) != self._tables():
            raise BackupConfigError(
                f"The snapshot's tables are {snapshot.documents_table} and "
                f"{snapshot.chunks_table}, but this index uses {self._tables()[0]} and "
                f"{self._tables()[1]}. Set LANCEDB_TABLE_NAME and LANCEDB_CHUNKS_TABLE_NAME to "
                "the snapshot's names, or restore with --to DIR.")
        if _non_empty_index(dest) and not force:
            raise RestoreRefusedError(
                f"{dest} already holds an index. Restoring would replace it; run again with "
                "--force to do that (the current index is deleted once the restore is in "
                "place).")
        indexer = None
        if home_index:
            from app.core.sync import Indexer

            indexer = Indexer(self.settings)  # takes the writer lock, or raises IndexLockedError
        try:
            staging = dest.parent / f".{dest.name}.restoring-{snapshot.snapshot_id}"
            try:
                self._download(snapshot, staging, on_progress, cancel)
            except UnsafeSnapshotError:
                # Nothing of a snapshot that tried to escape is worth resuming from.
                shutil.rmtree(staging, ignore_errors=True)
                raise
            on_progress(BackupProgress("verifying", len(snapshot.files), len(snapshot.files)))
            self._check_tables(staging, snapshot)
            on_progress(BackupProgress("swapping", len(snapshot.files), len(snapshot.files)))
            _swap_into_place(staging, dest)
            result = RestoreResult(snapshot, dest, len(snapshot.files), snapshot.total_bytes, 0.0)
            if indexer is not None:
                report = indexer.store.repair()
                indexer.rebuild_mirror(report.documents_to_redo)
                indexer.state.close_unfinished_runs("interrupted")
                result.documents_to_redo = len(report.documents_to_redo)
                if not self.settings.sources and snapshot.sources:
                    result.sources_restored = self._restore_sources(snapshot)
        finally:
            if indexer is not None:
                indexer.close()
        result.seconds = time.monotonic() - t0
        on_progress(BackupProgress("done", len(snapshot.files), len(snapshot.files)))
        return result

    def _download(self, snapshot: Snapshot, staging: Path, on_progress: ProgressCallback,
                  cancel: threading.Event) -> None:
        from boto3.s3.transfer import TransferConfig

        cfg = self.cfg
        base = f"{self.device_prefix(snapshot.device_id)}{snapshot.root}/"
        wanted = {f.path for f in snapshot.files}
        if staging.is_symlink():  # not a folder an earlier attempt of ours left
            staging.unlink()
        if staging.exists():  # an earlier attempt: keep what it finished, drop anything else
            for p in sorted(staging.rglob("*"), reverse=True):
                rel = p.relative_to(staging).as_posix()
                if p.is_file() and rel not in wanted:
                    p.unlink()
        transfer = _Transfer("downloading", len(snapshot.files), snapshot.total_bytes,
                             on_progress, cancel)
        tconfig = TransferConfig(multipart_threshold=cfg.chunk_size,
                                 multipart_chunksize=cfg.chunk_size, max_concurrency=2)

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
                self.client.download_file(cfg.bucket, key, str(part), Callback=transfer.bytes,
                                          Config=tconfig)
            except BackupError:
                raise
            except Exception as exc:
                if is_missing(exc) or "404" in str(exc):
                    raise IntegrityError(f"The snapshot is damaged: {f.path} is missing from "
                                         f"the bucket. Restore another snapshot.",
                                         f.path) from None
                raise self.bucket.explain(exc, "get", key) from exc
            digest = sha256_file(part)
            if part.stat().st_size != f.size or digest != f.sha256:
                part.unlink(missing_ok=True)
                raise IntegrityError(
                    f"The snapshot is damaged: {f.path} does not match its checksum (sha256 "
                    f"{digest[:12]}…, expected {f.sha256[:12]}…). Nothing was changed; restore "
                    "another snapshot ('lancedb-sync snapshots' lists them).", f.path)
            os.replace(part, path)
            transfer.file_done(f.path)

        self._run_pool(one, list(snapshot.files), transfer)

    def _check_tables(self, staging: Path, snapshot: Snapshot) -> None:
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

    def _restore_sources(self, snapshot: Snapshot) -> int:
        from app.config import parse_source, save_sources

        sources = tuple(parse_source(dict(s), "the snapshot") for s in snapshot.sources)
        save_sources(self.settings, sources)
        return len(sources)

    # -- remote read-only access ----------------------------------------------------------------

    def open_remote(self, snapshot: Snapshot):
        """A read-only Store on the bucket, each table checked out at the snapshot's version."""
        from app.core.store import Store, StoreError

        uri = f"s3://{self.cfg.bucket}/{self.device_prefix(snapshot.device_id)}{snapshot.root}"
        try:
            store = Store(uri, snapshot.documents_table, snapshot.chunks_table, model_id="",
                          dim=256, storage_options=storage_options(self.cfg, self.bucket.session),
                          read_only=True)
            store.documents.checkout(snapshot.table(snapshot.documents_table).version)
            store.chunks.checkout(snapshot.table(snapshot.chunks_table).version)
        except StoreError as exc:
            raise BackupError(f"Cannot open snapshot {snapshot.ref} on S3: {exc}") from exc
        return store


def _schema_version() -> int:
    from app.core.records import SCHEMA_VERSION

    return SCHEMA_VERSION


def _source_dicts(sources: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"source_id": s.source_id, "source_type": s.source_type.value,
             "enabled": s.enabled, "config": dict(s.config),
             **({"poll_interval": s.poll_interval} if s.poll_interval else {})}
            for s in sources]


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

