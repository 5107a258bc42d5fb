"""Who is backing up: this device's id and name, and a fingerprint of the machine.

The device id names the bucket prefix a device writes its snapshots under
(`devices/<device-id>/`). It is made once and kept in the per-user data folder, so it survives
restarts and updates. A cloned disk carries the same id to a second machine: the machine
fingerprint (host name and the OS machine id, hashed) is what the writer lease compares, so the
two cannot interleave snapshots (see `app/backup/lease.py`).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.fsutil import write_atomic

DEVICE_FILE = "device.json"
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    name: str


def device_file(data_dir: Path) -> Path:
    return Path(data_dir) / DEVICE_FILE


def load_device(data_dir: Path, name: str | None = None) -> Device:
    """This device's identity, created on first use. `name` overrides the stored name."""
    path = device_file(data_dir)
    data: dict[str, str] = {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    device_id = str(data.get("device_id", ""))
    if not _ID.match(device_id):
        device_id = uuid.uuid4().hex[:12]
        data = {"device_id": device_id, "name": data.get("name") or socket.gethostname()}
        write_atomic(path, json.dumps(data, indent=2))
    return Device(device_id, name or str(data.get("name") or socket.gethostname()))


def machine_fingerprint() -> str:
    """A stable, non-identifying id of this machine (not of this disk's contents)."""
    raw = ""
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            raw = Path(candidate).read_text().strip()
            break
        except OSError:
            continue
    if not raw:
        raw = f"{uuid.getnode():x}"
    digest = hashlib.sha256(f"{socket.gethostname()}\0{raw}".encode()).hexdigest()
    return digest[:16]


class Identity:
    """Who a job writes as: this device (loaded, and made on first use, only when a job gets that
    far, so one that fails earlier leaves no device.json) and this machine's fingerprint."""

    def __init__(self, data_dir: Path, name: str | None = None,
                 machine: str | None = None) -> None:
        self.data_dir, self.name = data_dir, name
        self.machine = machine or machine_fingerprint()
        self._device: Device | None = None

    @property
    def device(self) -> Device:
        if self._device is None:
            self._device = load_device(self.data_dir, self.name)
        return self._device
