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
    from app.service import Service

    detached = Service(settings).detached_sources()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows and not detached:
        print("No sources yet. Add one with: lancedb-sync sources add local ~/Documents")
    else:
        for r in rows:
            where = ", ".join(r["config"].get("watch_paths", []))
            print(f"{r['source_id']:<20} {r['source_type']:<6} {r['documents']:>7} docs "
                  f"{r['failed']:>4} failed  {where}")
    if not args.json:
        for sid, c in sorted(detached.items()):
            n = sum(c.get(k, 0) for k in ("indexed", "failed", "skipped", "unsupported"))
            print(f"{sid:<20} {'-':<6} {n:>7} docs left in the index by a removed source; "
                  f"'lancedb-sync sources remove {sid}' deletes them")
    return EXIT_OK


def _list_via_api(settings: Any) -> list[dict[str, Any]] | None:
    from app.cli import remote

    sources = remote.get(settings, "/api/v1/sources")
    if sources is None:
        return None
    keys = ("source_id", "source_type", "enabled", "config", "documents", "failed", "skipped")
    return [{k: s[k] for k in keys} for s in sources]


def _add(args: Any, settings: Any) -> int:
    from app.models import SourceConfig, SourceType
    from app.service.source_rules import SourceConfigError, check_source

    paths = [Path(p).expanduser().resolve() for p in args.path]
    source_id = args.source_id or paths[0].name or "root"
    config: dict[str, Any] = {"watch_paths": [str(p) for p in paths]}
    if args.pattern:
        config["file_patterns"] = args.pattern
    if args.exclude:
        config["exclude_patterns"] = args.exclude
    source = SourceConfig(SourceType.LOCAL_FILESYSTEM, source_id, config)
    try:  # the rules every face shares (the running app checks them again)
        check_source(source, settings.sources)
    except SourceConfigError as exc:
        hint = " (--id)" if exc.field == "source_id" else ""
        raise UserError(f"{exc}{hint}", EXIT_USAGE) from None
    if not _add_via_api(settings, source_id, config):
        import asyncio

        from app.service import Service

        asyncio.run(Service(settings).add_source(source))
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
                            "name. (--id)", EXIT_USAGE) from None
        if exc.status == 409:
            raise UserError(exc.message, EXIT_USAGE) from None
        remote.fail(exc)
    return True


def _remove(args: Any, settings: Any) -> int:
    """Remove a source and its documents (a removed source's documents would be searchable
    but counted and managed nowhere). Also removes the documents a source removed by an
    earlier version left in the index."""
    from app.service import Service

    service = Service(settings)
    configured = settings.source(args.source_id) is not None
    if not configured and args.source_id not in service.detached_sources():
        raise UserError(f"No source named {args.source_id!r}. See 'lancedb-sync sources "
                        "list'.", EXIT_USAGE)
    purged = _remove_via_api(settings, args.source_id)
    if purged is None:
        import asyncio

        # Documents first: if that is interrupted, running this command again finishes it.
        purged = asyncio.run(service.remove_source(args.source_id))
    what = "source" if configured else "documents left by the removed source"
    print(f"Removed {what} {args.source_id!r}; {purged} documents deleted from the index.")
    return EXIT_OK


def _remove_via_api(settings: Any, source_id: str) -> int | None:
    """Remove the source through the running app; the number of its documents deleted from
    the index, or None when no app answers."""
    from app.cli import remote

    client = remote.client_for(settings)
    if client is None:
        return None
    source = settings.source(source_id)
    kind = source.source_type.value if source is not None else "local"
    where = f"/api/v1/sources/{kind}/{quote(source_id, safe='')}"
    try:
        answer = client.delete(where, {"purge": True})
    except remote.ApiUnreachable:
        return None
    except remote.ApiRequestError as exc:
        remote.fail(exc)
    return int(answer.get("documents", 0))
