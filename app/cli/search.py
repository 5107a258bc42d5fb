"""`lancedb-sync search`: the same results as the tray's Search window, through the Service,
or through the running app's REST API when one serves this index (app/cli/remote.py)."""

from __future__ import annotations

import json
from typing import Any

from app.cli.errors import EXIT_OK, EXIT_USAGE, UserError

API_MAX_K = 200  # the API's limit; a larger -k is answered in this process


def cmd_search(args: Any, settings: Any) -> int:
    from datetime import UTC, datetime

    after = None
    if args.modified_after:
        try:
            after = datetime.fromisoformat(args.modified_after).replace(tzinfo=UTC)
        except ValueError:
            raise UserError(f"--after expects a date like 2024-05-31, not "
                            f"{args.modified_after!r}.", EXIT_USAGE) from None
    if args.k < 1:
        raise UserError("-k must be at least 1.", EXIT_USAGE)
    if args.source_id and args.snapshot is None and settings.source(args.source_id) is None:
        raise UserError(f"No source named {args.source_id!r}.", EXIT_USAGE)
    query = " ".join(args.query)
    hits = None
    # The API searches the local index only, by whole days.
    if args.snapshot is None and args.k <= API_MAX_K and (
            after is None or after == after.replace(hour=0, minute=0, second=0, microsecond=0)):
        hits = _search_via_api(args, settings, query, after)
    if hits is None:
        from app.models import SearchFilters
        from app.service import Service

        filters = SearchFilters(args.source_id, args.file_type, args.path_prefix, after)
        hits = [h.as_dict() for h in Service(settings).search(
            query, k=args.k, mode=args.mode, filters=filters, snapshot=args.snapshot)]
    return print_hits(hits, as_json=args.json)


def _search_via_api(args: Any, settings: Any, query: str,
                    after: Any) -> list[dict[str, Any]] | None:
    """The hits from the running app, or None when none answers."""
    from app.cli import remote

    answer = remote.get(settings, "/api/v1/search", {
        "q": query, "k": args.k, "mode": args.mode, "source_id": args.source_id,
        "file_type": args.file_type, "path_prefix": args.path_prefix,
        "modified_after": after.date().isoformat() if after else None})
    return None if answer is None else answer["results"]


def print_hits(hits: list[dict[str, Any]], *, as_json: bool) -> int:
    """Hits in their JSON form (SearchHit.as_dict), as both paths print them."""
    if as_json:
        print(json.dumps(hits, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not hits:
        print("No results.")
        return EXIT_OK
    for i, h in enumerate(hits, 1):
        where = h["uri"].removeprefix("file://")
        page = f" (page {h['page']})" if h["page"] else ""
        print(f"{i:>2}. {h['title']}{page}  [{h['score']:.3f}]")
        print(f"    {where}")
        print(f"    {h['snippet']}")
    return EXIT_OK
