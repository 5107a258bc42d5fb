"""The errors a face may see from the Service, and how to say them: one import for the command
line, the daemon, the tray and the API, so none of them reaches into the layers below.

Imported when an error is being reported (it loads the modules that define these types).
"""

from __future__ import annotations

from app.backup.catalog import ChooseSnapshotError
from app.backup.errors import (
    BackupBusyError,
    BackupConfigError,
    BackupError,
    LeaseHeldError,
    RestoreRefusedError,
)
from app.core.embedding import EmbeddingError
from app.core.errors import disk_full_message, is_disk_full, one_line
from app.core.lock import IndexLockedError
from app.core.model_switch import ModelChangeError
from app.core.reembed import ReembedError
from app.service.operations import PassError, SearchError
from app.service.source_rules import SourceConfigError
from app.sources.base import SourceError

__all__ = [
    "BUSY", "FOR_PEOPLE", "USAGE", "BackupBusyError", "BackupConfigError", "BackupError",
    "ChooseSnapshotError", "EmbeddingError", "IndexLockedError", "LeaseHeldError",
    "ModelChangeError", "PassError", "ReembedError", "RestoreRefusedError", "SearchError",
    "SourceConfigError", "SourceError",
    "disk_full_message", "is_disk_full", "is_store_error", "one_line",
]

# Another process holds what this one needs.
BUSY: tuple[type[Exception], ...] = (IndexLockedError, LeaseHeldError, BackupBusyError)
# The settings or the request cannot work as given.
USAGE: tuple[type[Exception], ...] = (BackupConfigError, RestoreRefusedError,
                                      SourceConfigError)
# Failures whose message is written for the person (no traceback needed).
FOR_PEOPLE: tuple[type[Exception], ...] = (BackupError, ModelChangeError, SourceError,
                                           EmbeddingError, SearchError, ReembedError,
                                           PassError)


def is_store_error(exc: BaseException) -> bool:
    # By name: importing app.core.store would load LanceDB just to classify an error.
    return type(exc).__name__ in ("StoreError", "StoreIntegrityError")
