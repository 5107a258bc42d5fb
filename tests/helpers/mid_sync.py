"""Extractor plugins that reproduce what happens to files during a sync."""

from __future__ import annotations

import os

from app.core.extract.types import Extracted


def vanish(path: str) -> Extracted:
    """The file is deleted while its parser runs (a user emptying a folder mid-sync)."""
    os.remove(path)
    with open(path, "rb"):
        pass
    raise AssertionError("unreachable: the file is gone")
