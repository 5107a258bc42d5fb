"""`BackupManager`: one object for everything a front end does with backups.

The CLI, the tray's Backup window, the service (through auto.AutoBackup), the benchmarks and
the tests hold one of these; each job lives in its own module (backup, restore, verify, prune,
remote, catalog) and this façade only hands them the settings, the bucket and who is writing.
Building one touches neither S3 nor the data folder: the S3 settings, the boto3 client and this
device's id are made on first use, so a job fails on what it checks first.

All methods block; run them off the event loop. Progress callbacks are called from worker
threads, one at a time; `cancel` is checked between and inside transfers.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from app.backup.backup import BackupResult, back_up
from app.backup.bucket import Bucket
from app.backup.catalog import Catalog
from app.backup.connection import Check, test_connection
from app.backup.identity import Device, Identity
from app.backup.prune import PruneResult, prune_snapshots
from app.backup.remote import open_snapshot
from app.backup.restore import RestoreResult, restore_snapshot
from app.backup.s3 import CredentialsProvider, S3Settings
from app.backup.snapshot import Snapshot
from app.backup.transfer import ProgressCallback
from app.backup.verify import VerifyResult, verify_snapshot


class BackupManager:
    def __init__(self, settings: Any, *, credentials_provider: CredentialsProvider | None = None,
                 machine: str | None = None) -> None:
        self.settings = settings
        self.credentials_provider = credentials_provider
        self.bucket = Bucket(settings, credentials_provider)
        self.identity = Identity(settings.paths.data_dir, settings.backup_device_name, machine)
        self.catalog = Catalog(self.bucket)

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

    def test_connection(self) -> list[Check]:
        return test_connection(self.client, self.cfg)

    # -- what the bucket holds ------------------------------------------------------------------

    def device_ids(self) -> list[str]:
        return self.catalog.device_ids()

    def snapshots(self, device_id: str | None = None) -> list[Snapshot]:
        """Complete snapshots (their manifest is written), oldest first."""
        return self.catalog.snapshots(device_id)

    def resolve(self, spec: str | None) -> Snapshot:
        """`None` (the latest, if the bucket holds one device), `DEVICE` (its latest) or
        `DEVICE/SNAPSHOT` (an id, a unique prefix of one, or `latest`). DEVICE is an id or a
        name."""
        return self.catalog.resolve(spec)

    # -- the jobs -------------------------------------------------------------------------------

    def backup(self, *, on_progress: ProgressCallback | None = None,
               cancel: threading.Event | None = None, prune: bool = True) -> BackupResult:
        """Take a snapshot of the local index and publish it; prune by retention afterwards."""
        return back_up(self.settings, self.bucket, self.identity, on_progress=on_progress,
                       cancel=cancel, prune=prune)

    def prune(self, *, keep_last: int | None = None, keep_days: int | None = None) -> PruneResult:
        return prune_snapshots(self.settings, self.bucket, self.identity, keep_last=keep_last,
                               keep_days=keep_days)

    def verify(self, snapshot: Snapshot, *, download: bool = False,
               on_progress: ProgressCallback | None = None,
               cancel: threading.Event | None = None) -> VerifyResult:
        """Every file of the snapshot is in the bucket with its size and checksum (see
        verify.py)."""
        return verify_snapshot(self.bucket, snapshot, download=download,
                               on_progress=on_progress, cancel=cancel)

    def restore(self, snapshot: Snapshot, *, target: Path | None = None, force: bool = False,
                on_progress: ProgressCallback | None = None,
                cancel: threading.Event | None = None) -> RestoreResult:
        """Download a snapshot, verify every checksum, and swap it into place: this home's
        index without `target`, else that folder and nothing else (see restore.py)."""
        return restore_snapshot(self.settings, self.bucket, snapshot, target=target,
                                force=force, on_progress=on_progress, cancel=cancel)

    def open_remote(self, snapshot: Snapshot) -> Any:
        """A read-only Store on the bucket, each table checked out at the snapshot's version."""
        return open_snapshot(self.bucket, snapshot)
