"""Exit codes and errors of the command line, shared with `lancedb-sync run`.

Exit status: 0 success; 1 the operation failed; 2 bad usage or configuration; 3 the index is
busy (another process is writing to it); 130 interrupted.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_BUSY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UserError(Exception):
    """Something the person can fix; printed without a traceback."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


def known_error(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code of an error the layers below raise for people, or
    None for one that is a bug."""
    from app.backup.errors import (
        BackupBusyError,
        BackupConfigError,
        BackupError,
        LeaseHeldError,
        RestoreRefusedError,
    )
    from app.core.embedding import EmbeddingError
    from app.core.lock import IndexLockedError
    from app.core.model_switch import ModelChangeError
    from app.core.reembed import ReembedError
    from app.service.operations import SearchError
    from app.sources.base import SourceError

    if isinstance(exc, (IndexLockedError, LeaseHeldError, BackupBusyError)):
        return str(exc), EXIT_BUSY
    if isinstance(exc, (BackupConfigError, RestoreRefusedError)):
        return str(exc), EXIT_USAGE
    if isinstance(exc, BackupError):
        return str(exc), EXIT_FAIL
    if isinstance(exc, (ModelChangeError, SourceError, EmbeddingError, SearchError,
                        ReembedError)):
        return str(exc), EXIT_FAIL
    # By name: importing app.core.store would load LanceDB just to print an error.
    if type(exc).__name__ in ("StoreError", "StoreIntegrityError"):
        return str(exc), EXIT_FAIL
    return None
