"""Search: search-as-you-type over the index through the Service (`Service.search`, what
`lancedb-sync search` runs), in a worker thread; the running service's, or an idle Service's when
none runs (`TrayApp.reader`).

Typing waits `DEBOUNCE_MS` before searching; a newer query makes older results stale (they are
dropped when they arrive). Keyboard: ↓/↑ move through results from the query box, Enter opens
the document (at its page for PDFs where the viewer allows), Ctrl+Shift+C copies its path
(Ctrl+C too when the list has focus), Ctrl+L returns to the query, Esc closes.
"""

from __future__ import annotations

import asyncio
import functools
import html
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.models import SearchFilters
from app.ui import status as st
from app.ui.icons import is_dark
from app.ui.windows.common import muted, setup_window

if TYPE_CHECKING:
    from app.ui.controller import TrayApp

DEBOUNCE_MS = 250
RESULTS = 20
MODES = (("Hybrid", "hybrid"), ("Semantic", "vector"), ("Keyword", "fts"))
TYPES = ("Any type", "pdf", "md", "txt", "docx", "pptx", "xlsx", "html", "csv", "epub", "eml")


def highlight(snippet: str) -> str:
    """The search's «marked» terms as HTML highlights, everything else escaped."""
    bg, fg = ("#806600", "#ffffff") if is_dark() else ("#fff0a0", "#000000")
    out = html.escape(snippet)
    out = out.replace("«", f'<span style="background-color:{bg}; color:{fg};"><b>')
    return out.replace("»", "</b></span>")


class ResultWidget(QLabel):
    def __init__(self, hit: Any) -> None:
        super().__init__()
        path = st.uri_to_path(hit.uri)
        page = f" · page {hit.page}" if hit.page else ""
        heading = f" · {html.escape(hit.heading)}" if hit.heading and \
            hit.heading.strip() != hit.title.strip() else ""
        muted_color = self.palette().color(self.palette().ColorRole.PlaceholderText).name()
        self.setText(
            f"<b>{html.escape(hit.title)}</b>"
            f"<span style='color:{muted_color}'>{page}{heading}</span><br>"
            f"{highlight(hit.snippet)}<br>"
            f"<span style='color:{muted_color}'>{html.escape(path)}</span>")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setContentsMargins(6, 6, 6, 6)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)


