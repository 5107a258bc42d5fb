"""What a source's settings must satisfy before they are saved: one place for every face (the
command line, the tray's Sources window, the REST API) through `Service.add_source` and
`Service.update_source`, or `check_source` directly before asking the person anything else.

Pure but for `is_dir` on the folders: no index, no state.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from app.models import SourceConfig, SourceType


class SourceConfigError(ValueError):
    """A source's settings cannot be used as given; the message says why and what to do.
    `field` names the setting at fault (source_id, watch_paths), for a form or the API."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def folder_key(path: str) -> Path:
    """A watched folder as it is compared: ~ expanded, absolute, symlinks resolved."""
    return Path(os.path.expanduser(path)).resolve()


def check_source(source: SourceConfig, others: Iterable[SourceConfig], *,
                 editing: bool = False) -> None:
    """Raise SourceConfigError unless `source` can be saved beside `others` (the configured
    sources; when `editing`, the one with the same id is the old version of this one):
    a usable id, unique unless editing, and for a local source at least one folder, every
    folder absolute and existing, and no folder inside (or containing, or equal to) a folder
    of another source or of this one, which would index the same files twice."""
    sid = source.source_id
    if not sid.strip() or ":" in sid:
        raise SourceConfigError("A source id cannot be empty or contain ':'.", "source_id")
    others = [o for o in others if not (editing and o.source_id == sid)]
    if any(o.source_id == sid for o in others):
        raise SourceConfigError(f"A source named {sid!r} exists already; choose another name.",
                                "source_id")
    if source.source_type is not SourceType.LOCAL_FILESYSTEM:
        return
    paths = source.config.get("watch_paths") or []
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise SourceConfigError("A local source needs at least one folder.", "watch_paths")
    mine: list[tuple[str, Path]] = []
    for p in paths:
        if not os.path.isabs(os.path.expanduser(p)):
            raise SourceConfigError(f"{p!r} is not an absolute path.", "watch_paths")
        if not os.path.isdir(os.path.expanduser(p)):
            raise SourceConfigError(f"{p} is not a folder.", "watch_paths")
        mine.append((p, folder_key(p)))
    for i, (p, key) in enumerate(mine):
        for q, other in mine[i + 1:]:
            if _overlap(key, other):
                raise SourceConfigError(
                    f"The folders {p} and {q} overlap: the files they share would be indexed "
                    "twice. Keep only the outer one.", "watch_paths")
    for o in others:
        if o.source_type is not SourceType.LOCAL_FILESYSTEM:
            continue
        for q in o.config.get("watch_paths") or []:
            other = folder_key(q)
            for p, key in mine:
                if key == other:
                    how = "is already indexed by"
                elif other in key.parents:
                    how = f"is inside {q}, which is indexed by"
                elif key in other.parents:
                    how = f"contains {q}, which is indexed by"
                else:
                    continue
                raise SourceConfigError(
                    f"The folder {p} {how} the source {o.source_id!r}: its files would be "
                    f"indexed twice and every result would appear twice. Choose a folder "
                    f"outside it, or change the source {o.source_id!r} instead.",
                    "watch_paths")


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents
