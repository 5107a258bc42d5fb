"""The log file, set up the same way for every entry point (the CLI, `run`, the tray).

- One rotating file, `lancedb-sync.log` in the log folder (2 MB, three older copies).
- Private: the folder is 0700, the file and its rotated copies 0600 (created so, and tightened
  if an older version left them readable by others). Permission bits mean little on Windows,
  where the per-user folder is already private.
- Every line goes through `logsafety.RedactingFilter`: no credentials, whatever the level.
- botocore, boto3, s3transfer and urllib3 stay at INFO even at level debug (their debug output
  is every HTTP request in full: huge, and where credentials would be). Setting
  `LANCEDB_SYNC_DEBUG_LIBRARIES=1` lets their debug lines through too, still redacted.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import IO, Any

from app.logsafety import RedactingFilter, register_environment

LOG_FILE = "lancedb-sync.log"
MAX_BYTES = 2_000_000
BACKUP_COUNT = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LIBRARY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")
LIBRARY_DEBUG_ENV = "LANCEDB_SYNC_DEBUG_LIBRARIES"
FILE_MODE = 0o600
DIR_MODE = 0o700


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A RotatingFileHandler whose files are created 0600. Rotation renames files (which keeps
    their mode) and opens the new one through `_open`, so every copy stays private."""

    def _open(self) -> IO[str]:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.baseFilename, flags, FILE_MODE)
        if hasattr(os, "fchmod"):  # the file may predate this version, made 0644
            with contextlib.suppress(OSError):
                os.fchmod(fd, FILE_MODE)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


def log_file(log_dir: Path) -> Path:
    return Path(log_dir) / LOG_FILE


def setup_logging(settings: Any, env: Mapping[str, str] | None = None) -> logging.Handler:
    """Send the root logger to the private, redacted log file at the configured level."""
    env = os.environ if env is None else env
    register_environment(env)
    log_dir = Path(settings.paths.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _chmod(log_dir, DIR_MODE)
    path = log_file(log_dir)
    for old in (path.with_name(f"{path.name}.{i}") for i in range(1, BACKUP_COUNT + 1)):
        if old.exists():
            _chmod(old, FILE_MODE)
    handler = PrivateRotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT,
                                         encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old_handler in root.handlers:
        if isinstance(old_handler, PrivateRotatingFileHandler):  # an earlier set-up's file
            old_handler.close()
    root.handlers[:] = [handler]
    set_level(settings.log_level, env)
    return handler


def set_level(level: str, env: Mapping[str, str] | None = None) -> None:
    """The app's log level (debug, info, warning, error), and the library loggers' cap."""
    env = os.environ if env is None else env
    root = logging.getLogger()
    root.setLevel(level.upper())
    opted_in = env.get(LIBRARY_DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    # A cap only where the root would let debug through; above that, they follow the root.
    cap = logging.INFO if root.level < logging.INFO and not opted_in else logging.NOTSET
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(cap)


def _chmod(path: Path, mode: int) -> None:
    # Not every file system keeps permission bits (FAT on a USB stick in portable mode).
    with contextlib.suppress(OSError):
        os.chmod(path, mode)
