"""Shared set-ups of the service tests: a watched folder's settings, notes to index, waiting."""

from __future__ import annotations

import asyncio
import os
import time

from app.config import load_settings, save_sources
from app.models import SourceConfig, SourceType


def make_settings(home, docs, **source_kw):
    settings = load_settings(home=home, env={})
    source = SourceConfig(SourceType.LOCAL_FILESYSTEM, "docs", {"watch_paths": [str(docs)]},
                          **source_kw)
    return save_sources(settings, (source,))


async def wait_for(predicate, timeout=30.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return False


def indexed_names(service):
    from app.core.state import SyncState

    with SyncState.open(service.settings.state_dir) as state:
        return {os.path.basename(k) for k in state.known("docs")}


def write_notes(folder, n, prefix="n", paragraphs=2):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = "\n\n".join(f"Paragraph {j} of {prefix}{i}: notes about topic {i % 97} and "
                           f"some more words to index." for j in range(paragraphs))
        (folder / f"{prefix}{i}.md").write_text(f"# {prefix} {i}\n\n{body}\n")
