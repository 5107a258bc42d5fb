"""Progress: what each source is doing right now, what changed recently, and what failed.

Per source: a progress bar with counts, rate and ETA, the file being read, and — when the source
waits — why (paused, backing off after an error, degraded watcher, waiting for the keyring,
queued behind another source). Below: the activity list and the failed-files ledger with Retry,
Ignore, Open file and Copy error.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidgetItem,
    QMenu,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.ui import status as st
from app.ui.windows.common import Banner, PlaceholderList, fmt_eta, muted, setup_window

if TYPE_CHECKING:
    from app.service.status import SourceStatus
    from app.ui.controller import TrayApp

STATE_WORDS = {"idle": "Up to date", "queued": "Queued", "scanning": "Looking for changes…",
               "indexing": "Indexing", "error": "Error", "maintaining": "Tidying the index…"}


def _html(text: str) -> str:
    import html

    return html.escape(text)


class SourceProgress(QWidget):
    """One source's bar and lines."""

    def __init__(self, source_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source_id = source_id
        self.name = QLabel(f"<b>{source_id}</b>")
        self.state = QLabel()
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.bar.setMinimumWidth(260)
        self.counts = QLabel()
        self.current = QLabel()
        muted(self.current)
        self.current.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.why = QLabel()
        self.why.setWordWrap(True)
        self.why.setObjectName("why")
        self.why.setStyleSheet("#why { color: #c77700; }")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 4, 0, 8)
        grid.addWidget(self.name, 0, 0)
        grid.addWidget(self.state, 0, 1, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.bar, 1, 0, 1, 2)
        grid.addWidget(self.counts, 2, 0, 1, 2)
        grid.addWidget(self.current, 3, 0, 1, 2)
        grid.addWidget(self.why, 4, 0, 1, 2)
        self._current_path = ""

    def show_status(self, source: SourceStatus, progress: dict[str, Any] | None,
                    why: str) -> None:
        state = source.state or "idle"
        p = progress if progress and progress.get("phase") == "indexing" else None
        if p and p.get("total"):
            done, total = int(p.get("done") or 0), int(p["total"])
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
            self.bar.setFormat(f"{done:,} / {total:,}")
            rate = float(p.get("rate") or 0)
            eta = fmt_eta(p.get("eta_s"))
            bits = [f"{done:,} of {total:,} changed files indexed",
                    f"{int(p.get('parsed') or 0):,} read"]
            if rate:
                bits.append(f"{rate:,.1f} files/s")
            if eta:
                bits.append(f"about {eta} left")
            if p.get("failed"):
                bits.append(f"{p['failed']:,} failed")
            self.counts.setText(" · ".join(bits))
            self._set_current(str(p.get("current") or ""))
            self.state.setText("Indexing")
        elif state in ("scanning", "queued", "maintaining") or (
                progress and progress.get("phase") in ("scanning", "maintaining")):
            self.bar.setRange(0, 0)  # busy indicator: the amount of work is not known yet
            self.bar.setFormat("")
            self.state.setText(STATE_WORDS.get(state, state.title()))
            self.counts.setText(st.counts_text(source.counts))
            self._set_current("")
        else:
            self.bar.setRange(0, 1)
            self.bar.setValue(1 if state == "idle" else 0)
            self.bar.setFormat("Up to date" if state == "idle" else STATE_WORDS.get(state, state))
            self.state.setText(STATE_WORDS.get(state, state.title()))
            last = (source.last_sync or {}).get("finished_at")
            tail = f" · last sync {st.ago(last)}" if last else ""
            self.counts.setText(st.counts_text(source.counts) + tail)
            self._set_current("")
        self.why.setText(why)
        self.why.setVisible(bool(why))

    def _set_current(self, uri: str) -> None:
        path = st.uri_to_path(uri)
        self._current_path = path
        if not path:
            self.current.setText("")
            self.current.hide()
            return
        metrics = self.current.fontMetrics()
        width = max(200, self.width() - 10)
        self.current.setText(metrics.elidedText(f"Reading {path}", Qt.TextElideMode.ElideMiddle,
                                                width))
        self.current.setToolTip(path)
        self.current.show()


