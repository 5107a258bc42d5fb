"""Tray and window icons, drawn with QPainter so they are crisp at every size and DPI.

The glyph is a small database (three stacked discs) in the theme's foreground colour — dark on
light panels, light on dark ones — with a coloured badge for the state: blue turning arrows while
syncing (four animation frames), amber bars when paused, red "!" on error, orange "!" when
something needs attention, none when idle.
"""

from __future__ import annotations

import math
from functools import lru_cache

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QGuiApplication,
    QIcon,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPixmap,
)

SIZES = (16, 20, 22, 24, 32, 48, 64, 128, 256)
FRAMES = 4
BADGE = {
    "syncing": "#2f7de1",
    "paused": "#e0a100",
    "error": "#d93025",
    "attention": "#f08a00",
}


def is_dark() -> bool:
    """True when the desktop uses a dark colour scheme (style hints, else the palette)."""
    app = QGuiApplication.instance()
    if app is None:
        return False
    hints = QGuiApplication.styleHints()
    scheme = getattr(hints, "colorScheme", lambda: None)()
    if scheme is not None and scheme != Qt.ColorScheme.Unknown:
        return scheme == Qt.ColorScheme.Dark
    return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


def _glyph(p: QPainter, s: float, fg: QColor) -> None:
    pen = QPen(fg, max(1.0, s / 14))
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    left, width = s * 0.10, s * 0.62
    disc_h = s * 0.20
    top = s * 0.10
    body_h = s * 0.62
    # the top ellipse and the sides
    p.drawEllipse(QRectF(left, top, width, disc_h))
    p.drawLine(QPointF(left, top + disc_h / 2), QPointF(left, top + body_h))
    p.drawLine(QPointF(left + width, top + disc_h / 2), QPointF(left + width, top + body_h))
    for i in (1, 2):  # the lower rims: half ellipses
        y = top + body_h * i / 2 - disc_h / 2
        p.drawArc(QRectF(left, y, width, disc_h), 180 * 16, 180 * 16)
    fill = QColor(fg)
    fill.setAlphaF(0.18)
    path = QPainterPath()
    path.addRect(QRectF(left, top + disc_h / 2, width, body_h - disc_h / 2))
    p.fillPath(path, QBrush(fill))


def _badge(p: QPainter, s: float, state: str, frame: int) -> None:
    color = BADGE.get(state)
    if color is None:
        return
    r = s * (0.25 if s >= 32 else 0.31)  # small sizes: a bigger badge stays legible
    c = QPointF(s - r - s * 0.02, s - r - s * 0.02)
    p.setPen(QPen(QColor("#ffffff"), max(1.0, s / 24)))
    p.setBrush(QColor(color))
    if state == "attention":  # a warning triangle, so it differs from error by shape too
        tri = QPainterPath()
        tri.moveTo(c.x(), c.y() - r * 1.1)
        tri.lineTo(c.x() + r * 1.1, c.y() + r * 0.85)
        tri.lineTo(c.x() - r * 1.1, c.y() + r * 0.85)
        tri.closeSubpath()
        p.drawPath(tri)
        c = QPointF(c.x(), c.y() + r * 0.12)
    else:
        p.drawEllipse(c, r, r)
    white = QPen(QColor("#ffffff"), max(1.2, s / 14), Qt.PenStyle.SolidLine,
                 Qt.PenCapStyle.RoundCap)
    p.setPen(white)
    p.setBrush(Qt.BrushStyle.NoBrush)
    if state == "syncing":
        ar = r * 0.55
        start = frame * 90
        for k in (0, 180):
            a0 = start + k
            p.drawArc(QRectF(c.x() - ar, c.y() - ar, 2 * ar, 2 * ar), a0 * 16, 120 * 16)
            end = math.radians(a0 + 120)
            tip = QPointF(c.x() + ar * math.cos(end), c.y() - ar * math.sin(end))
            p.drawPoint(tip)
    elif state == "paused":
        h = r * 0.5
        for dx in (-r * 0.25, r * 0.25):
            p.drawLine(QPointF(c.x() + dx, c.y() - h), QPointF(c.x() + dx, c.y() + h))
    else:  # error, attention: an exclamation mark
        p.drawLine(QPointF(c.x(), c.y() - r * 0.5), QPointF(c.x(), c.y() + r * 0.1))
        p.drawPoint(QPointF(c.x(), c.y() + r * 0.5))


def render(state: str, size: int, dark: bool, frame: int = 0) -> QPixmap:
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    fg = QColor("#eeeeee") if dark else QColor("#303030")
    _glyph(p, float(size), fg)
    _badge(p, float(size), state, frame)
    p.end()
    return pm


@lru_cache(maxsize=64)
def state_icon(state: str, dark: bool, frame: int = 0) -> QIcon:
    icon = QIcon()
    for size in SIZES:
        icon.addPixmap(render(state, size, dark, frame))
    return icon


def app_icon() -> QIcon:
    """The window icon: the glyph on a light tile so it reads on any title bar."""
    icon = QIcon()
    for size in SIZES:
        pm = QPixmap(size, size)
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#2f7de1"))
        p.drawRoundedRect(QRectF(0, 0, size, size), size * 0.2, size * 0.2)
        p.translate(size * 0.16, size * 0.12)
        _glyph(p, size * 0.95, QColor("#ffffff"))
        p.end()
        icon.addPixmap(pm)
    return icon
