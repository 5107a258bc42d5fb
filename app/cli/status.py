"""`lancedb-sync status` and `failed`: what the index holds, what failed, what the service does.
Neither opens the index: they read the sync state and, if one runs, the service's status."""

from __future__ import annotations

import json
from typing import Any

from app import __version__
from app.cli.errors import EXIT_OK


def cmd_status(args: Any, settings: Any) -> int:
    from app.service import Service
    from app.wording import ago

    service = Service(settings)
    status = _status_via_api(settings, service)
    if status is None:
        status = service.read_status().as_dict()
    model = service.index_model()
    info = status_info(status, model, settings)
    running = status["running"]
    health = info["service"]["health"]
    queue = info["service"]["queue"]
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"Index: {info['index']}  ({info['documents']:,} documents, {info['chunks']:,} chunks"
          f"{', model ' + model if model else ''})")
    print(f"Files: {counts_line(info['counts'])}")
    if running:
        mode = "paused" if status["paused"] else "running"
        print(f"Service: {mode} (pid {status['pid']}), health {health.get('status', '?')}, "
              f"queue: {queue['sources']} source(s), {queue['paths']} path(s)")
    else:
        print(f"Service: not running (start it with 'lancedb-sync run' or the tray app); "
              f"health {health.get('status', '?')}")
    for check in health.get("checks", []):
        if check["status"] != "ok":
            who = f"{check['source_id']}: " if check.get("source_id") else ""
            print(f"  {check['status'].upper()}: {who}{check['detail']}")
    if not info["sources"]:
        print("No sources yet. Add one with: lancedb-sync sources add local ~/Documents")
    for s in info["sources"]:
        when = ago(s["last_sync"]) if s["last_sync"] else "never synced"
        state = f"  [{s['state']}]" if s.get("state") else ""
        busy = f"  {s['in_progress']:,} in progress" if s["in_progress"] else ""
        print(f"  {s['source_id']:<20} {s['documents']:>7,} docs  {s['failed']:>4} failed  "
              f"{s['skipped']:>4} skipped  {s['unsupported']:>4} unsupported{busy}  "
              f"last sync: {when} ({s['last_outcome'] or '-'}){state}")
        if s.get("waiting"):
            print(f"    waiting: {s['waiting']}")
        for problem in s["problems"]:
            print(f"    ! {problem}")
    return EXIT_OK


# The one set of counts (app.models.Counts) in its JSON form: "documents" is Counts.indexed.
COUNT_KEYS = ("documents", "in_progress", "failed", "skipped", "unsupported", "ignored", "chunks")


def counts_line(c: dict[str, int]) -> str:
    """"12 indexed, 3 in progress, 0 failed, 1 skipped, 4 unsupported, 0 ignored"."""
    return (f"{c['documents']:,} indexed, {c['in_progress']:,} in progress, {c['failed']:,} "
            f"failed, {c['skipped']:,} skipped by design, {c['unsupported']:,} unsupported, "
            f"{c['ignored']:,} ignored")


def status_info(status: dict[str, Any], model: str, settings: Any) -> dict[str, Any]:
    """What `status --json` prints, from the service status in its JSON form
    (ServiceStatus.as_dict(): this process's reading or the running app's answer)."""
    running = status["running"]
    sources = []
    for s in status["sources"]:
        last = s["last_sync"] or {}
        sources.append({
            "source_id": s["source_id"], "source_type": s["source_type"],
            "enabled": s["enabled"], "documents": s["documents"], "failed": s["failed"],
            "skipped": s["skipped"], "chunks": s["chunks"],
            "in_progress": s.get("in_progress", 0), "unsupported": s.get("unsupported", 0),
            "ignored": s.get("ignored", 0),
            "last_sync": last.get("finished_at"), "last_outcome": last.get("outcome"),
            "problems": last.get("problems", []),
            "state": s["state"] if running else None, "waiting": s["waiting"] or None,
            "watcher": s["watcher"] if running else None,
            "watcher_reason": s["watcher_reason"] or None,
            "progress": s["progress"] or None,
            "queued_paths": s["queued_paths"] if running else None,
        })
    return {"version": __version__, "index": settings.index_uri,
            "documents_table": settings.documents_table, "chunks_table": settings.chunks_table,
            "embed_model": model or None, "sources": sources,
            "documents": sum(s["documents"] for s in sources),
            "failed": sum(s["failed"] for s in sources),
            "chunks": sum(s["chunks"] for s in sources),
            "counts": {k: sum(s[k] for s in sources) for k in COUNT_KEYS},
            "service": {"running": running, "pid": status["pid"], "paused": status["paused"],
                        "paused_until": status["paused_until"], "held": status["held"],
                        "on_battery": status["on_battery"], "queue": status["queue"],
                        "health": status["health"] or {},
                        "updated_at": status["updated_at"] if running else None}}


def _status_via_api(settings: Any, service: Any) -> dict[str, Any] | None:
    """The running app's status, its sources' earlier passes filled in from the journal as
    Service.read_status does for a service in another process; None when no app answers."""
    from app.cli import remote

    status = remote.get(settings, "/api/v1/status")
    if status is None:
        return None
    if any(not s["last_sync"] for s in status["sources"]):
        from app.service.status import run_summary

        runs = service.recent_runs()
        for s in status["sources"]:
            if not s["last_sync"] and s["source_id"] in runs:
                s["last_sync"] = run_summary(runs[s["source_id"]])
    return status


def cmd_failed(args: Any, settings: Any) -> int:
    rows = _failed_via_api(args, settings)
    if rows is None:
        import dataclasses

        from app.service import Service

        rows = [dataclasses.asdict(r) for r in
                Service(settings).failed_files(args.source_id, include_ignored=True)]
    every = getattr(args, "all", False)
    hidden = [r for r in rows if r["status"] != "failed"]
    if not every:
        rows = [r for r in rows if r["status"] == "failed"]
    if args.json:
        print(json.dumps([{"source_id": r["source_id"], "uri": r["uri"], "status": r["status"],
                           "reason": r["error"], "at": r["indexed_at"],
                           "previous_version_kept": r["previous_kept"],
                           "retrying": r["retrying"]}
                          for r in rows], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("No failed files." if not every else "No failed, skipped or unsupported files.")
    for r in rows:
        print(f"{r['status']:<11} {r['uri'].removeprefix('file://')}\n            {r['error']}")
    if hidden and not every:
        n_skip = sum(r["status"] == "skipped" for r in hidden)
        n_uns = len(hidden) - n_skip
        print(f"({n_skip:,} skipped by design and {n_uns:,} unsupported not shown: "
              "'lancedb-sync failed --all' lists them)")
    return EXIT_OK


def _failed_via_api(args: Any, settings: Any) -> list[dict[str, Any]] | None:
    """The ledger (FailedFile rows in their JSON form) from the running app, or None."""
    from app.cli import remote

    client = remote.client_for(settings)
    if client is None:
        return None
    try:
        return client.get("/api/v1/failed", {"source_id": args.source_id,
                                             "include_ignored": True})
    except remote.ApiUnreachable:
        return None
    except remote.ApiRequestError as exc:
        if exc.code == "unknown_source":  # here as in this process: nothing failed there
            return []
        remote.fail(exc)
