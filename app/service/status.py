"""What the service says about itself: typed, frozen snapshots, and the status file that lets
another process (`lancedb-sync status`, a second tray) read them.

`ServiceStatus.as_dict()` is the JSON form (the status file, `status --json`, the REST API);
`ServiceStatus.from_dict()` reads it back. The running service rewrites `service-status.json`
in its state folder whenever something changes; `read_running_status` returns it only while
the process that wrote it is alive and the file is fresh.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from app.fsutil import write_atomic
from app.models import Counts

STATUS_FILE = "service-status.json"


@dataclass(frozen=True, slots=True)
class PassInfo:
    """The pass under way: app.models.Progress as the service last heard it."""

    phase: str
    done: int = 0
    total: int = 0
    failed: int = 0
    current: str = ""
    rate: float = 0.0
    eta_s: float | None = None
    parsed: int = 0
    skipped: int = 0


def live_counts(stored: Counts | None, progress: PassInfo | None) -> Counts:
    """A source's counts as every face shows them: what the sync state holds (refreshed during
    a pass as batches commit), plus the files the pass under way has yet to commit."""
    c = stored or Counts()
    if progress is None or progress.phase != "indexing":
        return dataclasses.replace(c, in_progress=0)
    return dataclasses.replace(c, in_progress=max(0, progress.total - progress.done))


@dataclass(frozen=True, slots=True)
class SourceStatus:
    source_id: str
    source_type: str
    enabled: bool = True
    state: str = "idle"  # idle | queued | scanning | indexing | maintaining | paused | error
    waiting: str = ""  # why it is not syncing now, in words ("" when it is not waiting)
    # The source's Counts (app.models), flat in the JSON form: documents = Counts.indexed.
    documents: int = 0
    failed: int = 0
    skipped: int = 0
    chunks: int = 0
    in_progress: int = 0
    unsupported: int = 0
    ignored: int = 0
    watcher: str = "off"  # watching | degraded | off
    watcher_reason: str = ""
    progress: PassInfo | None = None
    last_sync: dict[str, Any] | None = None  # {"finished_at", **SyncReport.as_dict()}
    queued: bool = False
    queued_paths: int | None = None  # None: a full pass is queued
    failures: int = 0  # failed passes in a row
    retry_in: float = 0.0
    last_error: str = ""

    @property
    def counts(self) -> Counts:
        return Counts(indexed=self.documents, in_progress=self.in_progress, failed=self.failed,
                      skipped=self.skipped, unsupported=self.unsupported, ignored=self.ignored,
                      chunks=self.chunks)

    @staticmethod
    def count_fields(c: Counts) -> dict[str, int]:
        """A Counts as SourceStatus's fields (its constructor's keyword arguments)."""
        return {"documents": c.indexed, "failed": c.failed, "skipped": c.skipped,
                "chunks": c.chunks, "in_progress": c.in_progress,
                "unsupported": c.unsupported, "ignored": c.ignored}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceStatus:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        if values.get("progress"):
            pknown = {f.name for f in fields(PassInfo)}
            values["progress"] = PassInfo(**{k: v for k, v in values["progress"].items()
                                             if k in pknown})
        return cls(**values)


@dataclass(frozen=True, slots=True)
class QueueDepth:
    sources: int = 0
    paths: int = 0
    full_passes: int = 0


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    running: bool = False
    pid: int | None = None
    started_at: float | None = None
    updated_at: float = field(default_factory=time.time)
    health_check_interval: int = 60
    paused: bool = False
    paused_until: float | None = None
    held: str | None = None  # why syncing is held besides a pause (low disk, unwritable index)
    on_battery: bool = False
    current: str | None = None  # the source whose pass runs now
    queue: QueueDepth = field(default_factory=QueueDepth)
    health: dict[str, Any] = field(default_factory=dict)  # health.summarize(...)
    backup: dict[str, Any] | None = None
    sources: tuple[SourceStatus, ...] = ()
    index: str = ""  # the index this describes (LANCEDB_URI); "" in a file of an older version

    def source(self, source_id: str) -> SourceStatus | None:
        return next((s for s in self.sources if s.source_id == source_id), None)

    @property
    def counts(self) -> Counts:
        """Every source's counts, summed."""
        return Counts.total(s.counts for s in self.sources)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form; "counts" sums the sources' counts (read back from them)."""
        return {**asdict(self), "counts": self.counts.as_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ServiceStatus:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["queue"] = QueueDepth(**(values.get("queue") or {}))
        values["sources"] = tuple(SourceStatus.from_dict(s) for s in values.get("sources", ()))
        return cls(**values)


def run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """A journal row (SyncState.last_runs) as the `last_sync` of a SourceStatus."""
    return {"finished_at": run["finished_at"], "outcome": run["outcome"],
            "problems": run["problems"], "error": run.get("error", ""),
            "maintenance_errors": run.get("maintenance_errors", [])}


def offline_status(sources: Iterable[Any], counts: dict[str, Counts],
                   runs: dict[str, dict[str, Any]], health: dict[str, Any], paused: bool,
                   paused_until: float | None) -> ServiceStatus:
    """What can be said with no service running: counts and the last passes from the sync
    state, and a health check made just now."""
    out = []
    for s in sources:
        c = counts.get(s.source_id) or Counts()
        run = runs.get(s.source_id)
        out.append(SourceStatus(
            source_id=s.source_id, source_type=s.source_type.value, enabled=s.enabled,
            **SourceStatus.count_fields(c), last_sync=run_summary(run) if run else None))
    return ServiceStatus(running=False, paused=paused, paused_until=paused_until,
                         health=health, sources=tuple(out))


def write_status_file(state_dir: Path, status: ServiceStatus) -> None:
    write_atomic(state_dir / STATUS_FILE, json.dumps(status.as_dict(), default=str))


def remove_status_file(state_dir: Path) -> None:
    (state_dir / STATUS_FILE).unlink(missing_ok=True)


def read_running_status(state_dir: Path) -> ServiceStatus | None:
    """The running service's own account, if a service is running on this state folder and
    its file is fresh; None otherwise."""
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text())
        status = ServiceStatus.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    fresh = time.time() - status.updated_at < 3 * status.health_check_interval + 30
    if not fresh or status.pid is None or not _alive(status.pid):
        return None
    return status


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    import psutil

    return psutil.pid_exists(pid)
