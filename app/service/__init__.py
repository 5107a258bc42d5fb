"""The sync service: the one API of every face (see orchestrator.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.service.orchestrator import Service

__all__ = ["Service"]


def __getattr__(name: str) -> Any:
    # Lazy, so `from app.service import health` stays as cheap as it was.
    if name == "Service":
        from app.service.orchestrator import Service

        return Service
    raise AttributeError(name)
