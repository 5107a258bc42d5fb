"""What every source offers the sync engine."""

from __future__ import annotations

from typing import Protocol

from app.models import Listing, SourceConfig


class SourceError(Exception):
    """A source cannot be used as configured. The message says what to change."""


class Source(Protocol):
    config: SourceConfig

    def list(self) -> Listing:
        """List every item, never raising for one unreadable root: those go to `problems`."""
        ...

    def describe(self) -> str:
        """One line for people: what this source reads."""
        ...
