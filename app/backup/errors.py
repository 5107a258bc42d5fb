"""Backup errors. Every message names what went wrong and what the person can do about it."""

from __future__ import annotations


class BackupError(Exception):
    """A backup, restore, verify or prune could not be done."""


class BackupConfigError(BackupError):
    """The backup settings are missing or unusable (no bucket, bad endpoint, …)."""


class BackupAuthError(BackupError):
    """S3 rejected the credentials (unknown key id, wrong secret, expired token, none found)."""


class BackupPermissionError(BackupError):
    """The credentials work but lack a permission; `permission` names it (e.g. s3:PutObject)."""

    def __init__(self, message: str, permission: str) -> None:
        super().__init__(message)
        self.permission = permission


class BackupConnectionError(BackupError):
    """The S3 endpoint could not be reached (after retries)."""


class BackupCancelled(BackupError):
    """The person (or the service shutting down) cancelled the job; nothing was half-published."""


class LeaseHeldError(BackupError):
    """Another machine holds the writer lease of this device's backup prefix."""


class BackupBusyError(BackupError):
    """Another backup of this index is running in this machine."""


class RestoreRefusedError(BackupError):
    """Restoring would overwrite a non-empty index and --force was not given."""


class IntegrityError(BackupError):
    """A downloaded or stored object does not match the checksum its snapshot records."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class SnapshotNotFoundError(BackupError):
    """The bucket holds no snapshot matching what was asked for."""


class UnsafeSnapshotError(BackupError):
    """A snapshot manifest names a path that could land outside the snapshot's own table folders
    (absolute, `..`, a Windows path, another folder). The whole snapshot is refused before
    anything is downloaded; `entry` is the offending value as the manifest holds it."""

    def __init__(self, message: str, entry: str) -> None:
        super().__init__(message)
        self.entry = entry
