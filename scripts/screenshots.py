"""Screenshots of the tray menu and every window, for docs/screenshots/ and the README.

Runs the real app in-process on a demo folder (the test fixtures plus one file that fails, so the
ledger has something to show), under Xvfb with trayer as the tray host — started here when
DISPLAY is not set. It starts as a new user would: a fresh home (the welcome window), the folder
added, its first sync held mid-pass by a parser that waits on a gate file (the first-sync shot).
Usage (from the repository root):

    .venv/bin/python scripts/screenshots.py [OUT_DIR]     # default docs/screenshots
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers import xdisplay  # noqa: E402


def start_display() -> list[subprocess.Popen]:
    """Xvfb and a tray host, unless a display is already set."""
    if os.environ.get("DISPLAY"):
        return []
    xvfb, os.environ["DISPLAY"] = xdisplay.start_xvfb()
    trayer = xdisplay.start_trayer(os.environ["DISPLAY"], "--transparent", "false",
                                  "--tint", "0x2b2b2b", "--alpha", "0")
    time.sleep(0.5)
    return [xvfb, trayer]


def start_keyring(root: Path) -> list[subprocess.Popen]:
    """A D-Bus session with an unlocked gnome-keyring, so the Backup window shows the normal
    state (skipped when they are not installed)."""
    if not (shutil.which("dbus-daemon") and shutil.which("gnome-keyring-daemon")):
        return []
    for d in ("data", "runtime"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "runtime").chmod(0o700)
    os.environ["XDG_DATA_HOME"] = str(root / "data")
    os.environ["XDG_RUNTIME_DIR"] = str(root / "runtime")
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().strip()
    daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock",
                               "--components=secrets"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    daemon.stdin.write(b"screenshots")
    daemon.stdin.close()
    time.sleep(1.0)
    return [bus, daemon]


def dark_palette():
    """What a dark desktop theme hands Qt (Xvfb has no platform theme to do it)."""
    from PySide6.QtGui import QColor, QPalette

    pal = QPalette()
    role = QPalette.ColorRole
    for r, c in ((role.Window, "#2b2b2b"), (role.WindowText, "#e6e6e6"), (role.Base, "#1e1e1e"),
                 (role.AlternateBase, "#262626"), (role.Text, "#e6e6e6"),
                 (role.Button, "#353535"), (role.ButtonText, "#e6e6e6"),
                 (role.Highlight, "#2f7de1"), (role.HighlightedText, "#ffffff"),
                 (role.ToolTipBase, "#353535"), (role.ToolTipText, "#e6e6e6"),
                 (role.PlaceholderText, "#9a9a9a"), (role.Link, "#6aa6ff")):
        pal.setColor(r, QColor(c))
    pal.setColor(QPalette.ColorGroup.Disabled, role.Text, QColor("#777777"))
    pal.setColor(QPalette.ColorGroup.Disabled, role.ButtonText, QColor("#777777"))
    pal.setColor(QPalette.ColorGroup.Disabled, role.WindowText, QColor("#777777"))
    return pal


def demo_folder(root: Path) -> tuple[Path, Path]:
    """The app's home and the demo documents, in a demo user's home folder (HOME) that has
    Documents, Desktop and Notes, as the welcome window suggests them."""
    user = root / "user"
    home, docs = root / "home", user / "Documents"
    (docs / "notes").mkdir(parents=True)
    (user / "Desktop").mkdir()
    (user / "Notes").mkdir()
    meetings = docs / "meetings"
    meetings.mkdir()
    topics = ("the roadmap", "hiring", "the budget", "the office move", "customer feedback",
              "the release", "security review", "the offsite")
    for i in range(1000):
        (meetings / f"{2024 + i // 400}-{i % 12 + 1:02}-{i % 28 + 1:02}-meeting-{i:03}.md"
         ).write_text(f"# Weekly meeting {i}\n\nWe discussed {topics[i % len(topics)]} and "
                      f"agreed on the next steps for item {i}.\n")
    # Held by the gate while the first-sync shot is taken (tests/helpers/parsers.py `gated`).
    (docs / "zz-inbox.gated").write_text("A note that waits for the screenshot.\n")
    for f in (REPO / "tests" / "fixtures" / "formats").iterdir():
        if f.is_file() and not f.name.startswith("."):
            shutil.copy(f, docs / f.name)
    (docs / "notes" / "passport.md").write_text(
        "# Renewing a passport\n\nTo renew your passport, book an appointment at the consulate "
        "and bring two recent photographs and the old passport.\n")
    (docs / "notes" / "travel.md").write_text(
        "# Travel checklist\n\nPassport, tickets, chargers. Check the passport's expiry date "
        "six months before travelling.\n")
    (docs / "scan-2019.pdf").write_bytes(b"%PDF-1.4\n% truncated scan\n")
    # What a real folder also holds: an empty file, a picture, an archive, compressed notes and
    # an extension-less README — skipped or read, never "failed".
    import gzip

    (docs / "notes" / "todo.txt").write_text("")
    shutil.copy(REPO / "resources" / "icons" / "app-128.png", docs / "photo.png")
    (docs / "old-projects.tar.bz2").write_bytes(b"BZh91AY&SY" + bytes(64))
    (docs / "notes" / "2019-notes.txt.gz").write_bytes(gzip.compress(
        b"Old notes from 2019: renew the passport before the trip.\n"))
    (docs / "README").write_text("This folder holds my documents: meetings, notes and scans.\n")
    cfg = home / "config" / "config.toml"
    cfg.parent.mkdir(parents=True)
    # Two parser processes: the one the gate holds, and one that reads everything else.
    cfg.write_text('notifications = false\nmax_concurrent_processing = 2\n'
                   '\n[extractors]\n".gated" = "tests.helpers.parsers:gated"\n')
    return home, docs


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    procs = start_display()
    root = Path(tempfile.mkdtemp(prefix="lancedb-sync-shots-"))
    os.environ["XDG_CONFIG_HOME"] = str(root / "xdg")
    os.environ["HOME"] = str(root / "user")  # the welcome window's suggestions and pickers
    os.environ["LANCEDB_SYNC_TEST_GATE"] = str(root / "gate")  # parser processes inherit it
    (root / "gate").write_text("")
    procs += start_keyring(root / "keyring")
    try:
        return shoot(out, root)
    finally:
        for p in reversed(procs):
            p.terminate()
        shutil.rmtree(root, ignore_errors=True)


def shoot(out: Path, root: Path) -> int:
    import qasync
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from app.config import load_settings
    from app.ui.app import TrayApp
    from app.ui.icons import app_icon, render
    from app.ui.tray import Tray

    home, docs = demo_folder(root)
    qapp = QApplication(["lancedb-sync"])
    qapp.setStyle("Fusion")
    qapp.setQuitOnLastWindowClosed(False)
    qapp.setWindowIcon(app_icon())
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)

    def run(coro):
        fut = asyncio.ensure_future(coro)
        fut.add_done_callback(lambda _f: loop.stop())
        loop.run_forever()
        return fut.result()

    async def pause(seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def until(pred, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not pred() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    app = TrayApp(load_settings(home=home, env={}), home=str(home))
    app.tray = Tray(app)
    app.tray.show()

    def save(widget, name: str, size: tuple[int, int] | None = None) -> None:
        if size:
            widget.resize(*size)
        widget.show()
        widget.raise_()
        run(pause(0.6))
        widget.grab().save(str(out / f"{name}.png"))
        print("wrote", out / f"{name}.png")

    # A fresh home: the welcome window, then its folder added and the first sync held mid-pass.
    run(app.start(welcome=True))
    welcome = app.windows["welcome"]
    save(welcome, "welcome")
    run(app.add_folder(str(docs)))
    welcome.close()
    progress = app.show_window("progress")
    progress.resize(760, 560)

    def committed() -> int:
        return int((app.bridge.latest_progress.get("documents") or {}).get("done") or 0)

    run(until(lambda: committed() >= 200, 120))  # well under way: a rate and a time left
    # The searchable count follows the commits within about a second: shoot once it has.
    run(until(lambda: (app.request_refresh(0), app.snapshot.documents >= 200)[1], 60))
    save(progress, "first-sync", (760, 560))
    progress.hide()
    (root / "gate").unlink()
    run(until(lambda: app.snapshot.documents > 5 and not app.busy and app.state != "syncing"))
    run(pause(0.5))

    # The tray menu, open, with the panel it hangs from.
    screen = QGuiApplication.primaryScreen()
    app.tray.rebuild_menu()
    menu = app.tray.menu
    width = screen.geometry().width()
    menu.popup(QPoint(width - menu.sizeHint().width() - 8, 30))
    run(pause(0.8))
    geo = menu.geometry()
    x = geo.x() - 20
    shot = screen.grabWindow(0, x, 0, width - x, geo.bottom() + 16)
    shot.save(str(out / "tray-menu.png"))
    print("wrote", out / "tray-menu.png")
    menu.hide()

    progress = app.show_window("progress")
    progress.tabs.setCurrentIndex(1)
    progress.failed.selectRow(0)
    save(progress, "progress", (760, 560))
    progress.tabs.setCurrentIndex(0)
    progress.hide()
    sources = app.show_window("sources")
    save(sources, "sources", (860, 300))
    dialog = sources.add_source()
    dialog.add_folder(str(Path.home() / "Notes"))
    dialog.patterns.setText("*.md, *.pdf")
    save(dialog, "sources-add")
    dialog.reject()
    sources.hide()
    search = app.show_window("search")
    search.query.setText("passport renew")
    run(until(lambda: bool(search.hits), 30))
    save(search, "search", (760, 520))
    search.hide()
    backup = app.show_window("backup")
    backup.bucket.setText("my-backups")
    backup.region.setText("eu-west-1")
    run(pause(1.5))
    save(backup, "backup")
    backup.hide()
    settings = app.show_window("settings")
    settings.model.setCurrentText("wordllama:64")
    save(settings, "settings")
    settings.model.setCurrentText("wordllama")
    settings.hide()

    # Dark mode: the same app with a dark desktop theme (palette and colour scheme).
    hints = QGuiApplication.styleHints()
    light = qapp.palette()
    qapp.setPalette(dark_palette())
    if hasattr(hints, "setColorScheme"):
        hints.setColorScheme(Qt.ColorScheme.Dark)
    run(pause(0.5))
    for w in app.windows.values():
        w.hide()
    app.tray.update_state(force=True)
    save(app.show_window("progress"), "progress-dark", (760, 520))
    app.windows["progress"].hide()
    search = app.show_window("search")
    search.query.setText("passport")
    run(until(lambda: bool(search.hits), 30))
    save(search, "search-dark", (760, 520))
    search.hide()
    app.tray.rebuild_menu()
    menu.popup(QPoint(width - menu.sizeHint().width() - 8, 30))
    run(pause(0.8))
    geo = menu.geometry()
    screen.grabWindow(0, geo.x() - 20, 0, width - geo.x() + 20, geo.bottom() + 16).save(
        str(out / "tray-menu-dark.png"))
    menu.hide()
    qapp.setPalette(light)
    if hasattr(hints, "setColorScheme"):
        hints.setColorScheme(Qt.ColorScheme.Light)

    # The icon set, light and dark, every state.
    from PySide6.QtGui import QColor, QPainter, QPixmap

    states = ("idle", "syncing", "paused", "error", "attention")
    sheet = QPixmap(len(states) * 72 + 16, 2 * 72 + 16)
    sheet.fill(QColor("#ffffff"))
    p = QPainter(sheet)
    p.fillRect(0, 80, sheet.width(), 80, QColor("#2b2b2b"))
    for i, s in enumerate(states):
        p.drawPixmap(16 + i * 72, 12, render(s, 48, False))
        p.drawPixmap(16 + i * 72, 92, render(s, 48, True))
    p.end()
    sheet.save(str(out / "icons.png"))
    print("wrote", out / "icons.png")

    run(app.stop_service())
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
