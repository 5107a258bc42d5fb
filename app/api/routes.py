"""The routes (docs/api.md lists each with a curl example). Every route calls the Service; a
blocking call runs in a worker thread, never on the loop the tray also draws with."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPBearer

from app import __version__
from app.api.errors import ApiError
from app.api.models import (
    ErrorOut,
    HealthOut,
    JobOut,
    ManualSyncIn,
    PauseIn,
    RetryIn,
    SearchIn,
    SearchMode,
    SearchOut,
    SourceIn,
    SourceOut,
)
from app.service.source_rules import SourceConfigError

health_router = APIRouter()
# The guard (security.py) checks the token before any route runs; declaring the scheme here
# puts it in the OpenAPI document, so the docs page offers "Authorize".
router = APIRouter(prefix="/api/v1", dependencies=[Depends(HTTPBearer(
    auto_error=False, description="The token from api.json in the app's state folder"))])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "model": ErrorOut}
    for code, text in ((400, "Bad input"), (401, "Missing or wrong token"),
                       (403, "Host not allowed"), (404, "Unknown source or job"),
                       (409, "Cannot do that now"), (422, "Invalid field"))}


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


# -- health and status ----------------------------------------------------------------------------

@health_router.get("/health", response_model=HealthOut, tags=["status"])
async def health(request: Request) -> dict[str, Any]:
    """The health summary: ok, warning or error, with the checks that are not ok. No token
    needed."""
    status = _ctx(request).service.get_status()
    h = status.health or {}
    return {"status": h.get("status", "unknown"), "running": status.running,
            "paused": status.paused, "version": __version__,
            "checks": [c for c in h.get("checks", []) if c.get("status") != "ok"]}


@router.get("/status", tags=["status"], responses=ERRORS)
async def status(request: Request) -> dict[str, Any]:
    """Everything the tray shows: per-source state and why it waits, counts, progress, the
    last pass, retries, watchers, the queue, health and the last backup."""
    return _ctx(request).service.get_status().as_dict()


@router.get("/sync/status", tags=["sync"], responses=ERRORS)
async def sync_status(request: Request) -> dict[str, Any]:
    """What syncing is doing: paused or held, the source being synced, the queue, and per
    source its state, progress and last pass."""
    s = _ctx(request).service.get_status().as_dict()
    keep = ("source_id", "state", "waiting", "progress", "last_sync", "queued", "retry_in",
            "last_error")
    return {"paused": s["paused"], "paused_until": s["paused_until"], "held": s["held"],
            "current": s["current"], "queue": s["queue"],
            "sources": [{k: x.get(k) for k in keep} for x in s["sources"]]}


# -- sources --------------------------------------------------------------------------------------

def _source_out(source: Any, status: Any) -> dict[str, Any]:
    """One source as the API shows it; `status` is the service's status, read once per
    request (it builds every source's state)."""
    st = status.source(source.source_id)
    return {"source_id": source.source_id, "source_type": source.source_type.value,
            "enabled": source.enabled, "poll_interval": source.poll_interval,
            "config": dict(source.config),
            "state": st.state if st else "idle", "waiting": st.waiting if st else None,
            **(st.count_fields(st.counts) if st else
               dict.fromkeys(("documents", "failed", "skipped", "chunks"), 0)),
            "last_sync": st.last_sync if st else None}


def _find_source(service: Any, source_type: str, source_id: str) -> Any:
    source = service.settings.source(source_id)
    if source is None or source.source_type.value != source_type:
        raise ApiError(404, "unknown_source",
                       f"No {source_type} source named {source_id!r}. GET /api/v1/sources "
                       "lists them.")
    return source


@router.get("/sources", response_model=list[SourceOut], tags=["sources"], responses=ERRORS)
async def list_sources(request: Request) -> list[dict[str, Any]]:
    """The configured sources with their state and counts."""
    service = _ctx(request).service
    status = service.get_status()
    return [_source_out(s, status) for s in service.settings.sources]


@router.post("/sources", status_code=201, response_model=SourceOut, tags=["sources"],
             responses=ERRORS)
async def add_source(request: Request, body: SourceIn) -> dict[str, Any]:
    """Add a source; it is synced at once when enabled."""
    from app.models import SourceConfig, SourceType

    service = _ctx(request).service
    if body.source_type != "local":
        raise ApiError(400, "not_supported",
                       f"{body.source_type} sources are not available yet; only local "
                       "folders can be added.", "source_type")
    if service.settings.source(body.source_id):
        raise ApiError(409, "source_exists",
                       f"A source named {body.source_id!r} exists already; choose another "
                       "source_id.", "source_id")
    config = _local_config(body.config)
    source = SourceConfig(SourceType(body.source_type), body.source_id, config,
                          body.poll_interval, body.enabled)
    try:  # the rules every face shares: app/service/source_rules.py
        await service.add_source(source)
    except SourceConfigError as exc:
        raise ApiError(422, "invalid_value", str(exc),
                       "config.watch_paths" if exc.field == "watch_paths" else exc.field
                       ) from None
    return _source_out(source, service.get_status())


def _local_config(config: dict[str, Any]) -> dict[str, Any]:
    allowed = {"watch_paths", "file_patterns", "exclude_patterns"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ApiError(422, "invalid_value", f"Unknown setting {unknown[0]!r} for a local "
                       f"source; expected {', '.join(sorted(allowed))}.", f"config.{unknown[0]}")
    paths = config.get("watch_paths")
    if isinstance(paths, str):
        paths = [paths]
    if not paths or not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ApiError(422, "missing_field", "config.watch_paths needs at least one folder.",
                       "config.watch_paths")
    # Whether each folder is absolute, exists and overlaps no other source is the service's
    # rule (app/service/source_rules.py), shared with the CLI and the tray; this checks only
    # the request's shape.
    folders = [os.path.expanduser(p) for p in paths]
    # Stored as the command line stores them (symlinks resolved); a relative path is left for
    # the rule to refuse, not made absolute against this process's working folder.
    out: dict[str, Any] = {"watch_paths": [os.path.realpath(f) if os.path.isabs(f) else f
                                           for f in folders]}
    for key in ("file_patterns", "exclude_patterns"):
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ApiError(422, "invalid_value", f"config.{key} must be a list of patterns.",
                           f"config.{key}")
        out[key] = value
    return out


@router.delete("/sources/{source_type}/{source_id}", tags=["sources"], responses=ERRORS)
async def remove_source(request: Request, source_type: str, source_id: str,
                        purge: bool = True) -> dict[str, Any]:
    """Forget a source and delete its documents from the index (`documents`: how many). A
    removed source's documents cannot be kept (`?purge=false` is refused): disable the source
    to stop syncing it and keep them. Also removes the documents a source removed by an
    earlier version left in the index."""
    service = _ctx(request).service
    if not purge:
        raise ApiError(422, "invalid_value", "A removed source's documents cannot be kept "
                       "(they would stay searchable but be counted and managed nowhere); "
                       "disable the source instead to keep them.", "purge")
    if service.settings.source(source_id) is not None or source_id not in await \
            asyncio.to_thread(service.detached_sources):
        _find_source(service, source_type, source_id)
    documents = await service.remove_source(source_id)
    return {"removed": source_id, "purged": True, "documents": documents}


@router.post("/sources/{source_type}/{source_id}/scan", status_code=202, tags=["sources"],
             responses=ERRORS)
async def scan_source(request: Request, source_type: str, source_id: str) -> dict[str, Any]:
    """Queue a full pass of one source (it runs after the pass under way)."""
    service = _ctx(request).service
    source = _find_source(service, source_type, source_id)
    if not source.enabled:
        raise ApiError(409, "source_disabled", f"Source {source_id!r} is disabled.")
    service.sync_now(source_id)
    return {"queued": [source_id]}


# -- sync -----------------------------------------------------------------------------------------

@router.post("/sync/manual", status_code=202, response_model=JobOut, tags=["sync"],
             responses=ERRORS)
async def manual_sync(request: Request, body: ManualSyncIn | None = None) -> dict[str, Any]:
    """Sync now: every enabled source, one (`source_id`), or the sources holding `paths`.
    Answers with a job; it runs even while syncing is paused (you asked for it)."""
    ctx = _ctx(request)
    service = ctx.service
    body = body or ManualSyncIn()
    ids = _sources_for(service, body)

    async def work(job: Any) -> Any:
        def progress(p: Any) -> None:  # on the pass thread
            ctx.jobs.progress(job, source_id=p.source_id, phase=p.phase, done=p.done,
                              total=p.total)

        reports = await service.sync_once(ids, on_progress=progress, cancel=job.cancel)
        if job.cancel.is_set() and len(reports) == len(ids) and not any(
                r.cancelled for r in reports):
            job.cancel.clear()  # the pass ran to its end: the job is done, not cancelled
        return [r.as_dict() for r in reports]

    return ctx.jobs.start("sync", work).as_dict()


def _sources_for(service: Any, body: ManualSyncIn) -> list[str]:
    sources = [s for s in service.settings.sources if s.enabled]
    if body.source_id is not None:
        source = service.settings.source(body.source_id)
        if source is None:
            raise ApiError(404, "unknown_source", f"No source named {body.source_id!r}.",
                           "source_id")
        if not source.enabled:
            raise ApiError(409, "source_disabled", f"Source {body.source_id!r} is disabled.",
                           "source_id")
        sources = [source]
    if body.paths:
        chosen = []
        for raw in body.paths:
            path = Path(os.path.expanduser(raw)).resolve()
            owners = [s for s in sources if any(
                path == Path(w) or Path(w) in path.parents
                for w in s.config.get("watch_paths", ()))]
            if not owners:
                raise ApiError(422, "invalid_value", f"{raw} is in no enabled source.", "paths")
            chosen.extend(o for o in owners if o not in chosen)
        sources = chosen
    if not sources:
        raise ApiError(409, "no_sources", "No enabled sources. Add one with POST "
                       "/api/v1/sources.")
    return [s.source_id for s in sources]


@router.post("/sync/cleanup", status_code=202, response_model=JobOut, tags=["sync"],
             responses=ERRORS)
async def cleanup(request: Request) -> dict[str, Any]:
    """Repair, compact and prune old versions of the index, as a job (it waits for the pass
    under way)."""
    ctx = _ctx(request)

    async def work(job: Any) -> Any:
        return await ctx.service.cleanup()

    return ctx.jobs.start("cleanup", work).as_dict()


@router.get("/jobs", response_model=list[JobOut], tags=["jobs"], responses=ERRORS)
async def list_jobs(request: Request) -> list[dict[str, Any]]:
    return [j.as_dict() for j in _ctx(request).jobs.list()]


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses=ERRORS)
async def get_job(request: Request, job_id: str) -> dict[str, Any]:
    job = _ctx(request).jobs.get(job_id)
    if job is None:
        raise ApiError(404, "unknown_job", f"No job {job_id!r} (finished jobs are kept for a "
                       "while, then forgotten).")
    return job.as_dict()


@router.delete("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses=ERRORS)
async def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
    """Ask a job to stop at its next safe point (nothing half-written is kept)."""
    job = _ctx(request).jobs.get(job_id)
    if job is None:
        raise ApiError(404, "unknown_job", f"No job {job_id!r}.")
    job.cancel.set()
    if job.kind == "backup":
        _ctx(request).service.cancel_backup()
    return job.as_dict()


# -- pipeline -------------------------------------------------------------------------------------

@router.post("/pipeline/stop", tags=["pipeline"], responses=ERRORS)
async def pipeline_stop(request: Request, body: PauseIn | None = None) -> dict[str, Any]:
    """Pause syncing (the API stays up; the pass under way stops at a batch boundary). It
    stays paused across restarts until `/pipeline/start` or `until`."""
    import time as clock

    service = _ctx(request).service
    until = None
    if body is not None:
        until = body.until if body.minutes is None else clock.time() + body.minutes * 60
    service.pause(until)
    paused, until = service.paused
    return {"paused": paused, "paused_until": until}


@router.post("/pipeline/start", tags=["pipeline"], responses=ERRORS)
async def pipeline_start(request: Request) -> dict[str, Any]:
    """Resume syncing."""
    service = _ctx(request).service
    service.resume()
    paused, until = service.paused
    return {"paused": paused, "paused_until": until}


# -- search ---------------------------------------------------------------------------------------

async def _search(request: Request, q: SearchIn) -> dict[str, Any]:
    from app.models import SearchFilters
    from app.service.operations import SearchError

    after = None
    if q.modified_after is not None:
        after = datetime.combine(q.modified_after, time(), tzinfo=UTC)
    filters = SearchFilters(q.source_id, q.file_type, q.path_prefix, after)
    service = _ctx(request).service
    try:
        hits = await asyncio.to_thread(service.search, q.query, k=q.k, mode=q.mode,
                                       filters=filters)
    except SearchError as exc:
        raise ApiError(409, "cannot_search", str(exc)) from None
    return {"query": q.query, "mode": q.mode, "results": [h.as_dict() for h in hits]}


@router.get("/search", response_model=SearchOut, tags=["search"], responses=ERRORS)
async def search_get(request: Request,
                     q: Annotated[str, Query(min_length=1, max_length=2000)],
                     k: Annotated[int, Query(ge=1, le=200)] = 10,
                     mode: SearchMode = "hybrid", source_id: str | None = None,
                     file_type: str | None = None, path_prefix: str | None = None,
                     modified_after: date | None = None) -> dict[str, Any]:
    """Search the index: the same results as the tray's Search window."""
    return await _search(request, SearchIn(
        query=q, k=k, mode=mode, source_id=source_id, file_type=file_type,
        path_prefix=path_prefix, modified_after=modified_after))


@router.post("/search", response_model=SearchOut, tags=["search"], responses=ERRORS)
async def search_post(request: Request, body: SearchIn) -> dict[str, Any]:
    """Search with a JSON body (same fields as the GET form; `query` instead of `q`)."""
    return await _search(request, body)


# -- failed files ---------------------------------------------------------------------------------

@router.get("/failed", tags=["failed"], responses=ERRORS)
async def failed(request: Request, source_id: str | None = None,
                 include_ignored: bool = False,
                 status: str | None = None) -> list[dict[str, Any]]:
    """Files that could not be indexed, with the reason and whether they are retried: `status`
    is `failed` (a person can act on it), `skipped` (by design: empty, no text, generated) or
    `unsupported` (a type the app does not read); `status=failed` lists only failures.
    `include_ignored=true` also lists those hidden in the tray's ledger."""
    import dataclasses

    service = _ctx(request).service
    if source_id is not None and service.settings.source(source_id) is None:
        raise ApiError(404, "unknown_source", f"No source named {source_id!r}.", "source_id")
    rows = await asyncio.to_thread(service.failed_files, source_id,
                                   include_ignored=include_ignored)
    return [dataclasses.asdict(r) for r in rows if status is None or r.status == status]


@router.post("/failed/retry", tags=["failed"], responses=ERRORS)
async def failed_retry(request: Request, body: RetryIn | None = None) -> dict[str, Any]:
    """Try failed files again on the next pass (all, one source's, or the given ones)."""
    service = _ctx(request).service
    body = body or RetryIn()
    if body.source_id is not None and service.settings.source(body.source_id) is None:
        raise ApiError(404, "unknown_source", f"No source named {body.source_id!r}.",
                       "source_id")
    n = await service.retry_failed(body.doc_uids, source_id=body.source_id)
    return {"retrying": n}


# -- backups --------------------------------------------------------------------------------------

@router.get("/backups", tags=["backups"], responses=ERRORS)
async def backups(request: Request, device: str | None = None) -> dict[str, Any]:
    """The snapshots in the backup bucket (this device's and others'), and the last backup."""
    service = _ctx(request).service
    if not service.settings.s3_bucket:
        raise ApiError(409, "no_bucket", "No backup bucket is configured (set S3_BUCKET or "
                       "choose one in the Backup window).")

    def snapshots() -> dict[str, Any]:
        manager = service.backup_manager()
        dev = manager.resolve(device).device_id if device else None
        return {"this_device": manager.device.device_id,
                "snapshots": [s.summary() for s in manager.snapshots(dev)]}

    out = await asyncio.to_thread(snapshots)
    out["last_backup"] = service.get_status().backup
    return out


@router.post("/backups", status_code=202, response_model=JobOut, tags=["backups"],
             responses=ERRORS)
async def backup_now(request: Request) -> dict[str, Any]:
    """Back up now, as a job (its progress is also on the event stream)."""
    ctx = _ctx(request)
    if not ctx.service.settings.s3_bucket:
        raise ApiError(409, "no_bucket", "No backup bucket is configured (set S3_BUCKET or "
                       "choose one in the Backup window).")

    async def work(job: Any) -> Any:
        return await ctx.service.backup_now()

    return ctx.jobs.start("backup", work).as_dict()


# -- events ---------------------------------------------------------------------------------------

@router.get("/events", tags=["events"], responses=ERRORS)
async def events(request: Request,
                 last_event_id: Annotated[str | None, Header()] = None,
                 kinds: str | None = None) -> StreamingResponse:
    """Server-Sent Events: progress, state, errors, sync, job and backup results. Each has an
    increasing `id`; reconnect with `Last-Event-ID` to get what you missed. `?kinds=a,b`
    keeps only those kinds."""
    after = None
    if last_event_id is not None:
        try:
            after = int(last_event_id)
        except ValueError:
            raise ApiError(400, "bad_request", "Last-Event-ID must be an event id (a number)."
                           ) from None
    wanted = {k.strip() for k in kinds.split(",") if k.strip()} if kinds else None
    log = _ctx(request).events
    return StreamingResponse(log.stream(after, wanted), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
