"""What the tray shows, computed without Qt: a status snapshot and the pure functions that turn it
into a tray state, a tooltip line and a "why is it slow" reason.

The snapshot holds the service's typed `SourceStatus` per source (app/service/status.py), its
latest passes and its ledger. `fetch_snapshot` asks the Service (SQLite reads) and must run in a
worker thread; everything else is pure and cheap, so the tray and the tests can call it on any
thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from app.models import Counts
from app.service.status import SourceStatus
from app.wording import ago

# Tray states, most urgent first when several apply.
ERROR, PAUSED, SYNCING, ATTENTION, IDLE = "error", "paused", "syncing", "attention", "idle"
STATES = (IDLE, SYNCING, PAUSED, ERROR, ATTENTION)
BUSY_STATES = {"scanning", "indexing", "queued", "maintaining"}


@dataclass(frozen=True, slots=True)
class FailedEntry:
    doc_uid: str
    source_id: str
    uri: str
    status: str  # failed | skipped | unsupported
    reason: str
    at: float

    @property
    def path(self) -> str:
        return uri_to_path(self.uri)


@dataclass(frozen=True)
class Snapshot:
    """The service's status plus what the UI adds (last runs from the journal, the ledger)."""

    sources: tuple[SourceStatus, ...] = ()
    paused: bool = False
    paused_until: float | None = None
    current: str | None = None
    last_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: tuple[FailedEntry, ...] = ()
    taken_at: float = field(default_factory=time.time)

    @property
    def counts(self) -> Counts:
        """The service's counts of every source, summed (the same numbers as `status`)."""
        return Counts.total(s.counts for s in self.sources)

    @property
    def documents(self) -> int:
        return self.counts.indexed

    @property
    def failed_count(self) -> int:
        """Files that failed and a person can act on (skipped and unsupported ones are not)."""
        return self.counts.failed

    def source(self, source_id: str) -> SourceStatus | None:
        return next((s for s in self.sources if s.source_id == source_id), None)

    def last_sync(self, source_id: str | None = None) -> float | None:
        """When the latest pass (of one source, or of any) finished."""
        times = []
        for s in self.sources:
            sid = s.source_id
            if source_id is not None and sid != source_id:
                continue
            live = s.last_sync or {}
            t = live.get("finished_at") or (self.last_runs.get(sid) or {}).get("finished_at")
            if t:
                times.append(float(t))
        return max(times) if times else None


def uri_to_path(uri: str) -> str:
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    return uri


def fetch_snapshot(service: Any) -> Snapshot:
    """The service's status, its latest passes and its ledger (without the files the person
    ignored). Blocking (SQLite reads): call from a worker thread."""
    status = service.get_status()
    runs = service.recent_runs()
    failed = [FailedEntry(f.doc_uid, f.source_id, f.uri, f.status, f.error or "",
                          f.indexed_at or 0.0) for f in service.failed_files()]
    return Snapshot(status.sources, status.paused, status.paused_until, status.current, runs,
                    tuple(failed))


