"""Search: search-as-you-type over the index through the Service (`Service.search`, what
`lancedb-sync search` runs), in a worker thread; the running service's, or an idle Service's when
none runs (`TrayApp.reader`).

Typing waits `DEBOUNCE_MS` before searching; a newer query makes older results stale (they are
dropped when they arrive); "Searching…" shows while one runs. Filters: mode, source, file type
(the types the index reads, from `Service.supported_types`), folder (a picker that opens in the
home folder). Opening a document that no application can open shows why in a banner.
Keyboard: ↓/↑ move through results from the query box, Enter opens
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
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.models import SearchFilters
from app.ui import status as st
from app.ui.icons import is_dark
from app.ui.windows.common import Banner, folder_picker, muted, setup_window

if TYPE_CHECKING:
    from app.ui.controller import TrayApp

DEBOUNCE_MS = 250
RESULTS = 20
MODES = (("Hybrid", "hybrid"), ("Semantic", "vector"), ("Keyword", "fts"))
ANY_TYPE = "Any type"
OPEN_CHECK_S = 2.0  # how long a launcher has to fail before the document counts as opened


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
        self.type.setObjectName("type")
        self.type.addItem(ANY_TYPE, "")  # the rest: the types the index reads (load_types)
        self.type.setEditable(True)
        self.type.setToolTip("A file extension (pdf) or a MIME prefix (text/)")
        for combo in (self.mode, self.source, self.type):
            combo.currentIndexChanged.connect(lambda _i: self._schedule(now=True))
        self.type.editTextChanged.connect(lambda _t: self._schedule())
        self.folder: str = ""  # only documents under this folder ("" for all)
        self.folder_button = QPushButton("Any folder…")
        self.folder_button.setObjectName("folder")
        self.folder_button.setToolTip("Only documents in a folder (and its sub-folders)")
        self.folder_button.clicked.connect(self.pick_folder)
        self.folder_clear = QPushButton("×")
        self.folder_clear.setToolTip("Any folder")
        self.folder_clear.setMaximumWidth(28)
        self.folder_clear.hide()
        self.folder_clear.clicked.connect(lambda: self.set_folder(""))
        self.folder_dialog: QFileDialog | None = None
        self.searching = QLabel("Searching…")
        self.searching.setObjectName("searching")
        muted(self.searching)
        self.searching.hide()
        self.banner = Banner()
        filters = QHBoxLayout()
        filters.addWidget(QLabel("Mode:"))
        filters.addWidget(self.mode)
        filters.addWidget(QLabel("Source:"))
        filters.addWidget(self.source)
        filters.addWidget(QLabel("Type:"))
        filters.addWidget(self.type)
        filters.addWidget(QLabel("In:"))
        filters.addWidget(self.folder_button)
        filters.addWidget(self.folder_clear)
        filters.addStretch(1)
        filters.addWidget(self.searching)

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
        lay.addWidget(self.banner)
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
        self.types_loaded = controller.spawn(self.load_types())

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

    async def load_types(self) -> None:
        """The type filter's choices: what the index reads (the extractor registry and the
        configured plugins, through the Service), not a copy kept here."""
        types = await self.c.run_blocking(self.c.reader().supported_types)
        typed = self.type.currentText()
        self.type.blockSignals(True)
        while self.type.count() > 1:
            self.type.removeItem(1)
        for ext, label in types:
            self.type.addItem(ext, ext)
            self.type.setItemData(self.type.count() - 1, label, Qt.ItemDataRole.ToolTipRole)
        self.type.setCurrentText(typed)
        self.type.blockSignals(False)

    def pick_folder(self) -> QFileDialog:
        """Choose the folder filter; the picker opens in the home folder (or the folder
        chosen before), and the choice arrives in `set_folder`."""
        dialog = folder_picker(self, "Search only in this folder",
                               self.folder or str(Path.home()), self.set_folder)
        dialog.finished.connect(lambda _r: setattr(self, "folder_dialog", None))
        self.folder_dialog = dialog
        return dialog

    def set_folder(self, path: str) -> None:
        self.folder = str(Path(path).expanduser()).rstrip("/\\") if path else ""
        name = Path(self.folder).name if self.folder else ""
        self.folder_button.setText(name or "Any folder…")
        self.folder_button.setToolTip(self.folder or "Only documents in a folder (and its "
                                                     "sub-folders)")
        self.folder_clear.setVisible(bool(self.folder))
        self._schedule(now=True)

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
            self.searching.hide()
            self._show_message()
            return
        file_type = self.type.currentText().strip()
        file_type = "" if file_type == ANY_TYPE else file_type
        prefix = self.folder + os.sep if self.folder else None
        filters = SearchFilters(self.source.currentData() or None, file_type or None, prefix)
        # The service is picked here, on the UI thread: a restarted one has new settings.
        search = functools.partial(self.c.reader().search, query, k=RESULTS,
                                   mode=self.mode.currentData(), filters=filters)
        loop = asyncio.get_running_loop()
        self.searching.show()
        if not self.hits:
            self._show_message(f"Searching for “{query}”…")
        try:
            hits = await loop.run_in_executor(self._pool, search)
        except Exception as exc:
            if seq == self._seq:
                self.searching.hide()
                self._show_message(_search_error(exc))
            return
        if seq != self._seq:
            return  # the person typed on; a newer search is coming
        self.searching.hide()
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
            self.opening = self.c.spawn(self.open_hit(hit))

    async def open_hit(self, hit: Any) -> None:
        """Open the document; when nothing can open it, say so with the path and what to do."""
        path = st.uri_to_path(hit.uri)
        self.banner.clear()
        if sys.platform.startswith("linux") and "://" not in path:
            problem = await asyncio.to_thread(launch_document, path, hit.page)
        else:
            problem = open_document(path, hit.page)
        if problem:
            self.banner.show_message(
                f"Could not open {path}: {problem} Install an application for this kind of "
                "file (or choose one as the default with your file manager's \"Open with\"), "
                "or copy the path and open it yourself.", "error",
                ("Copy path", lambda: QGuiApplication.clipboard().setText(path)))

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
        self.searching.hide()
        if self.folder_dialog is not None:
            self.folder_dialog.reject()
        super().closeEvent(event)


def _search_error(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "no index" in text.lower() or "index is empty" in text.lower():
        return "Nothing is indexed yet. Add a folder in Sources and wait for the first sync."
    return f"Search failed: {text}"


def open_document(path: str, page: int | None = None) -> str:
    """Open with the desktop's viewer (web addresses too); "" when it opened, else what went
    wrong, for a person. On the UI thread: Qt's `QDesktopServices.openUrl` says itself whether
    it could; on Linux a local file goes to `launch_document` instead (in a worker thread)."""
    url = QUrl(path) if "://" in path else QUrl.fromLocalFile(path)
    if QDesktopServices.openUrl(url):
        return ""
    return "no application is set up to open this kind of file."


def launch_document(path: str, page: int | None = None) -> str:
    """Linux: open a local file at its page for PDFs when a known viewer is installed, else
    with xdg-open. Returns "" when it opened (or is opening), else what went wrong. Blocking
    (waits up to `OPEN_CHECK_S` for the launcher to fail): call from a worker thread.

    xdg-open reports a missing application only on its stderr and exit status, which Qt's
    `openUrl` ignores (it returns as soon as xdg-open started); so it is run here and watched
    for a moment."""
    if page and path.lower().endswith(".pdf"):
        for viewer, args in (("evince", ["-i", str(page)]), ("okular", ["-p", str(page)]),
                             ("zathura", ["-P", str(page)])):
            exe = shutil.which(viewer)
            if exe:
                return _launch([exe, *args, path])
    launcher = shutil.which("xdg-open")
    if launcher is None:
        return ("no desktop launcher (xdg-open) is installed, so no application can be "
                "found for it.")
    return _launch([launcher, path])


def _launch(argv: list[str]) -> str:
    """Start a viewer or launcher in its own session; "" unless it fails within
    `OPEN_CHECK_S` (a launcher that finds no application exits at once), else its complaint."""
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err,
                                    env=os.environ.copy())
        except OSError as exc:
            return f"{Path(argv[0]).name} could not be started ({exc.strerror or exc})."
        try:
            code = proc.wait(OPEN_CHECK_S)
        except subprocess.TimeoutExpired:
            return ""  # still running: a viewer is showing it
        if code == 0:
            return ""
        err.seek(0)
        said = err.read().decode(errors="replace").strip().splitlines()
        detail = f" ({said[-1].strip()})" if said else ""
        if Path(argv[0]).name == "xdg-open":
            return f"no application is set up to open this kind of file{detail}."
        return f"{Path(argv[0]).name} failed{detail}."
