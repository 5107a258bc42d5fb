"""Sources: the table of sources, and the Add / Edit form per source type.

Local folders work today. The remote types (Notion, Dropbox, Google Drive, S3) have their forms
here already, disabled with a "coming soon" note until remote sources are available; their
credentials will go to the OS keyring through `app.secrets`, never to the config file.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.models import SourceConfig, SourceType
from app.service.source_rules import SourceConfigError, check_source
from app.ui import status as st
from app.ui.windows.common import Banner, folder_picker, muted, setup_window

if TYPE_CHECKING:
    from app.ui.controller import TrayApp

TYPE_LABELS = {
    SourceType.LOCAL_FILESYSTEM.value: "Local folder",
    "notion": "Notion",
    "dropbox": "Dropbox",
    "gdrive": "Google Drive",
    "s3": "S3 bucket",
}
STATE_WORDS = {"idle": "Up to date", "queued": "Queued", "scanning": "Scanning",
               "indexing": "Indexing", "error": "Error", "paused": "Paused",
               "disabled": "Disabled"}
COLUMNS = ["Source", "Type", "Folder or account", "Documents", "Failed", "Last sync", "State"]


def split_patterns(text: str) -> list[str]:
    return [p for p in re.split(r"[,\s]+", text.strip()) if p]


def source_location(source: SourceConfig | None) -> str:
    if source is None:
        return ""
    cfg = source.config
    return ", ".join(cfg.get("watch_paths") or []) or str(
        cfg.get("bucket") or cfg.get("account") or cfg.get("workspace") or "")


class SourceDialog(QDialog):
    """Add or edit one source. Opened with `open()`; the result arrives through `finished`."""

    def __init__(self, parent: QWidget, existing_ids: set[str],
                 source: SourceConfig | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit source" if source else "Add a source")
        self.existing_ids = existing_ids
        self.others: tuple[SourceConfig, ...] = ()  # the configured sources, for check_source
        self.editing = source
        self.type_combo = QComboBox()
        for value, label in TYPE_LABELS.items():
            self.type_combo.addItem(label, value)
        self.stack = QStackedWidget()
        self.stack.addWidget(self._local_form())
        for value in list(TYPE_LABELS)[1:]:
            self.stack.addWidget(self._remote_form(value))
        self.type_combo.currentIndexChanged.connect(self._type_changed)
        self.error = QLabel()
        self.error.setStyleSheet("color: #d93025;")
        self.error.setWordWrap(True)
        self.error.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok |
                                        QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(
            "Save" if source else "Add")
        self.buttons.accepted.connect(self._validate)
        self.buttons.rejected.connect(self.reject)
        top = QFormLayout()
        top.addRow("Type:", self.type_combo)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.stack)
        lay.addWidget(self.error)
        lay.addWidget(self.buttons)
        self.resize(560, 420)
        _align_forms(self)
        if source is not None:
            self.type_combo.setCurrentIndex(max(0, self.type_combo.findData(
                source.source_type.value)))
            self.type_combo.setEnabled(False)
            self.id_edit.setText(source.source_id)
            self.id_edit.setReadOnly(True)
            for p in source.config.get("watch_paths") or []:
                self.folders.addItem(p)
            self.patterns.setText(", ".join(source.config.get("file_patterns") or []))
            self.excludes.setText(", ".join(source.config.get("exclude_patterns") or []))

    def _local_form(self) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        form.setContentsMargins(0, 0, 0, 0)
        self.id_edit = QLineEdit()
        self.id_edit.setPlaceholderText("a short name, e.g. documents")
        self.folders = QListWidget()
        self.folders.setMinimumHeight(90)
        add = QPushButton("Add folder…")
        add.clicked.connect(self._pick_folder)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: [self.folders.takeItem(self.folders.row(i))
                                        for i in self.folders.selectedItems()])
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        folders = QVBoxLayout()
        folders.addWidget(self.folders)
        folders.addLayout(buttons)
        self.patterns = QLineEdit()
        self.patterns.setPlaceholderText("every supported format (or e.g. *.pdf, *.md)")
        self.excludes = QLineEdit()
        self.excludes.setPlaceholderText("nothing (or e.g. archive/, *.log — .gitignore syntax)")
        form.addRow("Name:", self.id_edit)
        form.addRow("Folders:", folders)
        form.addRow("Only files:", self.patterns)
        form.addRow("Leave out:", self.excludes)
        hint = QLabel("Hidden files, editors' temporary files and anything in .gitignore are "
                      "skipped.")
        hint.setWordWrap(True)
        muted(hint)
        form.addRow("", hint)
        return w

    def _remote_form(self, kind: str) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        form.setContentsMargins(0, 0, 0, 0)
        note = QLabel(f"<b>Coming soon.</b> {TYPE_LABELS[kind]} sources are not available in "
                      "this version yet. This is the form they will use; credentials will be "
                      "kept in your system keyring, never in a file.")
        note.setWordWrap(True)
        form.addRow(note)
        fields = {
            "notion": [("Name:", False), ("Integration token:", True)],
            "dropbox": [("Name:", False), ("Account:", False)],
            "gdrive": [("Name:", False), ("Account:", False), ("Folder:", False)],
            "s3": [("Name:", False), ("Bucket:", False), ("Prefix:", False),
                   ("Region:", False), ("Endpoint URL:", False), ("Access key id:", False),
                   ("Secret access key:", True)],
        }[kind]
        for label, secret in fields:
            edit = QLineEdit()
            if secret:
                edit.setEchoMode(QLineEdit.EchoMode.Password)
                edit.setPlaceholderText("stored in the system keyring")
            edit.setEnabled(False)
            form.addRow(label, edit)
        if kind in ("dropbox", "gdrive"):
            connect = QPushButton(f"Connect to {TYPE_LABELS[kind]}…")
            connect.setEnabled(False)
            form.addRow("", connect)
        return w

    def _type_changed(self, index: int) -> None:
        self.stack.setCurrentIndex(index)
        local = self.type_combo.currentData() == SourceType.LOCAL_FILESYSTEM.value
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(local)

    def _pick_folder(self) -> None:
        folder_picker(self, "Choose a folder to index", str(Path.home()), self.add_folder)

    def add_folder(self, path: str) -> None:
        if path and not self.folders.findItems(path, Qt.MatchFlag.MatchExactly):
            self.folders.addItem(path)
            if not self.id_edit.text() and not self.id_edit.isReadOnly():
                name = re.sub(r"[^\w.-]+", "-", path.rstrip("/\\").rsplit("/", 1)[-1]).strip("-")
                self.id_edit.setText(name.lower() or "folder")

    def _validate(self) -> None:
        sid = self.id_edit.text().strip()
        problem = ""
        if not sid or ":" in sid:
            problem = "Give the source a name without ':'."
        elif self.editing is None and sid in self.existing_ids:
            problem = f"A source named {sid!r} exists already; choose another name."
        elif self.folders.count() == 0:
            problem = "Add at least one folder."
        else:  # the rules every face shares (the service checks them again on saving)
            try:
                check_source(self.source_config(), self.others, editing=self.editing is not None)
            except SourceConfigError as exc:
                problem = str(exc)
        if problem:
            self.error.setText(problem)
            self.error.show()
            return
        self.accept()

    def source_config(self) -> SourceConfig:
        config: dict[str, Any] = dict(self.editing.config) if self.editing else {}
        config["watch_paths"] = [self.folders.item(i).text() for i in range(self.folders.count())]
        for key, edit in (("file_patterns", self.patterns), ("exclude_patterns", self.excludes)):
            values = split_patterns(edit.text())
            if values:
                config[key] = values
            else:
                config.pop(key, None)
        if self.editing is not None:
            return SourceConfig(self.editing.source_type, self.editing.source_id, config,
                                self.editing.poll_interval, self.editing.enabled)
        return SourceConfig(SourceType.LOCAL_FILESYSTEM, self.id_edit.text().strip(), config)


class SourcesWindow(QWidget):
    def __init__(self, controller: TrayApp) -> None:
        super().__init__()
        self.c = controller
        setup_window(self, "Sources", 860, 420)
        self.dialog: SourceDialog | None = None
        self.banner = Banner()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("sources")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.doubleClicked.connect(lambda _i: self.edit_source())
        self.empty = QLabel("No sources yet.\nAdd a folder and it is indexed and kept up to "
                            "date while LanceDB Sync runs.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        muted(self.empty)
        self.add_button = QPushButton("Add…")
        self.add_button.clicked.connect(self.add_source)
        self.edit_button = QPushButton("Edit…")
        self.edit_button.clicked.connect(self.edit_source)
        self.remove_button = QPushButton("Remove…")
        self.remove_button.clicked.connect(self.remove_source)
        self.scan_button = QPushButton("Scan now")
        self.scan_button.clicked.connect(self.scan_now)
        buttons = QHBoxLayout()
        for b in (self.add_button, self.edit_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.scan_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.empty, 1)
        lay.addLayout(buttons)
        controller.snapshot_changed.connect(lambda _s: self.refresh())
        controller.service_changed.connect(self.refresh)
        self.refresh()

    # -- table ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        snap = self.c.snapshot
        running = self.c.service is not None
        settings = self.c.service.settings if running else self.c.settings
        selected = self.selected_id()
        self.table.setRowCount(len(snap.sources))
        for r, s in enumerate(snap.sources):
            sid = s.source_id
            cfg = settings.source(sid)
            last = snap.last_sync(sid)
            state = s.state or "idle"
            if snap.paused:
                state = "paused"
            elif not s.enabled:
                state = "disabled"
            state = STATE_WORDS.get(state, state.capitalize())
            p = st.pass_progress(s, self.c.bridge.latest_progress.get(sid))  # a pass under way
            if p and p.get("total") and not snap.paused:
                state = f"Indexing {int(p.get('done') or 0):,} of {int(p['total']):,}"
            cells = [sid, TYPE_LABELS.get(s.source_type, s.source_type),
                     source_location(cfg), f"{st.live_documents(s, p):,}",
                     f"{s.failed:,}", st.ago(last) if last else "never", state]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col in (3, 4):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight |
                                          Qt.AlignmentFlag.AlignVCenter)
                if col == 6 and s.last_error:
                    item.setToolTip(s.last_error)
                self.table.setItem(r, col, item)
            if sid == selected:
                self.table.selectRow(r)
        has = bool(snap.sources)
        self.table.setVisible(has)
        self.empty.setVisible(not has)
        self.add_button.setEnabled(running)
        if not running and "index" in self.c.attention:
            self.banner.show_message(f"Needs attention: {self.c.attention['index']}.", "warning")
        else:
            self.banner.clear()
        self._update_buttons()

    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return item.text() if item else None

    def _update_buttons(self) -> None:
        on = self.selected_id() is not None and self.c.service is not None
        for b in (self.edit_button, self.remove_button, self.scan_button):
            b.setEnabled(on)

    # -- actions --------------------------------------------------------------------------------

    def add_source(self) -> SourceDialog:
        ids = {s.source_id for s in self.c.service.settings.sources} if self.c.service else set()
        self.dialog = SourceDialog(self, ids)
        self.dialog.others = self.c.service.settings.sources if self.c.service else ()
        self.dialog.finished.connect(self._add_finished)
        self.dialog.open()
        return self.dialog

    def _add_finished(self, result: int) -> None:
        dialog, self.dialog = self.dialog, None
        if result != QDialog.DialogCode.Accepted or dialog is None:
            return
        config = dialog.source_config()
        self.c.spawn(self._add(config))

    async def _add(self, config: SourceConfig) -> None:
        missing = await self.c.run_blocking(
            lambda: [p for p in config.config["watch_paths"] if not _is_dir(p)])
        if missing:
            self.banner.show_message(f"Not a folder: {', '.join(missing)}", "error")
            return
        try:
            await self.c.service.add_source(config)
        except SourceConfigError as exc:
            self.banner.show_message(str(exc), "error")
            return
        self.c.expect_first_sync(config.source_id)
        self.banner.show_message(f"Added {config.source_id!r}; indexing starts now.", "info")
        self.c.request_refresh(0)

    def edit_source(self) -> SourceDialog | None:
        sid = self.selected_id()
        if sid is None or self.c.service is None:
            return None
        source = self.c.service.settings.source(sid)
        if source is None:
            return None
        self.dialog = SourceDialog(self, set(), source)
        self.dialog.others = self.c.service.settings.sources
        self.dialog.finished.connect(self._edit_finished)
        self.dialog.open()
        return self.dialog

    def _edit_finished(self, result: int) -> None:
        dialog, self.dialog = self.dialog, None
        if result == QDialog.DialogCode.Accepted and dialog is not None:
            self.c.spawn(self._update(dialog.source_config()))

    async def _update(self, config: SourceConfig) -> None:
        try:
            await self.c.service.update_source(config)
        except SourceConfigError as exc:
            self.banner.show_message(str(exc), "error")
            return
        self.banner.show_message(f"Saved {config.source_id!r}; it is scanned again now.", "info")
        self.c.request_refresh(0)

    def remove_source(self) -> QMessageBox | None:
        """Ask before removing: a removed source's documents are deleted from the index with
        it (kept, they would be searchable but counted and managed nowhere)."""
        sid = self.selected_id()
        if sid is None:
            return None
        row = self.c.service.get_status().source(sid) if self.c.service else None
        n = (row.documents + row.failed + row.skipped + row.unsupported) if row else 0
        docs = f"its {n:,} documents" if n else "its documents"
        box = QMessageBox(QMessageBox.Icon.Question, "Remove source",
                          f"Remove the source {sid!r} and delete {docs} from the index?\n\n"
                          "The files themselves are not touched; adding the folder again "
                          "indexes them again.", parent=self)
        purge = box.addButton("Remove and delete its documents",
                              QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)

        def done(_result: int) -> None:
            if box.clickedButton() is purge:
                self.c.spawn(self._remove(sid))

        box.finished.connect(done)
        box.open()
        self.remove_box = box
        return box

    async def _remove(self, sid: str) -> None:
        service = self.c.service
        self.banner.show_message(f"Removing {sid!r}…", "info")
        # Let a pass of this source stop first (at a batch boundary): the service would purge
        # while its own pass still writes that source's documents.
        for _ in range(300):
            status = await self.c.run_blocking(service.get_status)
            if status.current != sid:
                break
            service.cancel_current()
            await asyncio.sleep(0.1)
        n = await service.remove_source(sid)
        self.banner.show_message(
            f"Removed {sid!r}; {n:,} documents were deleted from the index.", "info")
        self.c.request_refresh(0)

    def scan_now(self) -> None:
        sid = self.selected_id()
        if sid:
            self.c.sync_now(sid)


def _align_forms(dialog: QWidget) -> None:
    """One label column across the dialog's forms (the type row and each type's page)."""
    labels = []
    for form in dialog.findChildren(QFormLayout):
        for row in range(form.rowCount()):
            item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            if item is not None and isinstance(item.widget(), QLabel):
                labels.append(item.widget())
    width = max((label.sizeHint().width() for label in labels), default=0)
    for label in labels:
        label.setMinimumWidth(width)


def _is_dir(path: str) -> bool:
    from pathlib import Path

    return Path(path).expanduser().is_dir()