def pass_progress(source: SourceStatus | None,
                  latest: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The pass under way for a source, as the bridge's progress data: the bridge's latest
    event (fresher) or else the status's `progress`; None when no pass is indexing."""
    if latest and latest.get("phase") == "indexing":
        return latest
    info = source.progress if source is not None else None
    if info is not None and info.phase == "indexing":
        return {"phase": info.phase, "done": info.done, "total": info.total,
                "failed": info.failed, "current": info.current, "rate": info.rate,
                "eta_s": info.eta_s, "parsed": info.parsed}
    return None


def live_documents(source: SourceStatus, progress: dict[str, Any] | None = None) -> int:
    """Documents searchable now. The count is read when a pass ends; a source that had none
    then is in its first pass, whose committed documents (`done`) are all new."""
    if source.documents or not progress:
        return source.documents
    return int(progress.get("done") or 0)


def indexing_text(source_id: str, progress: dict[str, Any]) -> str:
    """What a pass is doing, in words: "Indexing docs: 120 of 394 files"."""
    done, total = int(progress.get("done") or 0), int(progress.get("total") or 0)
    if not total:
        return f"Indexing {source_id}…"
    return f"Indexing {source_id}: {done:,} of {total:,} file{'s' if total != 1 else ''}"


def live_progress(snap: Snapshot, latest: dict[str, dict[str, Any]] | None = None,
                  ) -> dict[str, dict[str, Any]]:
    """Every source's pass under way (see `pass_progress`), by source id."""
    out = {}
    for s in snap.sources:
        p = pass_progress(s, (latest or {}).get(s.source_id))
        if p is not None:
            out[s.source_id] = p
    return out


def tray_state(snap: Snapshot, attention: dict[str, str] | None = None,
               busy: set[str] | None = None) -> str:
    """One of STATES. `attention` maps a key (source id or "keyring") to a reason; `busy` holds
    the sources the bridge saw start a pass (events arrive faster than snapshots)."""
    if any(s.state == "error" for s in snap.sources):
        return ERROR
    if snap.paused:
        return PAUSED
    if snap.current or busy or any(s.state in ("scanning", "indexing") for s in snap.sources):
        return SYNCING
    # Only what a person can act on: a file skipped by design or unsupported never alarms.
    if attention or snap.counts.needs_attention or any(
            s.watcher == "degraded" for s in snap.sources):
        return ATTENTION
    return IDLE


def until_text(until: float | None) -> str:
    if until is None:
        return "until resumed"
    return "until " + time.strftime("%H:%M", time.localtime(until)) + (
        "" if until - time.time() < 86400 else time.strftime(" %a", time.localtime(until)))


def summary_line(snap: Snapshot, state: str, attention: dict[str, str] | None = None,
                 progress: dict[str, dict[str, Any]] | None = None) -> str:
    """The tooltip and the menu's status line, e.g. "12,345 documents · synced 2 min ago"."""
    if not snap.sources:
        return "No sources yet — add a folder to index"
    passes = live_progress(snap, progress)
    n = sum(live_documents(s, passes.get(s.source_id)) for s in snap.sources)
    docs = f"{n:,} document{'s' if n != 1 else ''}"
    if state == PAUSED:
        return f"{docs} · paused {until_text(snap.paused_until)}"
    if state == ERROR:
        bad = [s.source_id for s in snap.sources if s.state == "error"]
        return f"{docs} · error in {', '.join(bad) or 'a source'}"
    if state == SYNCING:
        for sid, p in passes.items():
            if p.get("total"):
                doing = indexing_text(sid, p)
                # Nothing searchable yet: the pass says it all ("0 documents" would mislead).
                return f"{doing}…" if not n else f"{docs} · {doing[0].lower()}{doing[1:]}…"
        busy = snap.counts.in_progress
        if busy:
            docs += f" ({busy:,} in progress)"
        return f"{docs} · syncing…"
    last = snap.last_sync()
    tail = f"synced {ago(last)}" if last else "not synced yet"
    if state == ATTENTION:
        if attention:
            return f"{docs} · needs attention: {next(iter(attention.values()))}"
        n = snap.failed_count
        if n:
            return f"{docs} · {n} file{'s' if n != 1 else ''} could not be indexed"
        return f"{docs} · needs attention"
    return f"{docs} · {tail}"


def counts_text(c: Counts) -> str:
    """A source's counts in one line: "120 documents indexed · 0 failed · 2 skipped · 5
    unsupported" (the parts that are zero, besides indexed and failed, are left out)."""
    parts = [f"{c.indexed:,} document{'s' if c.indexed != 1 else ''} indexed"]
    if c.in_progress:
        parts.append(f"{c.in_progress:,} in progress")
    parts.append(f"{c.failed:,} failed")
    for n, word in ((c.skipped, "skipped"), (c.unsupported, "unsupported"),
                    (c.ignored, "ignored")):
        if n:
            parts.append(f"{n:,} {word}")
    return " · ".join(parts)


def ledger_title(entries: tuple[FailedEntry, ...] | list[FailedEntry]) -> str:
    """The title of the not-indexed files' list: "Failed files (1)", or with skipped and
    unsupported files "Not indexed (1 failed, 4 skipped, 2 unsupported)" — the same three
    counts, in the same words, as the counts line above it."""
    failed = sum(e.status == "failed" for e in entries)
    unsupported = sum(e.status == "unsupported" for e in entries)
    skipped = len(entries) - failed - unsupported
    if not (skipped or unsupported):
        return f"Failed files ({failed})" if failed else "Failed files"
    parts = [f"{failed} failed", f"{skipped} skipped"]
    if unsupported:
        parts.append(f"{unsupported} unsupported")
    return f"Not indexed ({', '.join(parts)})"


def why_slow(source: SourceStatus, snap: Snapshot, attention: dict[str, str] | None = None,
             ) -> str:
    """Why a source waits or crawls, in words; "" when nothing holds it back."""
    sid = source.source_id
    attention = attention or {}
    keys = [sid] if source.source_type == "local" else [sid, "keyring"]
    for key in keys:  # a local folder needs no credentials: the keyring cannot hold it up
        if key in attention:
            return f"Waiting: {attention[key]}"
    if source.waiting:  # the service says it itself
        return source.waiting
    if snap.paused:
        return f"Paused {until_text(snap.paused_until)}."
    if not source.enabled:
        return "Disabled."
    retry_in = source.retry_in
    if source.state == "error" or retry_in > 0:
        err = source.last_error or "the last pass failed"
        when = f"; next try in {int(retry_in)} s" if retry_in > 0 else ""
        return f"Backing off after an error: {err}{when}."
    if source.watcher == "degraded":
        reason = source.watcher_reason or "live watching is unavailable"
        return f"Watcher degraded, polling instead: {reason}"
    if source.queued and snap.current and snap.current != sid:
        return f"Queued behind {snap.current} (one source syncs at a time)."
    return ""
