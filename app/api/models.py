"""Request and response shapes of the REST API (pydantic). Field names follow the seed and the
command line's `--json` output, so a script can switch between them."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SourceTypeName = Literal["local", "notion", "dropbox", "gdrive", "s3"]
SearchMode = Literal["hybrid", "vector", "fts"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class HealthOut(BaseModel):
    status: Literal["ok", "warning", "error", "unknown"]
    running: bool
    paused: bool
    checks: list[dict[str, Any]] = []
    version: str


class SourceIn(Strict):
    source_type: SourceTypeName = Field(description="local, notion, dropbox, gdrive or s3")
    source_id: str = Field(min_length=1, max_length=200,
                           description="A name of your choice (no ':'); default for a local "
                           "source: its first folder's name")
    config: dict[str, Any] = Field(default_factory=dict, description=(
        "For local: watch_paths (folders), file_patterns, exclude_patterns"))
    poll_interval: int | None = Field(default=None, ge=5, description="Seconds between passes")
    enabled: bool = True

    @field_validator("source_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if ":" in v or "/" in v or not v.strip():
            raise ValueError("a source id cannot be blank or contain ':' or '/'")
        return v


class SourceOut(BaseModel):
    source_id: str
    source_type: str
    enabled: bool
    poll_interval: int | None
    config: dict[str, Any]
    state: str
    waiting: str | None = None
    documents: int
    failed: int
    skipped: int
    chunks: int
    in_progress: int = 0
    unsupported: int = 0
    ignored: int = 0
    last_sync: dict[str, Any] | None = None


class ManualSyncIn(Strict):
    source_id: str | None = Field(default=None, description="One source (default: all enabled)")
    paths: list[str] | None = Field(default=None, description=(
        "Sync the sources that hold these files or folders"))


class PauseIn(Strict):
    until: float | None = Field(default=None, description="Epoch seconds; default: until "
                                "resumed")
    minutes: float | None = Field(default=None, gt=0, description="Pause for this long")


class SearchIn(Strict):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(default=10, ge=1, le=200)
    mode: SearchMode = "hybrid"
    source_id: str | None = None
    file_type: str | None = Field(default=None, description='"pdf" or a mime prefix "text/"')
    path_prefix: str | None = None
    modified_after: date | None = None


class SearchOut(BaseModel):
    query: str
    mode: str
    results: list[dict[str, Any]]


class RetryIn(Strict):
    doc_uids: list[str] | None = None
    source_id: str | None = None


class JobOut(BaseModel):
    id: str
    kind: str
    state: str
    created_at: float
    finished_at: float | None
    progress: dict[str, Any]
    result: Any = None
    error: str | None = None
    cancel_requested: bool = False
