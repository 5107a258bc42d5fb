"""Retention: drop the snapshots `BACKUP_KEEP_LAST` / `BACKUP_KEEP_DAYS` do not keep, then delete
the files no kept snapshot lists.

The order is what makes it safe. A dropped snapshot's manifest goes first, so no snapshot is
ever listed without its files; files are swept only when every manifest could be read, since a
snapshot that cannot be read cannot say which files it needs. What to keep and what to delete
are pure plans (snapshot.plan_retention, snapshot.unreferenced); this module only carries them
out, under the device's lease.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from app.backup.bucket import Bucket
from app.backup.catalog import Catalog
from app.backup.identity import Identity
from app.backup.lease import Lease
from app.backup.snapshot import DEFAULT_ROOT, plan_retention, unreferenced

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PruneResult:
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    deleted_objects: int = 0
    deleted_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "dropped": self.dropped,
                "deleted_objects": self.deleted_objects, "deleted_bytes": self.deleted_bytes}


def prune_snapshots(settings: Any, bucket: Bucket, me: Identity, *,
                    keep_last: int | None = None,
                    keep_days: int | None = None) -> PruneResult:
    """`backup prune`: take the lease, prune, sweep every unlisted file (leftovers of
    interrupted runs too)."""
    lease = Lease.of(bucket, me)
    lease.acquire()
    try:
        return prune_locked(settings, bucket, me, lease, keep_last, keep_days)
    finally:
        lease.release()


def prune_locked(settings: Any, bucket: Bucket, me: Identity, lease: Lease,
                 keep_last: int | None = None, keep_days: int | None = None, *,
                 sweep: bool = True) -> PruneResult:
    """Drop the snapshots retention does not keep, then delete the objects no kept snapshot
    lists. With `sweep=False` (after a backup) objects are only looked at when a snapshot
    was dropped; `backup prune` always sweeps (leftovers of interrupted runs too). The caller
    holds `lease`."""
    keep_last = settings.backup_keep_last if keep_last is None else keep_last
    keep_days = settings.backup_keep_days if keep_days is None else keep_days
    device_id = me.device.device_id
    prefix = bucket.device_prefix(device_id)
    catalog = Catalog(bucket)
    keys = catalog.snapshot_keys(device_id)
    snaps = [catalog.read(k) for k in keys]
    readable = [s for s in snaps if s is not None]
    plan = plan_retention(readable, keep_last, keep_days)
    result = PruneResult([s.snapshot_id for s in plan.keep],
                         [s.snapshot_id for s in plan.drop])
    # Snapshot manifests first: a snapshot stops existing before any of its files go.
    bucket.delete_many([bucket.snapshot_key(device_id, s.snapshot_id) for s in plan.drop])
    if len(readable) != len(snaps):
        log.warning("prune: some snapshot manifests are unreadable; no files deleted")
        return result
    if not sweep and not plan.drop:
        return result
    lease.renew()
    objects = {rel: size for rel, size in bucket.objects(prefix).items()
               if rel.split("/", 1)[0].startswith(DEFAULT_ROOT) and "/" in rel}
    doomed = unreferenced(objects, plan.keep)
    bucket.delete_many([prefix + rel for rel in doomed])
    result.deleted_objects = len(doomed)
    result.deleted_bytes = sum(objects[r] for r in doomed)
    return result
