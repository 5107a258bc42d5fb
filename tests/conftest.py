"""Shared fixtures: a portable home per test, and the CLI run in-process or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"

# Settings the tests must not inherit from the machine they run on.
_ENV_KEYS = ("LANCEDB_URI", "LANCEDB_TABLE_NAME", "LANCEDB_CHUNKS_TABLE_NAME", "SYNC_INTERVAL",
             "MAX_CONCURRENT_PROCESSING", "CHUNK_SIZE_MB", "MAX_RETRIES", "SYNC_STATE_DIR",
             "CHECKSUM_ENABLED", "LANCEDB_SYNC_EMBEDDER", "LANCEDB_SYNC_HOME", "S3_BUCKET",
             "S3_PREFIX", "S3_ENDPOINT_URL", "S3_SSE", "BACKUP_CONCURRENCY", "BACKUP_AUTO",
             "BACKUP_DEVICE_NAME", "BACKUP_KEEP_LAST", "BACKUP_KEEP_DAYS", "S3_BACKUP_INTERVAL",
             "LANCEDB_SYNC_LOG_LEVEL", "LANCEDB_SYNC_DEBUG_LIBRARIES", "LANCEDB_SYNC_API",
             "LANCEDB_SYNC_API_HOST", "LANCEDB_SYNC_API_CORS_ORIGINS")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for key in _ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    # Any free port: tests (and a tray the developer runs) never fight over the default one.
    monkeypatch.setenv("LANCEDB_SYNC_API_PORT", "0")


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    """Runs `lancedb-sync --home HOME …` in this process (fast) or in a subprocess (exact)."""

    def __init__(self, home: Path, capsys) -> None:
        self.home = home
        self.capsys = capsys

    def __call__(self, *args: str) -> Result:
        from app.cli import main

        self.capsys.readouterr()
        code = main(["--home", str(self.home), *args])
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *args: str) -> Result:
        r = self(*args)
        assert r.code == 0, f"{args} exited {r.code}: {r.err}"
        return r

    def subprocess(self, *args: str, env: dict | None = None, timeout: float = 300,
                   **kw) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        return subprocess.run([sys.executable, "-m", "app", "--home", str(self.home), *args],
                              capture_output=True, text=True, env=full_env, timeout=timeout,
                              cwd=REPO, **kw)

    def write_config(self, text: str) -> None:
        cfg = self.home / "config" / "config.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        existing = cfg.read_text() if cfg.exists() else ""
        cfg.write_text(text + "\n" + existing)


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def cli(home, capsys) -> Cli:
    return Cli(home, capsys)


@pytest.fixture
def docs(tmp_path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    return d
