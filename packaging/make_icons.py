"""Writes the application icon files the installers need, drawn by the app's own icon code.

    python packaging/make_icons.py [OUTDIR]      (default: resources/icons)

app-<size>.png for the Linux menu (hicolor sizes), app.ico for Windows, app.icns for macOS when
this Qt can write it (the icns plugin ships with Qt on macOS).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSize  # noqa: E402
from PySide6.QtGui import QImageWriter  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "resources" / "icons"
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from app.ui.icons import app_icon

    icon = app_icon()
    for size in PNG_SIZES:
        pm = icon.pixmap(QSize(size, size))
        if pm.width() != size:  # the icon's largest drawn size is smaller: scale smoothly
            pm = pm.scaled(size, size)
        pm.save(str(out / f"app-{size}.png"), "PNG")
    formats = {bytes(f).decode() for f in QImageWriter.supportedImageFormats()}
    if "ico" in formats:
        icon.pixmap(QSize(256, 256)).save(str(out / "app.ico"), "ICO")
    if "icns" in formats:
        icon.pixmap(QSize(512, 512)).save(str(out / "app.icns"), "ICNS")
    print("\n".join(sorted(p.name for p in out.iterdir())))
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
