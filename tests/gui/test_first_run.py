"""The first run, as a new user meets it: a fresh home (no sources) → the welcome window → a
folder added through its button → Progress with live, non-zero counts while the first sync
runs → the "first sync done" notification → a search that finds a document. Then the Search
window's "Searching…" indicator, its open error, its type and folder filters.

The app runs in-process under Xvfb with trayer (tests/gui/conftest.py). The first sync is held
mid-pass by a parser that waits while a gate file exists (tests/helpers/parsers.py `gated`), so
the live counts are seen for certain, even on a busy machine; every wait is on a condition.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QSystemTrayIcon

from tests.gui.conftest import wait_until

pytestmark = pytest.mark.gui

NOTES = 24  # Markdown files indexed at once; one more file is held by the gate


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, display):
    """A fresh home: HOME with Documents and Notes (no Desktop), a folder to add, an app home
    with no sources, and the gate closed."""
    root = tmp_path_factory.mktemp("first-run")
    user = root / "user"
    (user / "Documents").mkdir(parents=True)
    (user / "Notes").mkdir()
    handbook = user / "Projects" / "handbook"
    handbook.mkdir(parents=True)
    for i in range(NOTES):
        (handbook / f"a-note-{i:03}.md").write_text(
            f"# Note {i}\n\nMeeting notes number {i} about the quarterly garden budget.\n")
    (handbook / "volcano.md").write_text(
        "# Volcanoes\n\nA stratovolcano is built up by many layers of hardened lava.\n")
    (handbook / "zz-held.gated").write_text("Held by the gate until the test opens it.\n")
    app_home = root / "app"
    cfg = app_home / "config" / "config.toml"
    cfg.parent.mkdir(parents=True)
    # Two parser processes: one held by the gate, one that reads the rest whatever the order.
    cfg.write_text('max_concurrent_processing = 2\n\n'
                   '[extractors]\n".gated" = "tests.helpers.parsers:gated"\n')
    gate = root / "gate"
    gate.write_text("")
    saved = {k: os.environ.get(k) for k in ("HOME", "LANCEDB_SYNC_TEST_GATE",
                                            "XDG_CONFIG_HOME")}
    os.environ["HOME"] = str(user)
    os.environ["XDG_CONFIG_HOME"] = str(root / "xdg-config")  # no user-dirs.dirs: ~/Documents
    os.environ["LANCEDB_SYNC_TEST_GATE"] = str(gate)  # the parser processes inherit it
    yield {"user": user, "handbook": handbook, "home": app_home, "gate": gate, "root": root}
    gate.unlink(missing_ok=True)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def app(fresh, run, secret_service):
    from app.config import load_settings
    from app.ui.app import TrayApp
    from app.ui.tray import Tray

    settings = load_settings(home=fresh["home"], env={})
    tray_app = TrayApp(settings, home=str(fresh["home"]))
    assert QSystemTrayIcon.isSystemTrayAvailable()
    tray_app.tray = Tray(tray_app)
    tray_app.tray.show()
    tray_app.notices = []
    tray_app.notified.connect(lambda title, message: tray_app.notices.append((title, message)))
    run(tray_app.start(welcome=True))  # what the app's entry point does
    yield tray_app
    fresh["gate"].unlink(missing_ok=True)
    run(tray_app.stop_service())
    run(wait_until(lambda: not tray_app._tasks, what="the app's tasks to end"))
    tray_app.dispose()
    shiboken6.delete(tray_app)


def test_first_run_welcome_add_folder_live_progress_notification_search(app, fresh, run):
    # Fresh home: the welcome window is open, says what the app does and where the index is.
    welcome = app.windows.get("welcome")
    assert welcome is not None and welcome.isVisible()
    assert str(app.settings.paths.data_dir) in welcome.where.text()
    assert set(welcome.suggestion_buttons) == {"Documents", "Notes"}  # no ~/Desktop here
    assert welcome.suggestion_buttons["Notes"].toolTip() == str(fresh["user"] / "Notes")
    # The tray menu offers the same first step while there is no source.
    app.tray.rebuild_menu()
    names = [a.objectName() for a in app.tray.menu.actions()]
    assert names[2] == "add_folder", names

    # "Add a folder…" opens the picker in the home folder; the choice is injected.
    welcome.add_button.click()
    dialog = welcome.dialog
    assert dialog is not None and Path(dialog.directory().absolutePath()) == fresh["user"]
    dialog.fileSelected.emit(str(fresh["handbook"]))
    dialog.reject()
    run(wait_until(lambda: app.service.settings.source("handbook") is not None,
                   what="the folder to be added as a source"))
    run(wait_until(lambda: not welcome.isVisible() and "progress" in app.windows
                   and app.windows["progress"].isVisible(), what="Progress instead of welcome"))
    progress = app.windows["progress"]
    total = NOTES + 2

    # The first sync is held by the gate: its counts are live and non-zero everywhere.
    def live() -> bool:
        p = app.bridge.latest_progress.get("handbook") or {}
        return p.get("phase") == "indexing" and int(p.get("done") or 0) > 0
    run(wait_until(live, timeout=120, what="documents committed while the gate holds one"))
    run(wait_until(lambda: "of 26 files" in app.summary(), timeout=30,
                   what="the tray line to show the pass"))
    done = int(app.bridge.latest_progress["handbook"]["done"])
    assert 0 < done < total
    line = app.summary()
    assert not line.startswith("0 documents"), line
    assert f"indexing handbook: {done:,} of {total} files" in line.lower(), line
    progress.refresh()
    assert not progress.headline.text().startswith("0 documents"), progress.headline.text()
    row = progress.rows["handbook"]
    assert f"of {total} changed files indexed" in row.counts.text()
    assert "0 s left" not in row.counts.text()
    assert progress.now.isVisible() and "Indexing handbook" in progress.now.text()
    assert "Nothing has changed" not in progress.activity.placeholder
    sources = app.show_window("sources")
    sources.refresh()
    assert int(sources.table.item(0, 3).text().replace(",", "")) > 0  # not "0 documents"
    assert sources.table.item(0, 6).text().startswith("Indexing ")

    # The gate opens: the pass ends, a notification says how many and offers Search.
    fresh["gate"].unlink()
    run(wait_until(lambda: app.notices, timeout=120, what="the first-sync notification"))
    title, message = app.notices[-1]
    assert title == "First sync done"
    assert message.startswith(f"handbook: {total} documents indexed and searchable.")
    assert app.notice_action == "search"
    run(wait_until(lambda: progress.banner.isVisible() and progress.banner.button.isVisible(),
                   what="Progress to offer Search"))
    progress.banner.button.click()
    search = app.windows["search"]
    assert search.isVisible()
    run(wait_until(lambda: app.snapshot.documents == total and not app.busy,
                   timeout=60, what="the final count"))
    assert not progress.now.isVisible()
    QTest.keyClicks(search.query, "stratovolcano lava")
    run(wait_until(lambda: search.hits, timeout=60, what="search results"))
    assert search.hits[0].title == "Volcanoes"
    # Not shown again once a source exists.
    app.windows.pop("welcome").close()
    assert not app.first_run()
    app.tray.rebuild_menu()
    assert "add_folder" not in [a.objectName() for a in app.tray.menu.actions()]


class SlowReader:
    """The controller's Service with a search held until `go` is set (to see the indicator)."""

    def __init__(self, service) -> None:
        self.service = service
        self.go = threading.Event()

    def __getattr__(self, name):
        return getattr(self.service, name)

    def search(self, *args, **kwargs):
        self.go.wait(30)
        return self.service.search(*args, **kwargs)


