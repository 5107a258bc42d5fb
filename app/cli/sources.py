"""`lancedb-sync sources add|list|remove`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app.cli.errors import EXIT_OK, EXIT_USAGE, UserError


def cmd_sources(args: Any, settings: Any) -> int:
    if args.sources_command == "list":
        return _list(args, settings)
    if args.sources_command == "add":
        return _add(args, settings)
    if args.sources_command == "remove":
        return _remove(args, settings)
    raise AssertionError(args.sources_command)


def _list(args: Any, settings: Any) -> int:
    rows = _list_via_api(settings)
    if rows is None:
        from app.service import Service

        counts = Service(settings).counts()
        rows = []
        for s in settings.sources:
            c = counts.get(s.source_id, {})
            rows.append({"source_id": s.source_id, "source_type": s.source_type.value,
                         "enabled": s.enabled, "config": dict(s.config),
                         "documents": c.get("indexed", 0), "failed": c.get("failed", 0),
                         "skipped": c.get("skipped", 0)})
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("No sources yet. Add one with: lancedb-sync sources add local ~/Documents")
    else:
        for r in rows:
            where = ", ".join(r["config"].get("watch_paths", []))
            print(f"{r['source_id']:<20} {r['source_type']:<6} {r['documents']:>7} docs "
                  f"{r['failed']:>4} failed  {where}")
    return EXIT_OK


def _list_via_api(settings: Any) -> list[dict[str, Any]] | None:
    from app.cli import remote

    client = remote.client_for(settings)
    if client is None:
        return None
    try:
        sources = client.get("/api/v1/sources")
    except remote.ApiUnreachable:
        return None
    except remote.ApiRequestError as exc:
        remote.fail(exc)
    keys = ("source_id", "source_type", "enabled", "config", "documents", "failed", "skipped")
    return [{k: s[k] for k in keys} for s in sources]


def _add(args: Any, settings: Any) -> int:
    paths = [Path(p).expanduser().resolve() for p in args.path]
    for p in paths:
        if not p.is_dir():
            raise UserError(f"{p} is not a folder.", EXIT_USAGE)
    source_id = args.source_id or paths[0].name or "root"
    if settings.source(source_id):
        raise UserError(f"A source named {source_id!r} exists already; choose another "
                        "with --id.", EXIT_USAGE)
    if ":" in source_id or not source_id.strip():
        raise UserError("A source id cannot be empty or contain ':'.", EXIT_USAGE)
    config: dict[str, Any] = {"watch_paths": [str(p) for p in paths]}
    if args.pattern:
        config["file_patterns"] = args.pattern
    if args.exclude:
        config["exclude_patterns"] = args.exclude
    if not _add_via_api(settings, source_id, config):
        from app.config import save_sources
        from app.models import SourceConfig, SourceType

        save_sources(settings, (*settings.sources,
                                SourceConfig(SourceType.LOCAL_FILESYSTEM, source_id, config)))
    print(f"Added source {source_id!r} ({', '.join(config['watch_paths'])}). "
          "Run 'lancedb-sync sync' to index it.")
    return EXIT_OK


def _add_via_api(settings: Any, source_id: str, config: dict[str, Any]) -> bool:
    """Add the source through the running app (it saves the settings and starts syncing
    it); False when no app answers."""
    from app.cli import remote

    client = remote.client_for(settings)
    if client is None:
        return False
    try:
        client.post("/api/v1/sources", {"source_type": "local", "source_id": source_id,
                                        "config": config})
    except remote.ApiUnreachable:
        return False
    except remote.ApiRequestError as exc:
        if exc.code == "source_exists":
            raise UserError(f"A source named {source_id!r} exists already; choose another "
                            "with --id.", EXIT_USAGE) from None
        if exc.status == 409:
            raise UserError(exc.message, EXIT_USAGE) from None
        remote.fail(exc)
    return True


def _remove(args: Any, settings: Any) -> int:
    source = settings.source(args.source_id)
    if not source:
        raise UserError(f"No source named {args.source_id!r}. See 'lancedb-sync sources "
                        "list'.", EXIT_USAGE)
    purged = _remove_via_api(settings, source, args.purge)
    if purged is None:
        import asyncio

        from app.config import save_sources
        from app.service import Service

        purged = 0
        if args.purge:
            # Documents first: if that is interrupted, the source stays configured and running
            # this command again finishes the removal.
            purged = asyncio.run(Service(settings).purge_source(args.source_id))
        save_sources(settings, tuple(s for s in settings.sources
                                     if s.source_id != args.source_id))
    extra = f"; {purged} documents deleted from the index" if args.purge else \
        "; its documents stay in the index (use --purge to delete them)"
    print(f"Removed source {args.source_id!r}{extra}.")
    return EXIT_OK


def _remove_via_api(settings: Any, source: Any, purge: bool) -> int | None:
    """Remove the source through the running app; the number of its documents deleted from
    the index (with purge), or None when no app answers."""
    from app.cli import remote

    client = remote.client_for(settings)
    if client is None:
        return None
    where = f"/api/v1/sources/{source.source_type.value}/{quote(source.source_id, safe='')}"
    try:
        documents = 0
        if purge:  # what a purge deletes: the source's documents in the index
            for s in client.get("/api/v1/sources"):
                if s["source_id"] == source.source_id:
                    documents = s["documents"]
        answer = client.delete(where, {"purge": purge})
    except remote.ApiUnreachable:
        return None
    except remote.ApiRequestError as exc:
        remote.fail(exc)
    return documents if answer.get("purged") else 0
