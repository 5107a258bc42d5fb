"""`lancedb-sync search`: the same results as the tray's Search window, through the Service."""

from __future__ import annotations

import json
from typing import Any

from app.cli.errors import EXIT_OK, EXIT_USAGE, UserError


def cmd_search(args: Any, settings: Any) -> int:
    from datetime import UTC, datetime

    from app.models import SearchFilters
    from app.service import Service

    after = None
    if args.modified_after:
        try:
            after = datetime.fromisoformat(args.modified_after).replace(tzinfo=UTC)
        except ValueError:
            raise UserError(f"--after expects a date like 2024-05-31, not "
                            f"{args.modified_after!r}.", EXIT_USAGE) from None
    if args.k < 1:
        raise UserError("-k must be at least 1.", EXIT_USAGE)
    filters = SearchFilters(args.source_id, args.file_type, args.path_prefix, after)
    hits = Service(settings).search(" ".join(args.query), k=args.k, mode=args.mode,
                                    filters=filters, snapshot=args.snapshot)
    if args.json:
        print(json.dumps([h.as_dict() for h in hits], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not hits:
        print("No results.")
        return EXIT_OK
    for i, h in enumerate(hits, 1):
        where = h.uri.removeprefix("file://")
        page = f" (page {h.page})" if h.page else ""
        print(f"{i:>2}. {h.title}{page}  [{h.score:.3f}]")
        print(f"    {where}")
        print(f"    {h.snippet}")
    return EXIT_OK