def _indexed(app, fresh, run):
    fresh["gate"].unlink(missing_ok=True)
    if app.service.settings.source("handbook") is None:
        run(app.add_folder(str(fresh["handbook"])))
    run(wait_until(lambda: app.snapshot.documents >= NOTES + 2 and not app.busy, timeout=120,
                   what="the handbook to be indexed"))


def test_search_shows_searching_while_a_query_runs(app, fresh, run, monkeypatch):
    _indexed(app, fresh, run)
    window = app.show_window("search")
    window.query.clear()
    slow = SlowReader(app.reader())
    monkeypatch.setattr(app, "reader", lambda: slow)
    window.query.setText("garden budget")
    run(wait_until(lambda: window.searching.isVisible(), what="the indicator"))
    assert "Searching" in window.searching.text()
    slow.go.set()
    run(wait_until(lambda: window.hits and not window.searching.isVisible(), timeout=60,
                   what="results, indicator gone"))


def _fake_launcher(folder: Path, script: str) -> None:
    folder.mkdir(exist_ok=True)
    exe = folder / "xdg-open"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)


def test_opening_a_result_with_no_viewer_shows_the_path_and_what_to_do(app, fresh, run,
                                                                        monkeypatch, tmp_path):
    _indexed(app, fresh, run)
    window = app.show_window("search")
    window.query.setText("stratovolcano")
    run(wait_until(lambda: window.hits and window.hits[0].title == "Volcanoes", timeout=60,
                   what="the result"))
    # xdg-open as on a desktop with no application for the type: a complaint, exit status 3.
    _fake_launcher(tmp_path / "bin", "echo \"xdg-open: no method available for opening '$1'\""
                                     " >&2\nexit 3\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    QTest.keyClick(window.query, Qt.Key.Key_Return)
    run(wait_until(lambda: window.banner.isVisible(), timeout=30, what="the open error"))
    text = window.banner.label.text()
    path = str(fresh["handbook"] / "volcano.md")
    assert path in text and "no application is set up" in text and "Install" in text
    assert "no method available" in text
    window.banner.button.click()  # "Copy path"
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == path
    # With a viewer the document opens and the banner goes.
    opened = tmp_path / "opened"
    _fake_launcher(tmp_path / "bin", f"echo \"$1\" > {opened}\n")
    QTest.keyClick(window.query, Qt.Key.Key_Return)
    run(wait_until(lambda: opened.exists() and not window.banner.isVisible(), timeout=30,
                   what="the document opened"))
    assert opened.read_text().strip() == path


def test_type_filter_comes_from_the_registry_and_folder_picker_opens_at_home(app, fresh, run):
    _indexed(app, fresh, run)
    window = app.show_window("search")
    run(wait_until(lambda: window.types_loaded.done(), what="the types"))
    types = [window.type.itemText(i) for i in range(window.type.count())]
    assert types[0] == "Any type"
    assert {"pdf", "md", "docx", "epub", "eml", "odt", "tsv", "gated"} <= set(types)
    dialog = window.pick_folder()
    try:
        assert Path(dialog.directory().absolutePath()) == fresh["user"]
    finally:
        dialog.reject()
    window.set_folder(str(fresh["user"] / "Notes"))  # nothing indexed there
    window.query.setText("stratovolcano")
    run(wait_until(lambda: "No results" in window.message.text(), timeout=60,
                   what="no results outside the folder"))
    window.set_folder(str(fresh["handbook"]))
    run(wait_until(lambda: window.hits, timeout=60, what="results in the folder"))
    window.set_folder("")


def test_welcome_says_why_a_folder_was_not_added(app, fresh, run):
    _indexed(app, fresh, run)
    welcome = app.show_window("welcome")  # the tray menu offers it only without sources
    try:
        welcome.add_folder(str(fresh["handbook"]))
        run(wait_until(lambda: welcome.banner.isVisible() and "indexed already"
                       in welcome.banner.label.text(), what="the refusal"))
        assert welcome.isVisible()
        welcome.add_folder(str(fresh["user"] / "no-such-folder"))
        run(wait_until(lambda: "Not a folder" in welcome.banner.label.text(),
                       what="not a folder"))
        assert [s.source_id for s in app.service.settings.sources] == ["handbook"]
    finally:
        welcome.close()
