"""An add-on parser whose module never finishes importing (a plugin stuck at start-up).
Imported only inside sandbox workers, which the sandbox kills."""

from __future__ import annotations

import time

while True:
    time.sleep(3600)


def never(path: str) -> None:  # pragma: no cover - the import above never returns
    raise AssertionError("unreachable")
