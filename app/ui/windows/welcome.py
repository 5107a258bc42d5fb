"""Welcome: what a new user sees on a fresh home (no sources yet), instead of a lone tray icon.

What the app does, "Add a folder…" (a folder picker that opens in the home folder), one-click
buttons for the usual folders that exist (Documents, Desktop, Notes), and where the index
lives. Adding a folder goes through the controller (`TrayApp.add_folder`, the Service's
`add_source`); then this window closes and Progress shows the first sync. The controller opens
it at start when there are no sources (`TrayApp.start(welcome=True)`), and the tray menu offers
it as "Add a folder…" while there are none.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QStandardPaths, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.icons import app_icon
from app.ui.windows.common import Banner, folder_picker, muted, setup_window

if TYPE_CHECKING:
    from app.ui.controller import TrayApp

INTRO = ("LanceDB Sync keeps a searchable index of the documents in the folders you choose — "
         "PDFs, Word and Markdown files, web pages, e-mails and more — and updates it as they "
         "change. Search them by meaning or by words, here or from the command line.")


def suggested_folders(home: Path | None = None) -> list[tuple[str, Path]]:
    """The usual document folders that exist: (name, path), Documents, Desktop, Notes."""
    home = home or Path.home()
    found: list[tuple[str, Path]] = []
    candidates = [
        ("Documents", QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.DocumentsLocation)),
        ("Desktop", QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.DesktopLocation)),
        ("Documents", str(home / "Documents")),
        ("Desktop", str(home / "Desktop")),
        ("Notes", str(home / "Notes")),
        ("Notes", str(home / "notes")),
    ]
    for name, location in candidates:
        if not location:
            continue
        path = Path(location)
        # QStandardPaths falls back to the home folder itself when the folder is not set up.
        if path == home or not path.is_dir() or any(p == path for _n, p in found):
            continue
        found.append((name, path))
    return found


class WelcomeWindow(QWidget):
    def __init__(self, controller: TrayApp) -> None:
        super().__init__()
        self.c = controller
        setup_window(self, "Welcome", 620, 460)
        self.home = Path.home()
        self.dialog: QFileDialog | None = None
        self._adding = False

        icon = QLabel()
        icon.setPixmap(app_icon().pixmap(48, 48))
        title = QLabel("Welcome to LanceDB Sync")
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        title.setFont(font)
        head = QHBoxLayout()
        head.addWidget(icon)
        head.addWidget(title, 1)

        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        self.banner = Banner()

        self.add_button = QPushButton("Add a folder…")
        self.add_button.setObjectName("add_folder")
        self.add_button.setDefault(True)
        self.add_button.clicked.connect(self.pick_folder)
        step = QLabel("<b>Choose a folder to index.</b> Its sub-folders are included; you can "
                      "add more folders, or leave some files out, in Sources later.")
        step.setWordWrap(True)

        self.suggestions = QWidget()
        grid = QGridLayout(self.suggestions)
        grid.setContentsMargins(0, 0, 0, 0)
        self.suggestion_buttons: dict[str, QPushButton] = {}
        for row, (name, path) in enumerate(suggested_folders(self.home)):
            button = QPushButton(f"Index {name}")
            button.setObjectName(f"suggest_{name.lower()}")
            button.setToolTip(str(path))
            button.clicked.connect(lambda _c=False, p=path: self.add_folder(str(p)))
            where = QLabel(self._short(path))
            muted(where)
            grid.addWidget(button, row, 0)
            grid.addWidget(where, row, 1)
            self.suggestion_buttons[name] = button
        grid.setColumnStretch(1, 1)
        self.suggestions.setVisible(bool(self.suggestion_buttons))
        or_label = QLabel("Or start with one of these:")
        or_label.setVisible(bool(self.suggestion_buttons))

        settings = controller.settings
        index_dir = settings.index_dir  # None for a remote index (s3://…)
        where_text = (f"The index and its state live in <b>{_html(str(settings.paths.data_dir))}"
                      "</b>")
        if index_dir is None or not _inside(Path(str(index_dir)), settings.paths.data_dir):
            where_text += f"; the index itself is at <b>{_html(settings.index_uri)}</b>"
        self.where = QLabel(where_text + ". Your files are only read, never changed.")
        self.where.setObjectName("where")
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        muted(self.where)
        open_data = QPushButton("Open data folder")
        open_data.clicked.connect(controller.open_data_folder)
        later = QPushButton("Not now")
        later.setToolTip("The tray menu's \"Add a folder…\" brings this window back")
        later.clicked.connect(self.close)
        footer = QHBoxLayout()
        footer.addWidget(open_data)
        footer.addStretch(1)
        footer.addWidget(later)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(20, 16, 20, 16)
        lay.setSpacing(12)
        lay.addLayout(head)
        lay.addWidget(intro)
        lay.addWidget(self.banner)
        lay.addWidget(step)
        lay.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(or_label)
        lay.addWidget(self.suggestions)
        lay.addStretch(1)
        lay.addWidget(self.where)
        lay.addLayout(footer)

    def _short(self, path: Path) -> str:
        try:
            return "~/" + str(path.relative_to(self.home))
        except ValueError:
            return str(path)

    # -- adding ---------------------------------------------------------------------------------

    def pick_folder(self) -> QFileDialog:
        """The folder picker, in the home folder; the choice arrives in `add_folder`."""
        dialog = folder_picker(self, "Choose a folder to index", str(self.home),
                               self.add_folder)
        dialog.finished.connect(lambda _r: setattr(self, "dialog", None))
        self.dialog = dialog
        return dialog

    def add_folder(self, path: str) -> None:
        if path and not self._adding:
            self.c.spawn(self._add(path))

    async def _add(self, path: str) -> None:
        self._adding = True
        self._set_enabled(False)
        self.banner.show_message(f"Adding {path}…", "info")
        try:
            await self.c.add_folder(path)
        except Exception as exc:  # not a folder, already indexed, overlapping, no service
            self.banner.show_message(str(exc) or type(exc).__name__, "error")
            return
        finally:
            self._adding = False
            self._set_enabled(True)
        self.banner.clear()
        self.c.show_window("progress")
        self.close()

    def _set_enabled(self, on: bool) -> None:
        self.add_button.setEnabled(on)
        for b in self.suggestion_buttons.values():
            b.setEnabled(on)

    def closeEvent(self, event: Any) -> None:
        if self.dialog is not None:
            self.dialog.reject()
        super().closeEvent(event)


def _html(text: str) -> str:
    import html

    return html.escape(text)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(Path(folder).resolve())
    except (OSError, ValueError):
        return False
    return True
