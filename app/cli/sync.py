"""`lancedb-sync sync`, `retry` and `run`."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from typing import Any

from app.cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UserError
from app.cli.output import ProgressLine, ctrl_c_cancels

log = logging.getLogger(__name__)


def cmd_sync(args: Any, settings: Any) -> int:
    sources = [s for s in settings.sources if not args.source_id or s.source_id == args.source_id]
    if args.source_id and not sources:
        raise UserError(no_source(args.source_id), EXIT_USAGE)
    if not sources:
        raise UserError("No sources configured. Add one with: lancedb-sync sources add local "
                        "FOLDER", EXIT_USAGE)
    require_free_disk(settings)
    ids = [s.source_id for s in sources if s.enabled]
    log.info("sync started (command line): %s; index %s", ", ".join(ids) or "no enabled source",
             settings.index_uri)
    progress = ProgressLine()
    try:
        outcome = _sync_via_api(settings, ids, args.source_id, progress) if ids else None
        if outcome is None:
            outcome = _sync_here(settings, ids, progress)
    finally:
        progress.finish()
    reports, interrupted = outcome
    for r in reports:
        log.info("sync of %s %s: %s", r["source_id"],
                 "stopped" if interrupted else "finished", _summary(r))
        for problem in r["problems"]:
            log.warning("sync of %s: %s", r["source_id"], problem)
        for problem in r["maintenance_errors"]:
            log.warning("sync of %s: index upkeep failed: %s", r["source_id"], problem)
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        _print_reports(reports, interrupted)
    if interrupted:
        done = sum(r["added"] + r["modified"] for r in reports)
        log.info("sync interrupted by the user after %d documents", done)
        print(f"lancedb-sync: interrupted; {done} documents were indexed before stopping and "
              "nothing half-written was kept. Run 'lancedb-sync sync' to continue.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def no_source(source_id: str) -> str:
    """What every command says of a source id that names no source."""
    return f"No source named {source_id!r}."


def _summary(r: dict[str, Any]) -> str:
    return (f"added {r['added']}, modified {r['modified']}, deleted {r['deleted']}, moved "
            f"{r['moved']}, unchanged {r['unchanged'] + r['touched']}, failed {r['failed']}, "
            f"skipped {r['skipped']}, unsupported {r.get('unsupported', 0)} "
            f"({r['seconds']:.2f} s)")


def _print_reports(reports: list[dict[str, Any]], interrupted: bool) -> None:
    """One line per source, then what needs saying; after Ctrl-C, what was done before the
    pass stopped (a source not reached has no line)."""
    for r in reports:
        stopped = " — stopped before the end" if r.get("cancelled") else ""
        print(f"{r['source_id']}: {_summary(r)}{stopped}")
        for problem in r["problems"]:
            print(f"  ! {problem}")
        if r["retrying"]:
            print(f"  {r['retrying']} of the failed files may succeed later; they are tried "
                  "again on the next sync")
        if r["failed"]:
            print("  see 'lancedb-sync failed' for the reasons")
        for problem in r["maintenance_errors"]:
            print(f"  ! index upkeep failed ({problem}); your documents are indexed and "
                  "searchable, and it is tried again later")


def _sync_here(settings: Any, ids: list[str],
               progress: ProgressLine) -> tuple[list[dict[str, Any]], bool]:
    """One pass in this process (it takes the writer lock: exits 3 while an app syncs).
    Interrupted: Ctrl-C stopped a pass before its end (pressed after the last batch, it
    changed nothing)."""
    import asyncio

    from app.service import Service

    with ctrl_c_cancels() as cancel:
        reports = asyncio.run(Service(settings).sync_once(ids, on_progress=progress,
                                                          cancel=cancel))
    interrupted = cancel.is_set() and (len(reports) < len(ids) or
                                       any(r.cancelled for r in reports))
    return [r.as_dict() for r in reports], interrupted


def _sync_via_api(settings: Any, ids: list[str], source_id: str | None,
                  progress: ProgressLine) -> tuple[list[dict[str, Any]], bool] | None:
    """The pass as a job of the running app (POST /sync/manual), followed to its end; None
    when no app answers."""
    from app.cli import remote

    client = remote.client_for(settings)
    if client is None:
        return None
    body = {"source_id": source_id} if source_id else {}
    try:
        job = remote.follow_job(client, lambda: client.post("/api/v1/sync/manual", body),
                                progress_kind="progress", on_progress=progress)
    except remote.ApiUnreachable:
        return None
    except remote.ApiRequestError as exc:
        remote.fail(exc)
    except remote.JobInterrupted as stop:
        # Stopped, unless the pass had ended when the stop arrived (then it is simply done).
        return stop.job.get("result") or [], stop.job.get("state") != "done"
    if job["state"] != "done":
        remote.job_failed(job)
    return job["result"], False


def require_free_disk(settings: Any) -> None:
    """Refuse to start a write on a nearly full disk: say so in one line, with the remedy."""
    from app.service.health import ERROR, check_disk, index_location_problem

    problem = index_location_problem(settings.index_uri)
    if problem:
        raise UserError(problem, EXIT_USAGE)
    with contextlib.suppress(OSError):
        check = check_disk(settings.index_uri, settings.min_free_disk_mb)
        if check.status == ERROR:
            raise UserError(check.detail.replace("syncing is held until space is freed",
                                                 "free some space there (or lower "
                                                 "min_free_disk_mb), then sync again"))


def cmd_retry(args: Any, settings: Any) -> int:
    if args.source_id and settings.source(args.source_id) is None:
        raise UserError(no_source(args.source_id), EXIT_USAGE)
    n = _retry_via_api(settings, args.source_id)
    if n is None:
        import asyncio

        from app.service import Service

        n = asyncio.run(Service(settings).retry_failed(source_id=args.source_id))
    print(f"{n} failed or skipped files will be tried again.")
    if args.no_sync or n == 0:
        return EXIT_OK
    import argparse

    return cmd_sync(argparse.Namespace(source_id=args.source_id, json=False), settings)


def _retry_via_api(settings: Any, source_id: str | None) -> int | None:
    from app.cli import remote

    client = remote.client_for(settings)
    if client is None:
        return None
    try:
        return client.post("/api/v1/failed/retry", {"source_id": source_id})["retrying"]
    except remote.ApiUnreachable:
        return None
    except remote.ApiRequestError as exc:
        if exc.code == "unknown_source":  # as in this process
            raise UserError(no_source(source_id or ""), EXIT_USAGE) from None
        remote.fail(exc)


def cmd_run(args: Any, settings: Any) -> int:
    from app.cli import daemon

    if not settings.sources:
        raise UserError("No sources configured. Add one with: lancedb-sync sources add local "
                        "FOLDER", EXIT_USAGE)
    api = None if args.no_api or not settings.api_enabled else daemon.ApiOptions()
    return daemon.main(settings, watch=False if args.no_watch else None, plain=args.plain,
                       api=api)


def cmd_api(args: Any, settings: Any) -> int:
    """`run` with the API on (also with no sources yet: they can be added through it)."""
    from app.cli import daemon

    if args.port is not None and not 0 <= args.port <= 65535:
        raise UserError("--port must be between 0 and 65535.", EXIT_USAGE)
    return daemon.main(settings, watch=False if args.no_watch else None, plain=args.plain,
                       api=daemon.ApiOptions(host=args.host, port=args.port))
