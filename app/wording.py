"""Times and sizes for people: "2 min ago", "ETA 3:05", "about 4 min", "12.0 MB". One wording
for the CLI, the daemon and the tray."""

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


def time_left(seconds: float | None, done: int, total: int) -> str:
    """The remaining time of a pass, for people, or "" while an estimate would mislead: before
    anything is committed (the rate is not known yet), once all is done, or with no estimate.
    Under 10 s it says "a few seconds left" rather than a count that reads "0 s"."""
    if seconds is None or done <= 0 or done >= total or seconds < 0:
        return ""
    if seconds < 10:
        return "a few seconds left"
    return f"about {duration(seconds)} left"


def duration(seconds: float) -> str:
    """A rough length of time: "12 s", "4 min", "1.5 h" (estimates, costs)."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def size(n: float) -> str:
    """Bytes for people: "512 B", "3.4 KB", "12.0 MB", "1.2 GB" (powers of 1,024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
