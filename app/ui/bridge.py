"""The one path from the service to the widgets: service events → Qt signals.

The service publishes from its worker threads and from the loop thread. `Bridge.attach`
subscribes a callback that only hands the event to the UI thread through a queued signal;
widgets connect to the typed signals below and never touch the service's internals.
Progress is coalesced: at most one update per source every `PROGRESS_MS`, so a fast pass cannot
flood the UI thread.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal

PROGRESS_MS = 150


class Bridge(QObject):
    event = Signal(object)  # every Event, after the typed signal
    state_changed = Signal(str, str)  # source_id, state
    progress = Signal(str, dict)  # source_id, progress data (coalesced)
    sync_finished = Signal(str, dict)  # source_id, report
    error = Signal(str, dict)  # source_id ("" for the service), data
    paused = Signal(object)  # until: epoch seconds or None
    resumed = Signal()
    watcher = Signal(str, dict)  # source_id, {state, reason}

    _incoming = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe: Any = None
        self._pending_progress: dict[str, dict[str, Any]] = {}
        self.latest_progress: dict[str, dict[str, Any]] = {}
        self._incoming.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)
        self._flush = QTimer(self, interval=PROGRESS_MS, singleShot=True)
        self._flush.timeout.connect(self._flush_progress)

    def attach(self, bus: Any) -> None:
        """Subscribe to a service's EventBus (thread-safe on its side)."""
        self.detach()
        self._unsubscribe = bus.subscribe(self._incoming.emit)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _dispatch(self, ev: Any) -> None:
        sid = ev.source_id or ""
        data = dict(ev.data)
        if ev.kind == "progress":
            self._pending_progress[sid] = data
            if not self._flush.isActive():
                self._flush.start()
            return
        if ev.kind == "state":
            if data.get("state") != "indexing" and data.get("state") != "scanning":
                self.latest_progress.pop(sid, None)
                self._pending_progress.pop(sid, None)
            self.state_changed.emit(sid, str(data.get("state", "")))
        elif ev.kind == "sync_finished":
            self.latest_progress.pop(sid, None)
            self._pending_progress.pop(sid, None)
            self.sync_finished.emit(sid, dict(data.get("report") or {}))
        elif ev.kind == "error":
            self.error.emit(sid, data)
        elif ev.kind == "paused":
            self.paused.emit(data.get("until"))
        elif ev.kind == "resumed":
            self.resumed.emit()
        elif ev.kind == "watcher":
            self.watcher.emit(sid, data)
        self.event.emit(ev)

    def _flush_progress(self) -> None:
        pending, self._pending_progress = self._pending_progress, {}
        for sid, data in pending.items():
            self.latest_progress[sid] = data
            self.progress.emit(sid, data)
