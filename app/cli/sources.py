"""`lancedb-sync sources add|list|remove`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

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


def _add(args: Any, settings: Any) -> int:
    from app.config import save_sources
    from app.models import SourceConfig, SourceType

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
    save_sources(settings, (*settings.sources,
                            SourceConfig(SourceType.LOCAL_FILESYSTEM, source_id, config)))
    print(f"Added source {source_id!r} ({', '.join(config['watch_paths'])}). "
          "Run 'lancedb-sync sync' to index it.")
    return EXIT_OK


def _remove(args: Any, settings: Any) -> int:
    from app.config import save_sources
    from app.service import Service

    if not settings.source(args.source_id):
        raise UserError(f"No source named {args.source_id!r}. See 'lancedb-sync sources "
                        "list'.", EXIT_USAGE)
    purged = 0
    if args.purge:
        # Documents first: if that is interrupted, the source stays configured and running
        # this command again finishes the removal.
        purged = asyncio.run(Service(settings).purge_source(args.source_id))
    save_sources(settings, tuple(s for s in settings.sources if s.source_id != args.source_id))
    extra = f"; {purged} documents deleted from the index" if args.purge else \
        "; its documents stay in the index (use --purge to delete them)"
    print(f"Removed source {args.source_id!r}{extra}.")
    return EXIT_OK
