"""Where the app keeps its files.

Per-user folders come from platformdirs. Portable mode (`--home DIR` or `LANCEDB_SYNC_HOME`) puts
everything under one folder instead, which is what tests and benchmarks use and what lets a person
carry an index on a USB stick.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "lancedb-sync"
HOME_ENV = "LANCEDB_SYNC_HOME"
STATE_DB_NAME = "sync-state.sqlite3"


def local_index_folder(index_uri: str) -> Path | None:
    """The folder of an index on this machine (a path or a file:// URI); None for a remote one
    (s3://…): the one answer to "is the index remote?"."""
    if "://" in index_uri and not index_uri.startswith("file://"):
        return None
    return Path(index_uri.removeprefix("file://")).expanduser().resolve()


@dataclass(frozen=True, slots=True)
class AppPaths:
    config_dir: Path
    data_dir: Path
    log_dir: Path
    cache_dir: Path
    # The portable root these folders are under (`--home DIR` or LANCEDB_SYNC_HOME), resolved;
    # None for the platform's per-user folders. A login item passes it on as `--home`.
    home: Path | None = None

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def default_index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def default_state_dir(self) -> Path:
        return self.data_dir / "state"

    def ensure(self) -> None:
        for d in (self.config_dir, self.data_dir, self.log_dir, self.cache_dir):
            d.mkdir(parents=True, exist_ok=True)


def resolve_paths(home: str | os.PathLike[str] | None = None) -> AppPaths:
    """Portable home if given (argument, then env), else the platform's per-user folders."""
    home = home or os.environ.get(HOME_ENV) or None
    if home:
        root = Path(home).expanduser().resolve()
        return AppPaths(root / "config", root / "data", root / "logs", root / "cache", home=root)
    import platformdirs

    return AppPaths(
        Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
    )