class SearchWindow(QWidget):
    def __init__(self, controller: TrayApp) -> None:
        super().__init__()
        self.c = controller
        setup_window(self, "Search", 760, 560)
        self.hits: list[Any] = []
        self._seq = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search")

        self.query = QLineEdit()
        self.query.setObjectName("query")
        self.query.setPlaceholderText("Search your documents…")
        self.query.setClearButtonEnabled(True)
        self.query.textChanged.connect(self._schedule)
        self.query.returnPressed.connect(self.open_current)
        self.query.installEventFilter(self)
        self.mode = QComboBox()
        for label, value in MODES:
            self.mode.addItem(label, value)
        self.mode.setToolTip("Hybrid: meaning and words · Semantic: meaning · Keyword: words")
        self.source = QComboBox()
        self.source.setMinimumContentsLength(10)
        self.type = QComboBox()
        self.type.addItems(TYPES)
        self.type.setEditable(True)
        self.type.setToolTip("A file extension (pdf) or a MIME prefix (text/)")
        for combo in (self.mode, self.source, self.type):
            combo.currentIndexChanged.connect(lambda _i: self._schedule(now=True))
        self.type.editTextChanged.connect(lambda _t: self._schedule())
        filters = QHBoxLayout()
        filters.addWidget(QLabel("Mode:"))
        filters.addWidget(self.mode)
        filters.addWidget(QLabel("Source:"))
        filters.addWidget(self.source)
        filters.addWidget(QLabel("Type:"))
        filters.addWidget(self.type)
        filters.addStretch(1)

        self.results = QListWidget()
        self.results.setObjectName("results")
        self.results.setAlternatingRowColors(True)
        self.results.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.itemActivated.connect(lambda _i: self.open_current())
        self.results.currentRowChanged.connect(self._row_changed)
        self.message = QLabel()
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        muted(self.message)
        self.footer = QLabel("↑↓ move · Enter opens · Ctrl+Shift+C copies the path · "
                             "Ctrl+L back to the query · Esc closes")
        muted(self.footer)

        lay = QVBoxLayout(self)
        lay.addWidget(self.query)
        lay.addLayout(filters)
        lay.addWidget(self.message, 1)
        lay.addWidget(self.results, 1)
        lay.addWidget(self.footer)

        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(lambda: self.c.spawn(self.run_search()))
        QShortcut(QKeySequence("Ctrl+Shift+C"), self, self.copy_path)
        QShortcut(QKeySequence.StandardKey.Copy, self.results, self.copy_path)
        QShortcut(QKeySequence("Ctrl+L"), self, self.focus_query)
        QShortcut(QKeySequence.StandardKey.Find, self, self.focus_query)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.close)
        controller.snapshot_changed.connect(lambda _s: self._update_sources())
        self._update_sources()
        self._show_message()

    # -- state ----------------------------------------------------------------------------------

    def _update_sources(self) -> None:
        ids = [s.source_id for s in self.c.snapshot.sources]
        current = [self.source.itemData(i) for i in range(1, self.source.count())]
        if self.source.count() and ids == current:
            return
        keep = self.source.currentData()
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItem("All sources", "")
        for sid in ids:
            self.source.addItem(sid, sid)
        self.source.setCurrentIndex(max(0, self.source.findData(keep)))
        self.source.blockSignals(False)
        if not self.query.text():
            self._show_message()

    def _show_message(self, text: str | None = None) -> None:
        if text is None:
            n = self.c.snapshot.documents
            text = (f"Type to search {n:,} documents." if n else
                    "Nothing is indexed yet. Add a folder in Sources and wait for the first "
                    "sync.")
        self.message.setText(text)
        self.message.show()
        self.results.hide()

    def _schedule(self, *_: Any, now: bool = False) -> None:
        self._seq += 1  # anything in flight is stale now
        if now:
            self._debounce.start(0)
        else:
            self._debounce.start()

    # -- searching ------------------------------------------------------------------------------

    async def run_search(self) -> None:
        query = self.query.text().strip()
        seq = self._seq
        if not query:
            self.hits = []
            self.results.clear()
            self._show_message()
            return
        file_type = self.type.currentText().strip()
        file_type = "" if file_type == TYPES[0] else file_type
        filters = SearchFilters(self.source.currentData() or None, file_type or None)
        # The service is picked here, on the UI thread: a restarted one has new settings.
        search = functools.partial(self.c.reader().search, query, k=RESULTS,
                                   mode=self.mode.currentData(), filters=filters)
        loop = asyncio.get_running_loop()
        try:
            hits = await loop.run_in_executor(self._pool, search)
        except Exception as exc:
            if seq == self._seq:
                self._show_message(_search_error(exc))
            return
        if seq != self._seq:
            return  # the person typed on; a newer search is coming
        self.show_hits(hits, query)

    def show_hits(self, hits: list[Any], query: str) -> None:
        self.hits = list(hits)
        self.results.clear()
        if not hits:
            self._show_message(f"No results for “{query}”.")
            return
        self.message.hide()
        self.results.show()
        scrollbar = self.results.verticalScrollBar().sizeHint().width()
        width = max(300, self.results.width() - scrollbar - 8)
        for hit in hits:
            item = QListWidgetItem()
            widget = ResultWidget(hit)
            widget.setFixedWidth(width)
            widget.adjustSize()
            item.setSizeHint(widget.sizeHint())
            item.setToolTip(st.uri_to_path(hit.uri))
            self.results.addItem(item)
            self.results.setItemWidget(item, widget)
        self.results.setCurrentRow(0)

    def _row_changed(self, row: int) -> None:
        if 0 <= row < len(self.hits):
            self.results.scrollToItem(self.results.item(row))

    # -- keyboard -------------------------------------------------------------------------------

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.query and event.type() == QEvent.Type.KeyPress and self.hits:
            key = event.key()
            row = self.results.currentRow()
            if key == Qt.Key.Key_Down:
                self.results.setCurrentRow(min(len(self.hits) - 1, row + 1))
                return True
            if key == Qt.Key.Key_Up:
                self.results.setCurrentRow(max(0, row - 1))
                return True
            if key in (Qt.Key.Key_PageDown, Qt.Key.Key_PageUp):
                self.results.setFocus()
                return False
        return super().eventFilter(obj, event)

    def current_hit(self) -> Any | None:
        row = self.results.currentRow()
        return self.hits[row] if 0 <= row < len(self.hits) else None

    def open_current(self) -> None:
        hit = self.current_hit()
        if hit is not None:
            open_document(st.uri_to_path(hit.uri), hit.page)

    def copy_path(self) -> None:
        hit = self.current_hit()
        if hit is not None:
            QGuiApplication.clipboard().setText(st.uri_to_path(hit.uri))

    def focus_query(self) -> None:
        self.query.setFocus()
        self.query.selectAll()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.focus_query()

    def closeEvent(self, event: Any) -> None:
        self._seq += 1
        super().closeEvent(event)


def _search_error(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "no index" in text.lower() or "index is empty" in text.lower():
        return "Nothing is indexed yet. Add a folder in Sources and wait for the first sync."
    return f"Search failed: {text}"


def open_document(path: str, page: int | None = None) -> None:
    """Open with the desktop's viewer; at the page for PDFs when a known viewer is installed."""
    if "://" in path:
        QDesktopServices.openUrl(QUrl(path))
        return
    if page and path.lower().endswith(".pdf") and sys.platform.startswith("linux"):
        for viewer, args in (("evince", ["-i", str(page)]), ("okular", ["-p", str(page)]),
                             ("zathura", ["-P", str(page)])):
            exe = shutil.which(viewer)
            if exe:
                subprocess.Popen([exe, *args, path], start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=os.environ.copy())
                return
    QDesktopServices.openUrl(QUrl.fromLocalFile(path))
