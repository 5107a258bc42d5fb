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
    from app.service import errors

    if isinstance(exc, errors.BUSY):
        return str(exc), EXIT_BUSY
    if isinstance(exc, errors.USAGE):
        return str(exc), EXIT_USAGE
    if isinstance(exc, errors.FOR_PEOPLE) or errors.is_store_error(exc):
        return str(exc), EXIT_FAIL
    return None
