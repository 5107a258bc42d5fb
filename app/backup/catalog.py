"""What the bucket holds: its devices and their snapshots, read and checked, and which snapshot
"DEVICE[/ID]" means.

Every job that starts from a snapshot in the bucket (restore, verify, remote search, prune, the
next backup) reads it through here, so no manifest is used before `Snapshot.from_json` has
checked it (snapshot.check_snapshot): one that tries to name paths outside its table folders
stops the command instead of being skipped in favour of an older one.
"""

from __future__ import annotations

import logging

from app.backup.bucket import Bucket
from app.backup.errors import SnapshotNotFoundError
from app.backup.snapshot import Snapshot

log = logging.getLogger(__name__)


class ChooseSnapshotError(SnapshotNotFoundError):
    """The bucket holds several devices; the person must say which one."""

    def __init__(self, message: str, devices: list[tuple[str, str, int]]) -> None:
        super().__init__(message)
        self.devices = devices


class Catalog:
    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    def device_ids(self) -> list[str]:
        out: list[str] = []
        for page in self.bucket.pages(f"{self.bucket.cfg.prefix}devices/", "/"):
            for cp in page.get("CommonPrefixes", []):
                out.append(cp["Prefix"].rstrip("/").rsplit("/", 1)[-1])
        return sorted(out)

    def snapshots(self, device_id: str | None = None) -> list[Snapshot]:
        """Complete snapshots (their manifest is written), oldest first."""
        devices = [device_id] if device_id else self.device_ids()
        out: list[Snapshot] = []
        for dev in devices:
            for key in self.snapshot_keys(dev):
                snap = self.read(key)
                if snap is not None:
                    out.append(snap)
        return sorted(out, key=lambda s: (s.created_at, s.snapshot_id))

    def snapshot_keys(self, device_id: str) -> list[str]:
        """The keys of a device's snapshot manifests, as listed (not read)."""
        prefix = f"{self.bucket.device_prefix(device_id)}snapshots/"
        return [prefix + rel for rel in self.bucket.objects(prefix) if rel.endswith(".json")]

    def read(self, key: str) -> Snapshot | None:
        """The snapshot a manifest object describes; None if it does not parse (skipped with a
        warning, as before). A manifest that parses but names unsafe paths raises
        UnsafeSnapshotError instead: skipping it would quietly hand restore an older snapshot
        and hide that someone altered the bucket."""
        body = self.bucket.get(key)
        try:
            return Snapshot.from_json(body, f"The snapshot manifest s3://{self.bucket.cfg.bucket}/"
                                            f"{key}")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping unreadable snapshot manifest %s: %s", key, exc)
            return None

    def resolve(self, spec: str | None) -> Snapshot:
        """`None` (the latest, if the bucket holds one device), `DEVICE` (its latest) or
        `DEVICE/SNAPSHOT` (an id, a unique prefix of one, or `latest`). DEVICE is an id or a
        name."""
        where = self.bucket.cfg.where
        device_part, _, snap_part = (spec or "").partition("/")
        snaps = self.snapshots()
        if not snaps:
            raise SnapshotNotFoundError(f"There are no snapshots in {where} yet. Run "
                                        "'lancedb-sync backup' on the device to back up.")
        if device_part:
            wanted = device_part.lower()
            by_id = [s for s in snaps if s.device_id == wanted]
            chosen = by_id or [s for s in snaps if s.device_name.lower() == wanted]
            if not chosen:
                chosen = [s for s in snaps if s.device_id.startswith(wanted)]
            if not chosen:
                raise SnapshotNotFoundError(
                    f"No device {device_part!r} in {where}. See 'lancedb-sync "
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
