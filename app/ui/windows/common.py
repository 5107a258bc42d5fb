"""Small pieces the windows share: formatting, a message banner, window geometry."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QListWidget, QWidget

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
    """A one-line message above a window's content: hidden when empty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.addWidget(self.label)
        self.hide()

    def show_message(self, text: str, level: str = "info") -> None:
        if not text:
            self.hide()
            return
        self.label.setText(text)
        self.setStyleSheet(f"#banner {{ background: {level_color(level)}; border-radius: 4px; }}")
        self.show()

    def clear(self) -> None:
        self.hide()


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
