"""`lancedb-sync status` and `failed`: what the index holds, what failed, what the service does.
Neither opens the index: they read the sync state and, if one runs, the service's status."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from app import __version__
from app.cli.errors import EXIT_OK


def cmd_status(args: Any, settings: Any) -> int:
    from app.service import Service
    from app.wording import ago

    service = Service(settings)
    status = service.read_status()
    model = service.index_model()
    sources = []
    for s in status.sources:
        last = s.last_sync or {}
        sources.append({
            "source_id": s.source_id, "source_type": s.source_type, "enabled": s.enabled,
            "documents": s.documents, "failed": s.failed, "skipped": s.skipped,
            "chunks": s.chunks, "last_sync": last.get("finished_at"),
            "last_outcome": last.get("outcome"), "problems": last.get("problems", []),
            "state": s.state if status.running else None, "waiting": s.waiting or None,
            "watcher": s.watcher if status.running else None,
            "watcher_reason": s.watcher_reason or None,
            "progress": dataclasses.asdict(s.progress) if s.progress else None,
            "queued_paths": s.queued_paths if status.running else None,
        })
    health = status.health or {}
    info = {"version": __version__, "index": settings.index_uri,
            "documents_table": settings.documents_table, "chunks_table": settings.chunks_table,
            "embed_model": model or None, "sources": sources,
            "documents": sum(s["documents"] for s in sources),
            "failed": sum(s["failed"] for s in sources),
            "chunks": sum(s["chunks"] for s in sources),
            "service": {"running": status.running, "pid": status.pid, "paused": status.paused,
                        "paused_until": status.paused_until, "held": status.held,
                        "on_battery": status.on_battery,
                        "queue": dataclasses.asdict(status.queue), "health": health,
                        "updated_at": status.updated_at if status.running else None}}
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"Index: {info['index']}  ({info['documents']:,} documents, {info['chunks']:,} chunks"
          f"{', model ' + model if model else ''})")
    if status.running:
        mode = "paused" if status.paused else "running"
        print(f"Service: {mode} (pid {status.pid}), health {health.get('status', '?')}, "
              f"queue: {status.queue.sources} source(s), {status.queue.paths} path(s)")
    else:
        print(f"Service: not running (start it with 'lancedb-sync run' or the tray app); "
              f"health {health.get('status', '?')}")
    for check in health.get("checks", []):
        if check["status"] != "ok":
            who = f"{check['source_id']}: " if check.get("source_id") else ""
            print(f"  {check['status'].upper()}: {who}{check['detail']}")
    if not sources:
        print("No sources yet. Add one with: lancedb-sync sources add local ~/Documents")
    for s in sources:
        when = ago(s["last_sync"]) if s["last_sync"] else "never synced"
        state = f"  [{s['state']}]" if s.get("state") else ""
        print(f"  {s['source_id']:<20} {s['documents']:>7,} docs  {s['failed']:>4} failed  "
              f"{s['skipped']:>4} skipped  last sync: {when} ({s['last_outcome'] or '-'}){state}")
        if s.get("waiting"):
            print(f"    waiting: {s['waiting']}")
        for problem in s["problems"]:
            print(f"    ! {problem}")
    return EXIT_OK


def cmd_failed(args: Any, settings: Any) -> int:
    from app.service import Service

    rows = Service(settings).failed_files(args.source_id, include_ignored=True)
    if args.json:
        print(json.dumps([{"source_id": r.source_id, "uri": r.uri, "status": r.status,
                           "reason": r.error, "at": r.indexed_at,
                           "previous_version_kept": r.previous_kept, "retrying": r.retrying}
                          for r in rows], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("No failed or skipped files.")
        return EXIT_OK
    for r in rows:
        print(f"{r.status:<8} {r.uri.removeprefix('file://')}\n         {r.error}")
    return EXIT_OK
