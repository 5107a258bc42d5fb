"""Health checks: can the index be read and written, is there room, can each source be reached.

Each check is cheap and never imports LanceDB: the index is checked at the file level (its
tables' newest manifests can be read, a probe file can be written beside them), so a health
check of an idle service costs a few system calls. Checks run in a worker thread; a check that
hangs (a dead network mount) is reported as not responding by the caller's timeout.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.models import SourceConfig
from app.paths import STATE_DB_NAME, local_index_folder

OK, WARNING, ERROR = "ok", "warning", "error"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok | warning | error
    detail: str
    source_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


def index_location_problem(index_uri: str) -> str | None:
    """What makes the index's folder unusable, in words, or None: a file where a folder must
    be (the index path itself or a folder above it), or no permission to create or write it.
    None for a remote index, and for a folder that does not exist yet but can be made."""
    root = local_index_folder(index_uri)
    if root is None:
        return None
    where = f"The index location {root} cannot be used"
    fix = " Set LANCEDB_URI to a folder you can write to, or fix that."
    p = root
    while True:
        try:
            st = os.stat(p)
        except (FileNotFoundError, NotADirectoryError):
            if p == p.parent:
                return None
            p = p.parent
            continue
        except PermissionError:
            return f"{where}: no permission to look inside {p.parent}.{fix}"
        except OSError as exc:
            return f"{where}: {p}: {exc.strerror or exc}.{fix}"
        if not stat.S_ISDIR(st.st_mode):
            return f"{where}: {p} is a file, not a folder.{fix}"
        if not os.access(p, os.W_OK | os.X_OK):
            verb = "write in" if p == root else "create folders in"
            return f"{where}: no permission to {verb} {p}.{fix}"
        return None


def check_index(index_uri: str, tables: Iterable[str]) -> list[Check]:
    """Usable: the folder is (or can be made) a folder this user writes. Readable: each
    existing table's newest manifest opens. Writable: a probe file can be created and
    removed in the index folder (a read-only or full disk fails here first)."""
    root = local_index_folder(index_uri)
    if root is None:
        return [Check("index", OK, "remote index; not checked from here")]
    problem = index_location_problem(index_uri)
    if problem:
        return [Check("index_location", ERROR, problem)]
    checks: list[Check] = []
    if not root.exists():
        return [Check("index_readable", OK, "no index yet; it is created by the first sync")]
    problems = []
    for table in tables:
        versions = root / f"{table}.lance" / "_versions"
        if not versions.exists():
            continue
        try:
            manifests = [e for e in os.scandir(versions) if e.name.endswith(".manifest")]
            if not manifests:
                problems.append(f"{table}: no versions")
                continue
            newest = max(manifests, key=lambda e: e.stat().st_mtime_ns)
            with open(newest.path, "rb") as fh:
                fh.read(64)
        except OSError as exc:
            problems.append(f"{table}: {exc.strerror or exc}")
    if problems:
        checks.append(Check("index_readable", ERROR,
                            "The index cannot be read (" + "; ".join(problems) + ")."))
    else:
        checks.append(Check("index_readable", OK, str(root)))
    probe = root / f".health-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        checks.append(Check("index_writable", ERROR,
                            f"The index folder cannot be written ({exc.strerror or exc}); "
                            "syncing is held until it can."))
    else:
        checks.append(Check("index_writable", OK, str(root)))
    return checks


def check_state(state_dir: Path) -> Check:
    db = state_dir / STATE_DB_NAME
    if not db.exists():
        return Check("state", OK, "no sync state yet")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        return Check("state", WARNING, f"The sync state database cannot be read ({exc}); it is "
                                       "rebuilt from the index on the next pass.")
    return Check("state", OK, str(db))


def state_index_mismatch(settings: Any) -> str:
    """Why the sync state (its counts, model, journal) describes another index than this
    one (LANCEDB_URI changed since it was written), in words; "" when it describes this one
    or nothing. The state records the index its mirror was made from; a state written
    before it did so is judged by the documents table: mirrored, yet not there."""
    from app.core.state import read_meta, table_version_fingerprint

    db = settings.state_db_path
    if not db.exists():
        return ""
    uri = settings.index_uri
    recorded = read_meta(db, "index_uri")
    if recorded is not None:
        if recorded == uri or _same_folder(recorded, uri):
            return ""
        other = f"the index at {recorded}"
    else:
        if settings.index_dir is None or read_meta(db, "documents_version") is None:
            return ""
        if table_version_fingerprint(uri, settings.documents_table) is not None:
            return ""
        other = "another index"
    return (f"The sync state in {settings.state_dir} describes {other}, not {uri}: its "
            "counts are not shown. The next sync of this index rebuilds it from this index.")


def _same_folder(a: str, b: str) -> bool:
    fa, fb = local_index_folder(a), local_index_folder(b)
    return fa is not None and fa == fb


def check_sync_state(state_dir: Path, source_ids: Iterable[str]) -> list[Check]:
    """What the last passes left to say: folders they could not read, a pass that ended in an
    error (the next one repairs and retries), index upkeep that failed (retried later)."""
    from app.core.state import SyncState

    if not (state_dir / STATE_DB_NAME).exists():
        return []
    checks: list[Check] = []
    try:
        with SyncState.open(state_dir) as state:
            runs = state.last_runs()
            upkeep = state.maintenance_errors()
            dirty = state.needs_repair()
    except Exception as exc:  # sqlite3.Error, OSError: the state check reports those
        return [Check("sync_state", WARNING, f"The sync state could not be read ({exc}).")]
    wanted = set(source_ids)
    for sid, run in runs.items():
        if sid not in wanted:
            continue
        if run.get("outcome") == "error":
            why = run.get("error") or "see the log"
            checks.append(Check("last_sync", WARNING, f"The last sync failed ({why}); the next "
                                "one repairs what it left and tries again.", sid))
        if run.get("problems"):
            n = len(run["problems"])
            checks.append(Check("readable", WARNING, f"{n} folder{'s' * (n != 1)} could not be "
                                "read on the last sync; nothing under them was removed from "
                                "the index. See 'lancedb-sync status' for which.", sid))
    if upkeep:
        steps = "; ".join(f"{k}: {v}" for k, v in upkeep["errors"].items())
        checks.append(Check("maintenance", WARNING, f"Index upkeep failed ({steps}). Your "
                            "documents are indexed and searchable; it is tried again later."))
    if dirty and not any(c.name == "last_sync" for c in checks):
        checks.append(Check("last_write", WARNING, "The last write to the index did not "
                            "finish; the next sync repairs it first."))
    return checks


def free_disk_mb(path: Path) -> float:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free / 1e6


def check_disk(index_uri: str, min_free_mb: int) -> Check:
    root = local_index_folder(index_uri)
    if root is None:
        return Check("disk_space", OK, "remote index")
    if index_location_problem(index_uri):  # check_index says what is wrong; not the disk
        return Check("disk_space", OK, "not checked: the index location cannot be used")
    try:
        free = free_disk_mb(root)
    except OSError as exc:
        return Check("disk_space", WARNING, f"The free space of the index's disk cannot be "
                     f"read ({exc.strerror or exc}).")
    if free < min_free_mb:
        return Check("disk_space", ERROR,
                     f"Only {free:,.0f} MB free on the index's disk (at least {min_free_mb:,} MB "
                     "needed); syncing is held until space is freed.")
    return Check("disk_space", OK, f"{free:,.0f} MB free")


def check_source(source: SourceConfig) -> Check:
    from app.sources.registry import check_source as check

    result = check(source)
    return Check("source", OK if result.ok else ERROR, result.detail, source.source_id)


def check_watcher(source_id: str, state: str, reason: str) -> Check:
    if state == "degraded":
        return Check("watcher", WARNING, reason, source_id)
    if state in ("watching", "off"):
        return Check("watcher", OK, state, source_id)
    return Check("watcher", WARNING, f"watcher {state}", source_id)


def gather(settings: Any, sources: Iterable[SourceConfig]) -> list[Check]:
    """Every file-level check of an index and its sources (blocking: run in a worker thread):
    the index readable and writable, the sync state, free disk, each source, and what the last
    passes left to say."""
    sources = list(sources)
    checks = check_index(settings.index_uri, (settings.documents_table, settings.chunks_table))
    checks.append(check_state(settings.state_dir))
    mismatch = state_index_mismatch(settings)
    if mismatch:
        checks.append(Check("state_index", WARNING, mismatch))
        return [*checks, check_disk(settings.index_uri, settings.min_free_disk_mb),
                *(check_source(s) for s in sources)]
    checks.append(check_disk(settings.index_uri, settings.min_free_disk_mb))
    checks.extend(check_source(s) for s in sources)
    checks.extend(check_sync_state(settings.state_dir, [s.source_id for s in sources]))
    return checks


def summarize(checks: list[Check], queue_depth: dict[str, Any]) -> dict[str, Any]:
    worst = ERROR if any(c.status == ERROR for c in checks) else (
        WARNING if any(c.status == WARNING for c in checks) else OK)
    return {"status": worst, "checked_at": time.time(),
            "checks": [asdict(c) for c in checks], "queue": queue_depth}


def on_battery() -> bool:
    """True when the machine reports running on battery; False when plugged in or unknown
    (a desktop, or a platform psutil cannot ask)."""
    try:
        import psutil

        battery = psutil.sensors_battery()
    except Exception:
        return False
    return battery is not None and battery.power_plugged is False
