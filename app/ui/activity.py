"""The activity list and the notifications' rate limit, without Qt.

`ActivityLog` is what the Progress window's Activity tab shows: (time, level, text) entries,
oldest first, the latest `MAX_ENTRIES` kept. `pass_lines` says what a finished pass adds to it.
`NotificationLimit` decides whether a desktop notification may show now: at most one every
`NOTIFY_MIN_GAP_S`, and the same one (per key: source and kind) at most every
`NOTIFY_SAME_KEY_S`. The controller (app/ui/controller.py) owns one of each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, overload

from app.ui.status import uri_to_path

MAX_ENTRIES = 500
NOTIFY_MIN_GAP_S = 30.0  # at most one notification every 30 s
NOTIFY_SAME_KEY_S = 600.0  # and the same one (per source and kind) at most every 10 min

Entry = tuple[float, str, str]  # (time, level, text)


class ActivityLog:
    """The latest entries, oldest first; indexable and sliceable like a list."""

    def __init__(self, limit: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self._clock = clock
        self._entries: list[Entry] = []

    def add(self, level: str, text: str) -> Entry:
        entry = (self._clock(), level, text)
        self._entries.append(entry)
        del self._entries[:-self.limit]
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries))

    @overload
    def __getitem__(self, i: int) -> Entry: ...

    @overload
    def __getitem__(self, i: slice) -> list[Entry]: ...

    def __getitem__(self, i: int | slice) -> Entry | list[Entry]:
        return self._entries[i]

    def __repr__(self) -> str:
        return f"ActivityLog({self._entries[-10:]!r})"


def pass_lines(source_id: str, report: dict[str, Any]) -> list[tuple[str, str]]:
    """What a finished pass adds to the activity list, as (level, text): its changes, each
    failed file with the reason, each problem; nothing for a pass with neither."""
    changed = {k: report.get(k, 0) for k in ("added", "modified", "deleted", "moved", "failed")}
    if not any(changed.values()) and not report.get("problems"):
        return []
    parts = [f"{v:,} {k}" for k, v in changed.items() if v]
    lines = [("info", f"{source_id}: " + (", ".join(parts) or "no changes"))]
    for f in report.get("failures") or []:
        lines.append(("error", f"{source_id}: {uri_to_path(f.get('uri', ''))}: "
                               f"{f.get('reason', '')}"))
    lines += [("warning", f"{source_id}: {p}") for p in report.get("problems") or []]
    return lines


class NotificationLimit:
    """One notification at a time, the same one rarely. `allow(key)` answers and, when it says
    yes, counts the notification as shown."""

    def __init__(self, min_gap: float = NOTIFY_MIN_GAP_S, same_key: float = NOTIFY_SAME_KEY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_gap = min_gap
        self.same_key = same_key
        self.clock = clock
        self._last: float | None = None
        self._by_key: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.min_gap:
            return False
        shown = self._by_key.get(key)
        if shown is not None and now - shown < self.same_key:
            return False
        self._last = now
        self._by_key[key] = now
        return True
