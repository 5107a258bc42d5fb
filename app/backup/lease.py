"""The writer lease: one machine writes a device's snapshots at a time.

A device id travels with a cloned disk or a restored system image, and two machines backing up
under one device prefix would interleave snapshots and prune each other's files. So backup and
prune hold `devices/<id>/lease.json` (machine fingerprint, host, expiry), renewed while they
run; the fingerprint (identity.machine_fingerprint) is what tells the machines apart. A lease
of a machine that is gone runs out by itself.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.backup.bucket import Bucket
from app.backup.errors import LeaseHeldError
from app.backup.identity import Identity

log = logging.getLogger(__name__)

LEASE_SECONDS = 15 * 60


class Lease:
    """One writer per device prefix: `devices/<id>/lease.json`, renewed while a job runs.

    Same machine (fingerprint) → the lease is ours to take over (a crashed run, the CLI after the
    service). Another machine with an unexpired lease → `LeaseHeldError` saying what to do.
    """

    def __init__(self, bucket: Bucket, device_prefix: str, device_id: str, machine: str,
                 host: str, seconds: int = LEASE_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.bucket = bucket
        self.key = f"{device_prefix}lease.json"
        self.device_id, self.machine, self.host = device_id, machine, host
        self.seconds, self.clock = seconds, clock
        self._renewed = 0.0
        self.held = False

    @classmethod
    def of(cls, bucket: Bucket, me: Identity) -> Lease:
        """The lease of this device's prefix, as this machine."""
        # Bad settings or credentials fail here, before device.json is made on first use.
        _ = bucket.client
        device = me.device
        return cls(bucket, bucket.device_prefix(device.device_id), device.device_id,
                   me.machine, device.name)

    def read(self) -> dict[str, Any] | None:
        body = self.bucket.get_if_exists(self.key)
        if body is None:
            return None
        try:
            return dict(json.loads(body))
        except ValueError:
            return None

    def acquire(self) -> None:
        current = self.read()
        now = self.clock()
        if current and current.get("machine") != self.machine and \
                float(current.get("expires_at", 0)) > now:
            until = datetime.fromtimestamp(float(current["expires_at"]), UTC)
            raise LeaseHeldError(
                f"Another machine ({current.get('host', 'unknown host')}) is writing backups as "
                f"device {self.device_id} (its lease runs until {until:%Y-%m-%d %H:%M} UTC). "
                "If this machine is a copy of that one (a cloned disk or a restored system "
                "image), give it its own device id: delete device.json in the data folder and "
                "back up again. If that machine is gone, wait until the lease runs out.")
        self._write(now)
        confirm = self.read()
        if not confirm or confirm.get("machine") != self.machine:
            raise LeaseHeldError(
                f"Another machine took the backup lease of device {self.device_id} at the same "
                "moment; try again in a minute.")
        self.held = True

    def renew(self) -> None:
        """Extend the lease if a third of it has passed (cheap to call often)."""
        now = self.clock()
        if self.held and now - self._renewed > self.seconds / 3:
            self._write(now)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            current = self.read()
            if current and current.get("machine") == self.machine:
                self.bucket.delete(self.key)
        except Exception:
            log.warning("could not release the backup lease %s; it expires by itself", self.key)

    def _write(self, now: float) -> None:
        body = json.dumps({"device_id": self.device_id, "machine": self.machine,
                           "host": self.host, "acquired_at": now,
                           "expires_at": now + self.seconds}).encode()
        self.bucket.put(self.key, body)
        self._renewed = now
