"""The sync service: the one API of every face (see orchestrator.py).

`IndexLockedError` (another process writes to the index: `Service.start` raises it) is
re-exported here so that the faces need nothing from the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.service.orchestrator import IndexLockedError, Service

__all__ = ["IndexLockedError", "Service"]


def __getattr__(name: str) -> Any:
    # Lazy, so `from app.service import health` stays as cheap as it was.
    if name in __all__:
        from app.service import orchestrator

        return getattr(orchestrator, name)
    raise AttributeError(name)
