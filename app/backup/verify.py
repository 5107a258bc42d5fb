"""`backup verify`: is every file of a snapshot in the bucket, with its size and checksum?

A backup is only worth what can be restored from it, and objects can be deleted or replaced in
the bucket behind the app's back. By default no object is read: each carries the SHA-256 it was
uploaded with (`x-amz-meta-sha256`), so a HEAD per file is enough; `download=True` reads every
object back and hashes it, which also catches bytes that no longer match that metadata.
Problems are collected, not raised: the person wants the whole list.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from app.backup.bucket import Bucket
from app.backup.s3 import is_missing
from app.backup.snapshot import FileEntry, Snapshot
from app.backup.transfer import ProgressCallback, Transfer, run_pool


@dataclass(slots=True)
class VerifyResult:
    snapshot: Snapshot
    checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_snapshot(bucket: Bucket, snapshot: Snapshot, *, download: bool = False,
                    on_progress: ProgressCallback | None = None,
                    cancel: threading.Event | None = None) -> VerifyResult:
    """Every file of the snapshot is in the bucket with its size and checksum. Without
    `download`, the checksum is the one stored with the object at upload; with it, every
    object is read back and hashed."""
    on_progress = on_progress or (lambda p: None)
    cancel = cancel or threading.Event()
    base = bucket.root_prefix(snapshot.device_id, snapshot.root)
    problems: list[str] = []
    lock = threading.Lock()
    transfer = Transfer("verifying", len(snapshot.files), snapshot.total_bytes, on_progress,
                        cancel)

    def one(f: FileEntry) -> None:
        transfer.check()
        key = base + f.path
        try:
            if download:
                got = _fetch_digest(bucket, key, transfer)
                size = None
            else:
                head = bucket.client.head_object(Bucket=bucket.cfg.bucket, Key=key)
                got = head.get("Metadata", {}).get("sha256")
                size = int(head["ContentLength"])
        except Exception as exc:
            if is_missing(exc):
                with lock:
                    problems.append(f"{f.path}: missing from the bucket")
                return
            raise bucket.explain(exc, "get", key) from exc
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

    run_pool(one, list(snapshot.files), transfer, bucket.cfg.concurrency)
    return VerifyResult(snapshot, len(snapshot.files), sorted(problems))


def _fetch_digest(bucket: Bucket, key: str, transfer: Transfer) -> str:
    h = hashlib.sha256()
    body = bucket.client.get_object(Bucket=bucket.cfg.bucket, Key=key)["Body"]
    for block in body.iter_chunks(1 << 20):
        h.update(block)
        transfer.bytes(len(block))
    return h.hexdigest()
