"""The tray icon and its menu.

The icon follows `TrayApp.state` (idle, syncing — animated —, paused, error, needs attention) in
the light or dark variant that suits the desktop. The menu is rebuilt each time it opens
(`aboutToShow`), so its status line and checkmarks always show live state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from app.ui import icons
from app.ui import status as st

if TYPE_CHECKING:
    from app.ui.controller import TrayApp

ANIMATION_MS = 300


class Tray(QSystemTrayIcon):
    def __init__(self, controller: TrayApp) -> None:
        super().__init__()
        self.c = controller
        self.shown_state = ""
        self._frame = 0
        self._stopping = False
        self.menu = QMenu()
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.setContextMenu(self.menu)
        self.activated.connect(self._on_activated)
        self.messageClicked.connect(lambda: controller.show_window(controller.notice_action))
        self._animation = QTimer(self, interval=ANIMATION_MS)
        self._animation.timeout.connect(self._next_frame)
        controller.snapshot_changed.connect(lambda _s: self.update_state())
        controller.attention_changed.connect(self.update_state)
        controller.service_changed.connect(self.update_state)
        controller.bridge.state_changed.connect(lambda *_: self.update_state())
        controller.bridge.paused.connect(lambda _u: self.update_state())
        controller.bridge.resumed.connect(self.update_state)
        controller.bridge.progress.connect(lambda *_: self._update_tooltip())
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):
            hints.colorSchemeChanged.connect(lambda *_: self.update_state(force=True))
        self.update_state(force=True)
        self.rebuild_menu()  # a first menu, for hosts that read it before showing it

    # -- icon and tooltip -----------------------------------------------------------------------

    def update_state(self, force: bool = False) -> None:
        state = self.c.state
        if state != self.shown_state or force:
            self.shown_state = state
            self._frame = 0
            if state == st.SYNCING:
                self._animation.start()
            else:
                self._animation.stop()
            self.setIcon(icons.state_icon(state, icons.is_dark(), 0))
        self._update_tooltip()

    def _next_frame(self) -> None:
        self._frame = (self._frame + 1) % icons.FRAMES
        self.setIcon(icons.state_icon(self.shown_state, icons.is_dark(), self._frame))

    def _update_tooltip(self) -> None:
        if self._stopping:
            return
        summary = self.c.summary()
        self.setToolTip(f"LanceDB Sync\n{summary}")
        status = self.menu.findChild(QAction, "status")
        if status is not None and self.menu.isVisible():
            status.setText(summary)  # live while the menu is open

    def set_stopping(self) -> None:
        self._stopping = True
        self._animation.stop()
        self.setToolTip("LanceDB Sync\nStopping…")

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger,
                      QSystemTrayIcon.ActivationReason.DoubleClick):
            self.c.show_window("progress")

    # -- menu -----------------------------------------------------------------------------------

    def rebuild_menu(self) -> None:
        c, m = self.c, self.menu
        m.clear()
        running = c.service is not None and not c.quitting
        status = m.addAction(c.summary())
        status.setEnabled(False)
        status.setObjectName("status")
        m.addSeparator()
        if running and not c.service.settings.sources:  # a fresh home: the first step
            self._add(m, "Add a folder…", lambda: c.show_window("welcome"), name="add_folder")
        self._add(m, "Sync now", c.sync_now, enabled=running and bool(c.snapshot.sources),
                  name="sync_now")
        pause = m.addMenu("Pause")
        pause.setObjectName("pause")
        pause.setEnabled(running)
        paused = c.snapshot.paused
        self._add(pause, "For 30 minutes", lambda: c.pause(30), name="pause_30")
        self._add(pause, "For 1 hour", lambda: c.pause(60), name="pause_60")
        self._add(pause, "Until tomorrow", lambda: c.pause(until_tomorrow=True),
                  name="pause_tomorrow")
        self._add(pause, "Until I resume", lambda: c.pause(None), name="pause_forever")
        pause.addSeparator()
        self._add(pause, "Resume", c.resume, enabled=paused, name="resume")
        if paused:
            self._add(m, f"Resume (paused {st.until_text(c.snapshot.paused_until)})", c.resume,
                      name="resume_top")
        m.addSeparator()
        for label, window in (("Search…", "search"), ("Sources…", "sources"),
                              ("Progress…", "progress"), ("Backup…", "backup"),
                              ("Settings…", "settings")):
            self._add(m, label, lambda w=window: c.show_window(w), name=f"show_{window}")
        m.addSeparator()
        self._add(m, "Open data folder", c.open_data_folder, name="open_data")
        login = self._add(m, "Start at login", lambda: None, name="autostart")
        login.setCheckable(True)
        login.setChecked(c.autostart_on)
        login.toggled.connect(c.set_autostart)
        self._add(m, "About LanceDB Sync", c.show_about, name="about")
        self._add(m, "Quit", lambda: c.spawn(c.quit()), name="quit")
        c.request_refresh(0)  # the line above is the latest snapshot; fetch a newer one

    @staticmethod
    def _add(menu: QMenu, text: str, slot, *, enabled: bool = True, name: str = "") -> QAction:
        action = menu.addAction(text)
        action.setObjectName(name)
        action.setEnabled(enabled)
        if not action.isCheckable():
            action.triggered.connect(lambda _checked=False: slot())
        return action
