"""Small pieces the windows share: formatting, a message banner, window geometry."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QWidget,
)

from app.ui.icons import app_icon, is_dark

LEVEL_COLORS = {  # (light theme, dark theme) background of a banner
    "info": ("#e8f0fe", "#1e3250"),
    "warning": ("#fff4e0", "#4a3510"),
    "error": ("#fdecea", "#4d1f1c"),
}


def fmt_count(n: int | None) -> str:
    return f"{int(n or 0):,}"


def fmt_time(ts: float | None) -> str:
    if not ts:
        return "never"
    if time.time() - ts < 86400:
        return time.strftime("%H:%M", time.localtime(ts))
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def level_color(level: str) -> str:
    light, dark = LEVEL_COLORS.get(level, LEVEL_COLORS["info"])
    return dark if is_dark() else light


def muted(widget: QWidget) -> None:
    """Secondary text: the palette's placeholder colour (readable in light and dark themes)."""
    pal = widget.palette()
    pal.setColor(QPalette.ColorRole.WindowText,
                 pal.color(QPalette.ColorRole.PlaceholderText))
    widget.setPalette(pal)


class Banner(QFrame):
    """A one-line message above a window's content, with an optional button (`action`: its
    label and what it does); hidden when empty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.addWidget(self.label, 1)
        self.button = QPushButton(self)
        self.button.hide()
        self.button.clicked.connect(self._clicked)
        lay.addWidget(self.button, 0, Qt.AlignmentFlag.AlignVCenter)
        self._action: Callable[[], object] | None = None
        self.hide()

    def show_message(self, text: str, level: str = "info",
                     action: tuple[str, Callable[[], object]] | None = None) -> None:
        if not text:
            self.hide()
            return
        self.label.setText(text)
        self._action = action[1] if action else None
        self.button.setText(action[0] if action else "")
        self.button.setVisible(action is not None)
        self.setStyleSheet(f"#banner {{ background: {level_color(level)}; border-radius: 4px; }}")
        self.show()

    def clear(self) -> None:
        self._action = None
        self.hide()

    def _clicked(self) -> None:
        if self._action is not None:
            self._action()


def folder_picker(parent: QWidget, title: str, start: str,
                  chosen: Callable[[str], None]) -> QFileDialog:
    """A folder chooser opened in `start` (the user's home, not the process's working folder)
    without blocking: `open()`, not `exec()`, so the event loop and the sync keep running. The
    choice goes to `chosen`; the dialog deletes itself when closed."""
    dialog = QFileDialog(parent, title, start)
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    dialog.fileSelected.connect(chosen)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog


def setup_window(w: QWidget, title: str, width: int, height: int) -> None:
    w.setWindowTitle(f"{title} — LanceDB Sync")
    w.setWindowIcon(app_icon())
    w.resize(width, height)
    w.setObjectName(title.lower())


class PlaceholderList(QListWidget):
    """A list that says what will appear in it while it is empty."""

    def __init__(self, placeholder: str) -> None:
        super().__init__()
        self.placeholder = placeholder

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.count():
            return
        painter = QPainter(self.viewport())
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(self.viewport().rect().adjusted(16, 16, -16, -16),
                         int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
                         self.placeholder)
        painter.end()
