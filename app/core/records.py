"""Rows of the documents table as plain dicts: built without importing LanceDB or pyarrow,
so batches can be prepared while those load."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

# Version of the tables' schema (stored in their metadata; see docs/data-model.md).
SCHEMA_VERSION = 1


def now_utc() -> datetime:
    return datetime.now(UTC)


def document_row(**fields: Any) -> dict[str, Any]:
    """A documents-table row with every column present (defaults for the optional ones)."""
    row: dict[str, Any] = {
        "uri": "", "title": "", "mime": "", "size": 0, "modified_at": None, "version_token": "",
        "content_hash": "", "status": "indexed", "error": "", "chunk_count": 0, "embed_model": "",
        "indexed_at": now_utc(), "metadata": "{}",
    }
    row.update(fields)
    if isinstance(row["metadata"], dict):
        row["metadata"] = json.dumps(row["metadata"], ensure_ascii=False)
    return row