class ProgressWindow(QWidget):
    def __init__(self, controller: TrayApp) -> None:
        super().__init__()
        self.c = controller
        setup_window(self, "Progress", 760, 620)
        self.rows: dict[str, SourceProgress] = {}

        self.headline = QLabel()
        font = QFont(self.headline.font())
        font.setPointSizeF(font.pointSizeF() * 1.25)
        self.headline.setFont(font)
        self.headline.setWordWrap(True)
        self.sync_button = QPushButton("Sync now")
        self.sync_button.clicked.connect(lambda: self.c.sync_now())
        self.pause_button = QPushButton("Pause")
        self.pause_menu = QMenu(self)
        for text, minutes in (("For 30 minutes", 30), ("For 1 hour", 60)):
            self.pause_menu.addAction(text, lambda m=minutes: self.c.pause(m))
        self.pause_menu.addAction("Until tomorrow", lambda: self.c.pause(until_tomorrow=True))
        self.pause_menu.addAction("Until I resume", lambda: self.c.pause(None))
        self.pause_button.clicked.connect(self._pause_clicked)
        head = QHBoxLayout()
        head.addWidget(self.headline, 1)
        head.addWidget(self.sync_button)
        head.addWidget(self.pause_button)

        self.banner = Banner()

        self.sources_box = QWidget()
        self.sources_layout = QVBoxLayout(self.sources_box)
        self.sources_layout.setContentsMargins(4, 0, 4, 0)
        self.empty = QWidget()
        empty_lay = QVBoxLayout(self.empty)
        msg = QLabel("No sources yet. Add a folder and LanceDB Sync indexes it and keeps it "
                     "up to date.")
        msg.setWordWrap(True)
        msg.setAlignment(Qt.AlignmentFlag.AlignCenter)
        add = QPushButton("Add a folder…")
        add.clicked.connect(self._add_source)
        empty_lay.addStretch(1)
        empty_lay.addWidget(msg)
        empty_lay.addWidget(add, 0, Qt.AlignmentFlag.AlignCenter)
        empty_lay.addStretch(1)
        self.sources_layout.addWidget(self.empty)
        self.sources_layout.addStretch(1)
        self.scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.sources_box)

        self.activity = PlaceholderList("Nothing has changed since LanceDB Sync started. Documents "
                                        "added, changed or removed will be listed here.")
        self.activity.setObjectName("activity")
        self.activity.setAlternatingRowColors(True)
        self.activity.setWordWrap(True)
        self.failed = QTableWidget(0, 4)
        self.failed.setObjectName("failed")
        self.failed.setHorizontalHeaderLabels(["File", "Source", "Status", "Reason"])
        self.failed.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.failed.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.failed.verticalHeader().hide()
        header = self.failed.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.failed.setColumnWidth(0, 200)
        self.failed.setWordWrap(False)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail.hide()
        self.failed.doubleClicked.connect(lambda _i: self.open_selected())
        self.failed.itemSelectionChanged.connect(self._update_ledger_buttons)
        self.failed_empty = QLabel("No failed files. Files that cannot be read show up here "
                                   "with the reason.")
        self.failed_empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        muted(self.failed_empty)
        self.retry_button = QPushButton("Retry")
        self.retry_button.setToolTip("Try these files again on the next sync (starts it now)")
        self.retry_button.clicked.connect(self.retry_selected)
        self.ignore_button = QPushButton("Ignore")
        self.ignore_button.setToolTip("Hide these failures from this list and the tray state")
        self.ignore_button.clicked.connect(self.ignore_selected)
        self.open_button = QPushButton("Open file")
        self.open_button.clicked.connect(self.open_selected)
        self.copy_button = QPushButton("Copy error")
        self.copy_button.clicked.connect(self.copy_selected)
        QShortcut(QKeySequence.StandardKey.Copy, self.failed, self.copy_selected)
        buttons = QHBoxLayout()
        for b in (self.retry_button, self.ignore_button, self.open_button, self.copy_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        ledger = QWidget()
        ledger_lay = QVBoxLayout(ledger)
        ledger_lay.addWidget(self.failed_empty)
        ledger_lay.addWidget(self.failed, 1)
        ledger_lay.addWidget(self.detail)
        ledger_lay.addLayout(buttons)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.activity, "Activity")
        self.tabs.addTab(ledger, "Failed files")

        lay = QVBoxLayout(self)
        lay.addLayout(head)
        lay.addWidget(self.banner)
        lay.addWidget(scroll)
        lay.addWidget(self.tabs, 1)
        if controller.main_window_mode:
            lay.addLayout(self._navigation())

        for t, level, text in controller.activity[-200:]:
            self.add_activity(t, level, text)
        controller.snapshot_changed.connect(lambda _s: self.refresh())
        controller.attention_changed.connect(self.refresh)
        controller.service_changed.connect(self.refresh)
        controller.bridge.progress.connect(self._on_progress)
        self._failed_rows: list[st.FailedEntry] = []
        self.refresh()

    def _navigation(self) -> QHBoxLayout:
        """Without a tray host this window is the app's main window: the tray menu's items."""
        row = QHBoxLayout()
        note = QLabel("No system tray found: this window stands in for the tray menu.")
        muted(note)
        row.addWidget(note, 1)
        for text, window in (("Search…", "search"), ("Sources…", "sources"),
                             ("Backup…", "backup"), ("Settings…", "settings")):
            b = QPushButton(text)
            b.clicked.connect(lambda _c=False, w=window: self.c.show_window(w))
            row.addWidget(b)
        quit_button = QPushButton("Quit")
        quit_button.clicked.connect(lambda: self.c.spawn(self.c.quit()))
        row.addWidget(quit_button)
        return row

    # -- live state -------------------------------------------------------------------------------

    def refresh(self) -> None:
        snap = self.c.snapshot
        self.headline.setText(self.c.summary())
        running = self.c.service is not None
        self.sync_button.setEnabled(running and bool(snap.sources))
        self.pause_button.setEnabled(running)
        self.pause_button.setText("Resume" if snap.paused else "Pause")
        reasons = list(self.c.attention.values())
        self.banner.show_message(" ".join(f"Needs attention: {r}." for r in reasons),
                                 "warning")
        ids = [s.source_id for s in snap.sources]
        self.empty.setVisible(not ids and running)
        for sid in list(self.rows):
            if sid not in ids:
                self.rows.pop(sid).deleteLater()
        for i, source in enumerate(snap.sources):
            sid = source.source_id
            row = self.rows.get(sid)
            if row is None:
                row = self.rows[sid] = SourceProgress(sid)
                self.sources_layout.insertWidget(i + 1, row)
            row.show_status(source, self.c.bridge.latest_progress.get(sid),
                            st.why_slow(source, snap, self.c.attention))
        self._fill_ledger(snap.failed)
        # The sources take the room they need (up to a limit); the lists below get the rest.
        self.scroll.setFixedHeight(min(360, self.sources_box.sizeHint().height() + 4))

    def _on_progress(self, sid: str, data: dict[str, Any]) -> None:
        row = self.rows.get(sid)
        source = self.c.snapshot.source(sid)
        if row is not None and source is not None:
            row.show_status(dataclasses.replace(source, state="indexing"), data,
                            st.why_slow(source, self.c.snapshot, self.c.attention))
            self.headline.setText(self.c.summary())

    def add_activity(self, t: float, level: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(t))
        item = QListWidgetItem(f"{stamp}  {text}")
        if level == "error":
            item.setForeground(Qt.GlobalColor.red)
        elif level == "warning":
            item.setForeground(Qt.GlobalColor.darkYellow)
        self.activity.insertItem(0, item)
        while self.activity.count() > 500:
            self.activity.takeItem(self.activity.count() - 1)

    def _pause_clicked(self) -> None:
        if self.c.snapshot.paused:
            self.c.resume()
        else:
            self.pause_menu.popup(self.pause_button.mapToGlobal(
                self.pause_button.rect().bottomLeft()))

    def _add_source(self) -> None:
        w = self.c.show_window("sources")
        w.add_source()  # type: ignore[attr-defined]

    # -- the ledger -------------------------------------------------------------------------------

    def _fill_ledger(self, failed: tuple[st.FailedEntry, ...]) -> None:
        if list(failed) == self._failed_rows:
            return
        selected = {e.doc_uid for e in self.selected_entries()}
        self._failed_rows = list(failed)
        self.failed.setRowCount(len(failed))
        for r, e in enumerate(failed):
            name = e.path.rsplit("/", 1)[-1] or e.path
            cells = [name, e.source_id, e.status, e.reason.splitlines()[0] if e.reason else ""]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(e.path if col == 0 else e.reason)
                self.failed.setItem(r, col, item)
            if e.doc_uid in selected:
                self.failed.selectRow(r)
        n = len(failed)
        self.tabs.setTabText(1, st.ledger_title(failed))
        self.failed.setVisible(bool(n))
        self.failed_empty.setVisible(not n)
        self._update_ledger_buttons()

    def selected_entries(self) -> list[st.FailedEntry]:
        rows = sorted({i.row() for i in self.failed.selectedIndexes()})
        return [self._failed_rows[r] for r in rows if r < len(getattr(self, "_failed_rows", []))]

    def _update_ledger_buttons(self) -> None:
        sel = self.selected_entries()
        if len(sel) == 1:
            self.detail.setText(f"<b>{_html(sel[0].path)}</b><br>{_html(sel[0].reason)}")
            self.detail.show()
        else:
            self.detail.hide()
        for b in (self.retry_button, self.ignore_button, self.copy_button):
            b.setEnabled(bool(sel))
        self.open_button.setEnabled(len(sel) == 1 and sel[0].uri.startswith("file://"))

    def retry_selected(self) -> None:
        entries = self.selected_entries()
        if entries:
            self.c.spawn(self.c.retry_files(entries))

    def ignore_selected(self) -> None:
        entries = self.selected_entries()
        if entries:
            self.c.spawn(self.c.ignore_files(entries))

    def open_selected(self) -> None:
        entries = self.selected_entries()
        if len(entries) == 1:
            self.c.open_path(entries[0].path)

    def copy_selected(self) -> None:
        entries = self.selected_entries()
        if entries:
            text = "\n".join(f"{e.path}: {e.reason}" for e in entries)
            QGuiApplication.clipboard().setText(text)

    def closeEvent(self, event: Any) -> None:
        if self.c.main_window_mode and not self.c.quitting:
            self.c.spawn(self.c.quit())
        super().closeEvent(event)
