"""The tray's controller: `TrayApp` owns the service, the bridge, the status snapshot, the
activity list and the windows, and every action of the tray menu and the windows goes through it.
The UI reaches the index only through the Service (`TrayApp.service` while it runs,
`TrayApp.reader()` for reads that must work without it), never through the engine.

Blocking work (SQLite, files, keyring, LanceDB) runs in worker threads via `TrayApp.run_blocking`;
widgets are touched only on the UI thread. Start-up and shut-down of Qt and the loop are the
entry point's (app/ui/app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon, QWidget

from app import __version__
from app.ui import status as st
from app.ui.activity import ActivityLog, NotificationLimit, pass_lines
from app.ui.bridge import Bridge

log = logging.getLogger(__name__)
T = TypeVar("T")

REFRESH_BUSY_MS = 1500
REFRESH_IDLE_MS = 15000
WINDOWS = ("progress", "sources", "search", "backup", "settings", "welcome")


class TrayApp(QObject):
    snapshot_changed = Signal(object)  # Snapshot
    attention_changed = Signal()
    service_changed = Signal()  # started, stopped or restarted
    notified = Signal(str, str)  # title, message (tests and the activity list listen)
    first_sync_done = Signal(str, str)  # source_id, message (Progress offers Search)

    def __init__(self, settings: Any, *, home: str | None = None) -> None:
        super().__init__()
        self.settings = settings
        # The portable home a login item starts the app with: `home`, else the one the settings
        # were resolved from (`--home` or LANCEDB_SYNC_HOME); None for the per-user folders.
        self.home = home if home is not None else settings.paths.home
        self.service: Any = None  # the running Service, or None
        self.api: Any = None  # its REST API server (app/api), when serving
        self._idle_service: Any = None  # reader() while none runs
        self.bridge = Bridge(self)
        self.snapshot = st.Snapshot()
        self.attention: dict[str, str] = {}
        self.busy: set[str] = set()
        self.tray: Any = None
        self.windows: dict[str, QWidget] = {}
        self.autostart_on = False
        self.activity = ActivityLog()
        self.notify_limit = NotificationLimit()
        self.quitting = False
        self.main_window_mode = False
        self.notice_action = "progress"  # the window a click on the latest notification opens
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dialogs: set[QWidget] = set()
        self._refreshing = False
        self._refresh_again = False
        # Sources seen with nothing indexed: their next finished pass is their first sync.
        self._never_indexed: set[str] = set()
        self._refresh_timer = QTimer(self, singleShot=True)
        self._refresh_timer.timeout.connect(lambda: self.spawn(self.refresh()))
        self._poll = QTimer(self, interval=REFRESH_IDLE_MS)
        self._poll.timeout.connect(self.request_refresh)
        self.bridge.state_changed.connect(self._on_state)
        self.bridge.sync_finished.connect(self._on_finished)
        self.bridge.error.connect(self._on_error)
        self.bridge.paused.connect(lambda _u: (self._log("info", "Paused"),
                                               self.request_refresh(0)))
        self.bridge.resumed.connect(lambda: (self._log("info", "Resumed"),
                                             self.request_refresh(0)))
        self.bridge.watcher.connect(self._on_watcher)

    # -- running things -------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a coroutine on the loop; errors are logged and shown, never lost."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:
                log.error("UI task failed", exc_info=exc)
                self.show_error("Something went wrong", str(exc) or type(exc).__name__)

        task.add_done_callback(done)
        return task

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking work (files, SQLite, keyring, LanceDB) in a worker thread."""
        return await asyncio.to_thread(fn, *args)

    def reader(self) -> Any:
        """The Service to read from and to hand one-off jobs: the running one, else (starting,
        restarting, the index held by another process) an idle Service on the current settings,
        which opens the index by itself when asked (search, the ledger, ignore, retry)."""
        if self.service is not None:
            return self.service
        idle = self._idle_service
        if idle is None or idle.settings is not self.settings:
            from app.service import Service

            idle = self._idle_service = Service(self.settings)
        return idle

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self, *, welcome: bool = False) -> None:
        """Start the service; with `welcome` (the app's start), open the welcome window when
        there is no source yet (a fresh home)."""
        from app.ui.autostart import Autostart

        self._poll.start()
        self.autostart_on = await self.run_blocking(Autostart(self.home).is_enabled)
        await self.start_service()
        if welcome and self.first_run():
            self.show_window("welcome")

    def first_run(self) -> bool:
        """No source yet, and a running service to add one to."""
        return self.service is not None and not self.service.settings.sources

    async def add_folder(self, path: str) -> str:
        """Add a local folder as a source named after it (the welcome window's one step), and
        announce its first sync when done. Returns the source's name; a ValueError says, for a
        person, why it was not added."""
        from app.models import SourceConfig, SourceType

        service = self.service
        if service is None:
            raise ValueError("The sync service is not running yet; try again in a moment.")
        folder = await self.run_blocking(lambda: Path(path).expanduser().resolve())
        if not await self.run_blocking(folder.is_dir):
            raise ValueError(f"Not a folder: {path}")
        for s in service.settings.sources:
            if str(folder) in (s.config.get("watch_paths") or []):
                raise ValueError(f"{folder} is indexed already, as {s.source_id!r}.")
        sid = source_name(folder.name, {s.source_id for s in service.settings.sources})
        self.expect_first_sync(sid)
        await service.add_source(SourceConfig(SourceType.LOCAL_FILESYSTEM, sid,
                                              {"watch_paths": [str(folder)]}))
        self._log("info", f"Added {folder} as {sid!r}; its first sync starts now")
        self.request_refresh(0)
        return sid

    async def start_service(self) -> None:
        # Light; the service imports the engine off the loop when it starts.
        from app.service import IndexLockedError, Service

        service = Service(self.settings)
        self.bridge.attach(service.events)
        try:
            await service.start()
        except IndexLockedError as exc:
            self.bridge.detach()
            self.set_attention("index", "another LanceDB Sync process is writing to the index "
                                        "(stop 'lancedb-sync run', then restart the tray)")
            self._log("error", str(exc))
            self.request_refresh(0)
            return
        except Exception as exc:  # the index cannot be opened: say so, keep the tray up
            log.exception("the sync service did not start")
            self.bridge.detach()
            self.set_attention("index", f"the sync service could not start: {exc}")
            self.request_refresh(0)
            return
        self.service = service
        self.clear_attention("index")
        self.service_changed.emit()
        self.request_refresh(0)
        if self.settings.api_enabled:
            await self.start_api(service)

    async def start_api(self, service: Any) -> None:
        """Serve the REST API beside the service (docs/api.md). A failure is shown, not fatal:
        the tray and the index work without it."""
        import importlib

        self.clear_attention("api")
        try:
            # FastAPI and uvicorn take a moment to import: not on the loop that draws the UI.
            server_module = await asyncio.to_thread(importlib.import_module, "app.api.server")
            server = server_module.ApiServer(service, self.settings)
            await server.start()
        except Exception as exc:
            log.exception("the REST API did not start")
            self.set_attention("api", f"the REST API could not start: {exc} (change api_port "
                                      "in Settings, or turn the API off)")
            return
        self.api = server
        if server.warning:
            self.set_attention("api", server.warning)
        self._log("info", f"REST API at {server.url}")
        self.service_changed.emit()

    async def set_api(self, enabled: bool) -> None:
        """Start or stop the REST API (the Settings window's checkbox), leaving the service
        running."""
        if enabled and self.api is None and self.service is not None:
            await self.start_api(self.service)
        elif not enabled and self.api is not None:
            with contextlib.suppress(Exception):
                await self.api.stop()
            self.api = None
            self.clear_attention("api")
            self._log("info", "REST API stopped")
        self.service_changed.emit()

    async def stop_service(self) -> None:
        service, self.service = self.service, None
        if service is None:
            return
        # Sources added or edited while it ran live in its settings: keep them.
        self.settings = self.settings.with_sources(service.settings.sources)
        api, self.api = self.api, None
        if api is not None:  # stop accepting and drain first, then the service
            with contextlib.suppress(Exception):
                await api.stop()
        try:
            await service.stop()
        finally:
            self.bridge.detach()
            self.busy.clear()
            self.service_changed.emit()

    async def restart_service(self, settings: Any | None = None) -> None:
        await self.stop_service()
        if settings is not None:
            # New values, but the sources as the service last had them (a window's copy of the
            # settings may predate a source added since).
            self.settings = settings.with_sources(self.settings.sources)
        await self.start_service()

    async def quit(self) -> None:
        """Stop the service gracefully (the pass under way stops at a batch boundary), then
        leave the event loop."""
        if self.quitting:
            return
        self.quitting = True
        if self.tray is not None:
            self.tray.set_stopping()
        for w in self.windows.values():
            w.hide()
        try:
            await asyncio.wait_for(self.stop_service(), timeout=60)
        except TimeoutError:
            log.error("the service did not stop within 60 s; quitting anyway")
        else:
            log.info("service stopped; quitting")
        self._poll.stop()
        self._refresh_timer.stop()
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current and not t.done()]
        for task in pending:
            task.cancel()
        if pending:  # let them unwind before the loop goes away
            await asyncio.gather(*pending, return_exceptions=True)
        QApplication.instance().quit()

    def dispose(self) -> None:
        """Destroy the tray icon, the windows and the dialogs now, once the loop has stopped.

        Left to the garbage collector they would go during interpreter shutdown, beside or
        after the QApplication and in no set order, which is where Qt bindings crash at exit.
        The controller itself is the caller's to delete.
        """
        self._poll.stop()
        self._refresh_timer.stop()
        self.bridge.detach()
        objects: list[QObject] = [*self.windows.values(), *self._dialogs]
        self.windows.clear()
        self._dialogs.clear()
        if self.tray is not None:
            self.tray.hide()
            objects += [self.tray, self.tray.menu]
            self.tray = None
        for obj in objects:
            delete_now(obj)

    # -- status ---------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return st.tray_state(self.snapshot, self.attention, self.busy)

    def summary(self) -> str:
        if self.service is None:
            if "index" in self.attention:
                return f"Needs attention: {self.attention['index']}"
            return "Starting…" if not self.quitting else "Stopping…"
        return st.summary_line(self.snapshot, self.state, self.attention,
                               self.bridge.latest_progress)

    def request_refresh(self, delay_ms: int = 250) -> None:
        if not self._refresh_timer.isActive() or delay_ms == 0:
            self._refresh_timer.start(delay_ms)

    async def refresh(self) -> None:
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        try:
            if self.service is not None:
                try:
                    self.snapshot = await self.run_blocking(st.fetch_snapshot, self.service)
                except Exception:  # e.g. the state database is busy: keep the last snapshot
                    log.warning("status refresh failed", exc_info=True)
                    return
                self._never_indexed |= {
                    s.source_id for s in self.snapshot.sources if not s.documents and not s.failed}
            self._poll.setInterval(REFRESH_BUSY_MS if self._wants_fast_refresh()
                                   else REFRESH_IDLE_MS)
            self.snapshot_changed.emit(self.snapshot)
        finally:
            self._refreshing = False
        if self._refresh_again:
            self._refresh_again = False
            self.request_refresh()

    def _wants_fast_refresh(self) -> bool:
        return bool(self.busy or self.snapshot.current) or any(
            w.isVisible() for w in self.windows.values())

    def expect_first_sync(self, source_id: str) -> None:
        """A source just added: its next finished pass is announced as its first sync."""
        self._never_indexed.add(source_id)

    def set_attention(self, key: str, reason: str) -> None:
        if self.attention.get(key) != reason:
            self.attention[key] = reason
            self._log("warning", f"Needs attention: {reason}")
            self.attention_changed.emit()
            self.snapshot_changed.emit(self.snapshot)

    def clear_attention(self, key: str) -> None:
        if self.attention.pop(key, None) is not None:
            self.attention_changed.emit()
            self.snapshot_changed.emit(self.snapshot)

    # -- events ---------------------------------------------------------------------------------

    def _on_state(self, sid: str, state: str) -> None:
        if state in ("scanning", "indexing"):
            self.busy.add(sid)
        else:
            self.busy.discard(sid)
        self.request_refresh(100)

    def _on_finished(self, sid: str, report: dict[str, Any]) -> None:
        self.busy.discard(sid)
        for level, text in pass_lines(sid, report):
            self._log(level, text)
        first = sid in self._never_indexed and not report.get("cancelled")
        if first and (report.get("added") or report.get("failed")):
            self._never_indexed.discard(sid)
            n = int(report.get("added", 0)) + int(report.get("modified", 0))
            message = f"{sid}: {n:,} documents indexed and searchable."
            self.notify(f"first:{sid}", "First sync done", message, action="search")
            self.first_sync_done.emit(sid, message)
        self.request_refresh(0)

    def _on_error(self, sid: str, data: dict[str, Any]) -> None:
        reason = str(data.get("reason") or "unknown error")
        self._log("error", f"{sid or 'service'}: {reason}")
        self.notify(f"error:{sid}", "Sync error", f"{sid or 'LanceDB Sync'}: {reason}",
                    error=True)
        self.request_refresh(0)

    def _on_watcher(self, sid: str, data: dict[str, Any]) -> None:
        state, reason = data.get("state", ""), data.get("reason") or ""
        if state == "degraded":
            self._log("warning", f"{sid}: watcher degraded — {reason}")
        self.request_refresh()

    def _log(self, level: str, text: str) -> None:
        entry = self.activity.add(level, text)
        getattr(log, "warning" if level == "warning" else "info")("%s", text)
        w = self.windows.get("progress")
        if w is not None:
            w.add_activity(*entry)  # type: ignore[attr-defined]

    # -- notifications --------------------------------------------------------------------------

    def notify(self, key: str, title: str, message: str, *, error: bool = False,
               action: str | None = None) -> bool:
        """A desktop notification, rate-limited; False when it was held back. `action`: the
        window a click on it opens (default Progress)."""
        if not self.settings.values.get("notifications", True):
            return False
        if not self.notify_limit.allow(key):
            return False
        self.notice_action = action or "progress"
        if action == "search":
            message += " Click to search them."
        self.notified.emit(title, message)
        if self.tray is not None and self.tray.isVisible():
            icon = (QSystemTrayIcon.MessageIcon.Warning if error
                    else QSystemTrayIcon.MessageIcon.Information)
            self.tray.showMessage(title, message, icon, 8000)
        return True

    def show_error(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok)
        # A parentless dialog lives as long as its Python wrapper: keep it until it closes.
        self._dialogs.add(box)
        box.finished.connect(lambda _r: self._dialogs.discard(box))
        box.open()  # never exec(): it would nest the event loop under qasync

    # -- actions --------------------------------------------------------------------------------

    def sync_now(self, source_id: str | None = None) -> None:
        if self.service is None:
            return
        self.service.sync_now(source_id)
        self._log("info", f"Sync requested ({source_id or 'all sources'})")
        self.request_refresh(0)

    def pause(self, minutes: int | None = None, *, until_tomorrow: bool = False) -> None:
        if self.service is None:
            return
        until: float | None = None
        if minutes is not None:
            until = time.time() + minutes * 60
        elif until_tomorrow:
            until = tomorrow_morning().timestamp()
        self.service.pause(until)
        self.request_refresh(0)

    def resume(self) -> None:
        if self.service is not None:
            self.service.resume()
            self.request_refresh(0)

    def show_window(self, name: str) -> QWidget:
        if name not in WINDOWS:
            name = "progress"
        w = self.windows.get(name)
        if w is None:
            w = self._make_window(name)
            self.windows[name] = w
        if w.isMinimized():
            w.showNormal()
        w.show()
        w.raise_()
        w.activateWindow()
        self.request_refresh(0)
        return w

    def _make_window(self, name: str) -> QWidget:
        from app.ui.windows import backup, progress, search, settings, sources, welcome

        cls = {"progress": progress.ProgressWindow, "sources": sources.SourcesWindow,
               "search": search.SearchWindow, "backup": backup.BackupWindow,
               "settings": settings.SettingsWindow, "welcome": welcome.WelcomeWindow}[name]
        return cls(self)

    def open_path(self, path: str | Path) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def open_data_folder(self) -> None:
        self.open_path(self.settings.paths.data_dir)

    def set_autostart(self, on: bool) -> None:
        from app.ui.autostart import Autostart

        async def run() -> None:
            await self.run_blocking(Autostart(self.home).set_enabled, on)
            self.autostart_on = on
            self._log("info", "Start at login " + ("on" if on else "off"))
            self.snapshot_changed.emit(self.snapshot)

        self.spawn(run())

    def show_about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.NoIcon, "About LanceDB Sync",
                          f"<b>LanceDB Sync {__version__}</b><p>Keeps a LanceDB index of your "
                          "documents up to date, and lets you search it.</p>"
                          f"<p>Index: {self.settings.index_uri}<br>"
                          f"Logs: {self.settings.paths.log_dir}</p>",
                          QMessageBox.StandardButton.Close)
        from app.ui.icons import app_icon

        box.setIconPixmap(app_icon().pixmap(64, 64))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.windows.setdefault("about", box)
        box.finished.connect(lambda _r: self.windows.pop("about", None))
        box.open()

    # -- the failed-files ledger ----------------------------------------------------------------

    async def retry_files(self, entries: list[st.FailedEntry]) -> None:
        """Make the next pass redo these files, then sync their sources (the service queues
        the passes)."""
        service = self.reader()
        for sid in sorted({e.source_id for e in entries}):
            await service.retry_failed([e.doc_uid for e in entries if e.source_id == sid],
                                       source_id=sid)
            if service is self.service:
                self._log("info", f"Sync requested ({sid})")
        self._log("info", f"Retrying {len(entries)} file{'s' if len(entries) != 1 else ''}")
        self.request_refresh(0)

    async def ignore_files(self, entries: list[st.FailedEntry]) -> None:
        """Hide these files from the ledger and the tray state (the service remembers)."""
        await self.run_blocking(self.reader().ignore, [e.doc_uid for e in entries])
        await self.refresh()


def source_name(folder_name: str, taken: set[str]) -> str:
    """A source name from a folder's name ("My Notes" → "my-notes"), not one of `taken`."""
    import re

    base = re.sub(r"[^\w.-]+", "-", folder_name).strip("-").lower() or "folder"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def delete_now(obj: QObject) -> None:
    """Destroy a Qt object's C++ side now (not via deleteLater, which needs a running loop)."""
    import shiboken6

    if shiboken6.isValid(obj):
        if isinstance(obj, QWidget):
            obj.close()
        shiboken6.delete(obj)


def tomorrow_morning(now: dt.datetime | None = None, hour: int = 8) -> dt.datetime:
    now = now or dt.datetime.now().astimezone()
    return (now + dt.timedelta(days=1)).replace(hour=hour, minute=0, second=0, microsecond=0)
