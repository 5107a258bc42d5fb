"""Times for people: "2 min ago", "ETA 3:05". One wording for the CLI, the daemon and the tray."""

from __future__ import annotations

import time


def ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "never"
    s = max(0.0, (now or time.time()) - ts)
    if s < 45:
        return "just now"
    if s < 3600:
        return f"{max(1, round(s / 60))} min ago"
    if s < 86400:
        return f"{int(s // 3600)} h ago"
    return f"{int(s // 86400)} d ago"


def eta(seconds: float | None) -> str:
    """Compact remaining time: 42 s, 3:05 (min:s), 2 h 05 min; "?" when unknown."""
    if seconds is None:
        return "?"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
