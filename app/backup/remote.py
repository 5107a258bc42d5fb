"""Search a snapshot where it lies: a read-only Store on the bucket, nothing downloaded.

This works because the bucket's `index/` folder is laid out exactly as LanceDB lays out a
database folder: LanceDB's own object-store client opens it with the same credentials,
endpoint and addressing style as boto3 (s3.storage_options), and each table is checked out at
the version the snapshot pins, so later backups in the same folder do not show through.
"""

from __future__ import annotations

from typing import Any

from app.backup.bucket import Bucket
from app.backup.errors import BackupError
from app.backup.s3 import storage_options
from app.backup.snapshot import Snapshot


def open_snapshot(bucket: Bucket, snapshot: Snapshot) -> Any:
    """A read-only Store on the bucket, each table checked out at the snapshot's version."""
    from app.core.store import Store, StoreError

    session = bucket.session
    uri = f"s3://{bucket.cfg.bucket}/{bucket.device_prefix(snapshot.device_id)}{snapshot.root}"
    try:
        store = Store(uri, snapshot.documents_table, snapshot.chunks_table, model_id="",
                      dim=256, storage_options=storage_options(bucket.cfg, session),
                      read_only=True)
        store.documents.checkout(snapshot.table(snapshot.documents_table).version)
        store.chunks.checkout(snapshot.table(snapshot.chunks_table).version)
    except StoreError as exc:
        raise BackupError(f"Cannot open snapshot {snapshot.ref} on S3: {exc}") from exc
    return store
