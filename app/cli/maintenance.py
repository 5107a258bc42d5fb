"""`lancedb-sync check`, `cleanup`, `reembed` and `self-check`: the index's upkeep."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from app.cli.errors import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UserError
from app.cli.output import CountLine, ProgressLine, ctrl_c_cancels


def cmd_cleanup(args: Any, settings: Any) -> int:
    from app.service import Service

    result = asyncio.run(Service(settings).cleanup())
    before, after = result["before"], result["after"]
    dupes = result["duplicate_chunks_removed"]
    print(f"Removed {result['orphan_chunks_deleted']} orphan chunks"
          f"{f' and {dupes} duplicate chunks' if dupes else ''}; "
          f"{len(result['documents_to_redo'])} documents will be re-indexed on the next sync; "
          f"versions {before['chunks_versions']}→{after['chunks_versions']}, "
          f"fragments {before['chunks_fragments']}→{after['chunks_fragments']}.")
    for sid, n in sorted(result.get("detached_removed", {}).items()):
        print(f"Deleted {n} documents left in the index by the removed source {sid!r}.")
    for step, why in result["maintenance_errors"].items():
        print(f"  ! {step} failed: {why}; it is tried again later.")
    return EXIT_OK


def cmd_check(args: Any, settings: Any) -> int:
    from app.service import Service

    index = settings.index_uri
    if settings.index_dir is not None and not settings.index_dir.exists():
        raise UserError("There is no index yet. Add a source and run 'lancedb-sync sync'.")
    progress = ProgressLine()
    try:
        result = asyncio.run(Service(settings).check(repair=args.repair, on_progress=progress))
    finally:
        progress.finish()
    found, after, fixed = result["found"], result["after"], result["repaired"]
    if args.json:
        out: dict[str, Any] = {"index": index, "clean": after.clean, "found": found.as_dict()}
        if fixed is not None:
            out["repaired"] = {"orphan_chunks_deleted": fixed.orphan_chunks_deleted,
                               "duplicate_chunks_removed": fixed.duplicate_chunks_removed,
                               "documents_reindexed": len(fixed.documents_to_redo)}
            out["after"] = after.as_dict()
        print(json.dumps(out, indent=2))
        return EXIT_OK if after.clean else EXIT_FAIL
    print(f"Index: {index} ({found.documents:,} documents, {found.chunks:,} chunks)")
    if found.clean:
        print("OK: every chunk id is unique, every chunk belongs to its document's current "
              "version, every document has the chunks its row counts, and the sync state "
              "matches the index.")
        return EXIT_OK
    for line in found.problems():
        print(f"  ! {line}")
    if fixed is None:
        print("Run 'lancedb-sync check --repair' to fix this; the affected documents are "
              "indexed again.")
        return EXIT_FAIL
    print(f"Repaired: removed {fixed.orphan_chunks_deleted} orphan and "
          f"{fixed.duplicate_chunks_removed} duplicate chunks; indexed "
          f"{len(fixed.documents_to_redo)} documents again.")
    if after.clean:
        print("OK: the index is consistent now.")
        return EXIT_OK
    for line in after.problems():
        print(f"  ! still: {line}")
    print("Some problems remain (documents of a source that is no longer configured are not "
          "indexed again); see 'lancedb-sync check --json'.")
    return EXIT_FAIL


def cmd_reembed(args: Any, settings: Any) -> int:
    from app.service import Service

    service = Service(settings)
    plan = service.reembed_plan()
    if not plan.needed:
        print(f"The index already uses {plan.wanted_model}; nothing to do."
              if plan.current_model else "The index is empty; nothing to re-embed.")
        return EXIT_OK
    print(plan.describe())
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError("Add --yes to confirm the re-embed.", EXIT_USAGE)
        if input("Re-embed now? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing changed.")
            return EXIT_OK
    progress = CountLine("chunks re-embedded")
    with ctrl_c_cancels("stopping; the index keeps its current model") as cancel:
        try:
            done = asyncio.run(service.reembed(on_progress=progress, cancel=cancel))
        finally:
            progress.finish()
    if cancel.is_set():
        return EXIT_INTERRUPTED
    print(f"Done: {done:,} chunks now use {plan.wanted_model}.")
    return EXIT_OK


def cmd_self_check(args: Any, settings: Any) -> int:
    from app import selfcheck

    return selfcheck.main()
