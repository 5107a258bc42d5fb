"""The tray application driven like a person would: a real Qt tray under Xvfb with trayer as the
tray host, a real service indexing a real folder into a real LanceDB index, the real keyring.

The tests share one running app (starting the engine costs seconds) and run in file order. Each
one sets up the state it needs through the fixtures below (`docs_source`: the folder added and
its first sync done, the flaky file failing; `indexed`: the same with nothing failing) and waits
on conditions, so any one of them also passes alone (`pytest -k NAME`).
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox, QSystemTrayIcon

from tests.conftest import FIXTURES
from tests.gui.conftest import wait_until

pytestmark = pytest.mark.gui

DOCS = ("sample.md", "sample.html", "sample.txt", "sample.docx", "sample.pdf")


class UrlCatcher(QObject):
    """Receives what the app asks the desktop to open (Qt's URL handler hook) instead of
    launching a file manager or viewer on the test machine."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url.toString())


class Heartbeat:
    """A 20 ms timer on the UI thread; the largest gap between ticks is the UI's worst stall."""

    def __init__(self, interval_ms: int = 20) -> None:
        self.interval = interval_ms / 1000
        self.gaps: list[float] = []
        self._last = time.monotonic()
        self.timer = QTimer(interval=interval_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.monotonic()
        self.gaps.append(now - self._last)
        self._last = now

    def stop(self) -> None:
        self.timer.stop()

    @property
    def worst(self) -> float:
        return max(self.gaps, default=0.0)

    def p99(self) -> float:
        g = sorted(self.gaps)
        return g[int(len(g) * 0.99)] if g else 0.0


@pytest.fixture(scope="module")
def env(tmp_path_factory, display):
    """A portable home with a flaky-file parser, a folder of documents, autostart under tmp."""
    import os

    root = tmp_path_factory.mktemp("tray")
    home, docs = root / "home", root / "docs"
    docs.mkdir()
    for name in DOCS:
        src = FIXTURES / "formats" / name
        if src.exists():
            shutil.copy(src, docs / name)
    (docs / "passport.md").write_text(
        "# Renewing a passport\n\nTo renew your passport, book an appointment at the "
        "consulate and bring two photographs.\n")
    (docs / "notes.flaky").write_text("A transient failure: this note fails until retried.")
    (docs / "notes.flaky.fail").write_text("")
    cfg = home / "config" / "config.toml"
    cfg.parent.mkdir(parents=True)
    # The API on any free port: another app on this machine may hold the default one, and a
    # stopped API's port must not be taken over by it while the test checks it is closed.
    cfg.write_text('notifications = true\napi_port = 0\n\n[extractors]\n".flaky" = '
                   '"tests.helpers.parsers:flaky"\n')
    saved = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(root / "xdg-config")
    yield {"home": home, "docs": docs, "xdg": root / "xdg-config"}
    if saved is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = saved


@pytest.fixture(scope="module")
def urls(qapp):
    catcher = UrlCatcher()
    for scheme in ("file", "http", "https"):
        QDesktopServices.setUrlHandler(scheme, catcher, "open")
    yield catcher
    for scheme in ("file", "http", "https"):
        QDesktopServices.unsetUrlHandler(scheme)


@pytest.fixture(scope="module")
def tray(env, run, urls, secret_service):
    """The running app: controller + tray icon, service started on the shared qasync loop."""
    from app.config import load_settings
    from app.ui.app import TrayApp
    from app.ui.tray import Tray

    settings = load_settings(home=env["home"], env={})
    app = TrayApp(settings, home=str(env["home"]))
    assert QSystemTrayIcon.isSystemTrayAvailable()
    app.tray = Tray(app)
    app.tray.show()
    app.states_seen = []
    app.notices = []
    app.notified.connect(lambda title, message: app.notices.append((title, message)))
    app.tray_states = app.states_seen
    original = app.tray.update_state

    def spy(force=False):
        original(force)
        if not app.states_seen or app.states_seen[-1] != app.tray.shown_state:
            app.states_seen.append(app.tray.shown_state)

    app.snapshot_changed.connect(lambda _s: spy())
    app.bridge.state_changed.connect(lambda *_: spy())
    run(app.start())
    yield app
    run(app.stop_service())
    # A status refresh may still wait on its worker thread: let the app's own work end before
    # the loop does (a task left pending is destroyed with a warning).
    run(wait_until(lambda: not app._tasks, what="the app's tasks to end"))
    app.dispose()
    shiboken6.delete(app)


def expected_documents(env) -> int:
    return len(list(env["docs"].glob("sample.*"))) + 1  # + passport.md; the flaky file fails


@pytest.fixture
def docs_source(tray, env, run):
    """The docs folder as a source, with its first sync done. The adding test sets it up
    through the Sources window; a test run without it gets it from the service directly."""
    from app.models import SourceConfig, SourceType

    run(wait_until(lambda: tray.service is not None, what="the service"))
    if tray.service.settings.source("docs") is None:
        tray.expect_first_sync("docs")
        run(tray.service.add_source(SourceConfig(SourceType.LOCAL_FILESYSTEM, "docs",
                                                 {"watch_paths": [str(env["docs"])]})))
    run(wait_until(
        lambda: tray.snapshot.documents >= expected_documents(env) and not tray.busy
        and tray.state != "syncing", timeout=90, what="the docs folder to be indexed"))
    return tray


@pytest.fixture
def indexed(docs_source, env, run):
    """`docs_source` with nothing failing: the flaky file's cause removed and the file retried
    (what the ledger test does through the Progress window), so the tray can be idle."""
    tray = docs_source
    (env["docs"] / "notes.flaky.fail").unlink(missing_ok=True)
    run(tray.refresh())
    if tray.snapshot.failed:
        run(tray.retry_files(list(tray.snapshot.failed)))
    run(wait_until(lambda: not tray.snapshot.failed and not tray.busy and tray.state == "idle",
                   timeout=90, what="the flaky file to be indexed"))
    return tray


def menu_actions(tray) -> dict[str, QAction]:
    tray.rebuild_menu()
    found = {a.objectName(): a for a in tray.menu.findChildren(QAction) if a.objectName()}
    return found


def test_tray_is_available_and_starts_idle_without_sources(tray, run):
    run(wait_until(lambda: "No sources yet" in tray.tray.toolTip(), what="the tooltip"))
    assert tray.tray.isVisible()
    assert tray.state == "idle"
    assert tray.tray.shown_state == "idle"
    assert "No sources yet" in tray.tray.toolTip()
    actions = menu_actions(tray.tray)
    labels = [a.text() for a in tray.tray.menu.actions() if not a.isSeparator()]
    assert labels[0].startswith("No sources yet")  # the live status line
    assert labels[1:] == ["Add a folder…", "Sync now", "Pause", "Search…", "Sources…",
                          "Progress…", "Backup…", "Settings…", "Open data folder", "Start at login",
                          "About LanceDB Sync", "Quit"]
    assert not actions["sync_now"].isEnabled()  # nothing to sync yet
    pause = [a.text() for a in tray.tray.menu.findChild(type(tray.tray.menu), "pause").actions()
             if not a.isSeparator()]
    assert pause == ["For 30 minutes", "For 1 hour", "Until tomorrow", "Until I resume",
                     "Resume"]


def test_adding_a_folder_in_sources_indexes_it_and_progress_shows_counts(tray, env, run):
    from app.ui.windows.sources import SourceDialog

    window = tray.show_window("sources")
    assert window.empty.isVisible() and not window.table.isVisible()  # the empty state
    QTest.mouseClick(window.add_button, Qt.MouseButton.LeftButton)
    dialog = window.dialog
    assert isinstance(dialog, SourceDialog) and dialog.isVisible()
    dialog.add_folder(str(env["docs"]))  # what the folder picker's fileSelected delivers
    assert dialog.id_edit.text() == "docs"
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    beat = Heartbeat()
    t0 = time.monotonic()
    QTest.mouseClick(ok, Qt.MouseButton.LeftButton)
    expected = expected_documents(env)
    progress = tray.show_window("progress")
    run(wait_until(
        lambda: tray.snapshot.documents >= expected and not tray.busy and tray.state != "syncing",
        timeout=90, what="the folder to be indexed"))
    beat.stop()
    elapsed = time.monotonic() - t0
    assert "syncing" in tray.states_seen, tray.states_seen
    # The UI thread kept running while LanceDB, the embedder and the parsers worked. The one
    # stall left is the embedding model's first load in the sync thread, which holds the GIL in
    # native code for a few hundred ms (app.core; see docs/ui.md): bounded here, not hidden.
    assert beat.worst < 1.0, f"UI stalled {beat.worst:.3f} s (p99 {beat.p99():.3f} s)"
    assert len(beat.gaps) > elapsed / 0.1  # and it kept ticking the whole time
    run(tray.refresh())
    row = progress.rows["docs"]
    assert f"{tray.snapshot.documents:,} documents indexed" in row.counts.text()
    table = window.table
    assert table.isVisible() and table.rowCount() == 1
    assert table.item(0, 0).text() == "docs"
    assert int(table.item(0, 3).text().replace(",", "")) == tray.snapshot.documents
    assert str(env["docs"]) in table.item(0, 2).text()
    assert ("First sync done", f"docs: {tray.snapshot.documents:,} documents indexed and "
            "searchable. Click to search them.") in tray.notices
    # the flaky file is not indexed: the tray says so instead of "synced"
    assert tray.tray.toolTip() == (f"LanceDB Sync\n{tray.snapshot.documents:,} documents · "
                                   "1 file could not be indexed")


def test_failing_file_is_listed_with_its_reason_and_retry_fixes_it(docs_source, env, run):
    tray = docs_source
    progress = tray.show_window("progress")
    run(wait_until(lambda: progress.failed.rowCount() >= 1,
                                       what="the flaky file in the ledger"))
    assert tray.state == "attention"  # a file could not be indexed
    names = [progress.failed.item(r, 0).text() for r in range(progress.failed.rowCount())]
    row = names.index("notes.flaky")
    assert "marker present" in progress.failed.item(row, 3).text()
    assert "1 failed" in progress.tabs.tabText(1)  # the flaky file; skipped ones apart
    progress.failed.selectRow(row)
    assert progress.retry_button.isEnabled() and progress.open_button.isEnabled()
    # Copy error puts path and reason on the clipboard.
    QTest.mouseClick(progress.copy_button, Qt.MouseButton.LeftButton)
    assert "notes.flaky: " in QGuiApplication.clipboard().text()
    # Ignore hides it from the ledger and the tray state, remembered in the config folder.
    uid = progress.selected_entries()[0].doc_uid
    QTest.mouseClick(progress.ignore_button, Qt.MouseButton.LeftButton)
    def ledger_names() -> list[str]:
        return [progress.failed.item(r, 0).text() for r in range(progress.failed.rowCount())]

    run(wait_until(lambda: "notes.flaky" not in ledger_names() and tray.state == "idle",
                   what="the ignored file to leave the ledger"))
    ui_state = env["home"] / "config" / "ui-state.json"
    assert uid in ui_state.read_text()
    run(tray.run_blocking(lambda: tray.reader().ignore([uid], undo=True)))  # shown again
    run(tray.refresh())
    names = [progress.failed.item(r, 0).text() for r in range(progress.failed.rowCount())]
    progress.failed.selectRow(names.index("notes.flaky"))
    # The transient cause goes away (the file itself does not change), then Retry.
    (env["docs"] / "notes.flaky.fail").unlink()
    docs_before = tray.snapshot.documents
    QTest.mouseClick(progress.retry_button, Qt.MouseButton.LeftButton)
    run(wait_until(
        lambda: not tray.snapshot.failed and tray.snapshot.documents == docs_before + 1,
        timeout=60, what="the retried file to be indexed"))
    assert "notes.flaky" not in ledger_names()
    assert any("Retrying 1 file" in text for _t, _l, text in tray.activity)
    run(wait_until(lambda: tray.state == "idle", what="idle"))


def test_pause_and_resume_from_the_menu_change_the_icon(indexed, run):
    tray = indexed
    actions = menu_actions(tray.tray)
    actions["pause_30"].trigger()
    run(wait_until(lambda: tray.tray.shown_state == "paused",
                                       what="paused icon"))
    assert tray.snapshot.paused and tray.snapshot.paused_until > time.time() + 29 * 60
    actions = menu_actions(tray.tray)
    status = tray.tray.menu.actions()[0].text()
    assert "paused until" in status
    assert "resume_top" in actions and actions["resume"].isEnabled()
    actions["resume"].trigger()
    run(wait_until(lambda: tray.tray.shown_state == "idle",
                                       what="idle icon"))
    assert not tray.snapshot.paused
    # until tomorrow: paused until tomorrow morning, resumed from the Progress window's button
    menu_actions(tray.tray)["pause_tomorrow"].trigger()
    run(wait_until(lambda: tray.state == "paused", what="paused"))
    assert tray.snapshot.paused_until > time.time() + 60
    progress = tray.show_window("progress")
    assert progress.pause_button.text() == "Resume"
    progress.pause_button.click()
    run(wait_until(lambda: tray.state == "idle", what="resumed"))


def test_menu_items_do_what_they_say(indexed, env, run, urls):
    from app.ui.activity import NotificationLimit

    tray = indexed
    actions = menu_actions(tray.tray)
    for name in ("search", "sources", "progress", "backup", "settings"):
        for w in tray.windows.values():
            w.hide()
        actions[f"show_{name}"].trigger()
        assert tray.windows[name].isVisible(), name
    urls.urls.clear()
    actions["open_data"].trigger()
    assert urls.urls and urls.urls[-1].endswith(str(tray.settings.paths.data_dir))
    n = len(tray.activity)
    actions["sync_now"].trigger()
    assert any("Sync requested" in text for _t, _l, text in tray.activity[n:])
    run(wait_until(lambda: tray.state == "idle" and not tray.busy,
                                       what="the requested sync to finish"))
    # A left click on the icon opens Progress.
    tray.windows["progress"].hide()
    tray.tray.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    assert tray.windows["progress"].isVisible()
    # Notifications are rate-limited: one at a time, the same one rarely.
    now = [0.0]
    limit, tray.notify_limit = tray.notify_limit, NotificationLimit(clock=lambda: now[0])
    try:
        assert tray.notify("test:a", "Title", "first")
        assert not tray.notify("test:b", "Title", "too soon after the first")
        now[0] += 31
        assert not tray.notify("test:a", "Title", "the same one again")
        assert tray.notify("test:b", "Title", "another one, later")
    finally:
        tray.notify_limit = limit
    actions["about"].trigger()
    about = tray.windows["about"]
    assert about.isVisible() and "LanceDB Sync" in about.text()
    about.close()


def test_a_failing_action_shows_an_error_dialog_not_a_crash(tray, run):
    async def broken():
        raise OSError("the disk is full")

    tray.spawn(broken())
    run(wait_until(lambda: tray._dialogs, what="the error dialog"))
    box = next(iter(tray._dialogs))
    assert box.isVisible() and "the disk is full" in box.text()
    box.close()
    run(wait_until(lambda: not tray._dialogs, what="the dialog to be released"))


def test_start_at_login_writes_and_removes_the_autostart_entry(tray, env, run):
    entry = env["xdg"] / "autostart" / "lancedb-sync.desktop"
    assert not entry.exists()
    login = menu_actions(tray.tray)["autostart"]
    assert login.isCheckable() and not login.isChecked()
    settings_window = tray.show_window("settings")
    login.trigger()
    run(wait_until(lambda: entry.exists() and tray.autostart_on, what="the autostart entry"))
    assert settings_window.autostart.isChecked()  # the Settings window follows the menu
    text = entry.read_text()
    assert "Exec=" in text and " tray" in text and str(env["home"]) in text
    assert menu_actions(tray.tray)["autostart"].isChecked()
    menu_actions(tray.tray)["autostart"].trigger()
    run(wait_until(lambda: not entry.exists() and not tray.autostart_on, what="its removal"))
    assert not menu_actions(tray.tray)["autostart"].isChecked()


def test_start_at_login_keeps_the_portable_home_set_by_the_environment(tmp_path, qapp, run,
                                                                        monkeypatch):
    """Started with LANCEDB_SYNC_HOME and no --home, the login item starts the same home."""
    import shiboken6

    from app.config import load_settings
    from app.ui.app import TrayApp

    home = tmp_path / "portable"
    monkeypatch.setenv("LANCEDB_SYNC_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    entry = tmp_path / "xdg" / "autostart" / "lancedb-sync.desktop"
    app = TrayApp(load_settings())  # what `lancedb-sync` does without --home
    try:
        app.set_autostart(True)
        run(wait_until(lambda: app.autostart_on and entry.exists(), what="the login item"))
        exec_line = next(line for line in entry.read_text().splitlines()
                         if line.startswith("Exec="))
        assert exec_line.endswith(f" --home {home.resolve()} tray"), exec_line
        app.set_autostart(False)
        run(wait_until(lambda: not entry.exists() and not app.autostart_on, what="its removal"))
    finally:
        app.dispose()
        shiboken6.delete(app)


def test_search_as_you_type_keyboard_navigation_open_and_copy(indexed, env, run, tmp_path,
                                                               monkeypatch):
    tray = indexed
    window = tray.show_window("search")
    assert "Type to search" in window.message.text()
    QTest.keyClicks(window.query, "renew passport")
    run(wait_until(lambda: window.hits, timeout=30, what="results"))
    assert window.hits[0].title.lower().startswith("renewing a passport")
    assert window.results.currentRow() == 0
    assert "<b>" in window.results.itemWidget(window.results.item(0)).text()  # highlighted
    if len(window.hits) > 1:
        QTest.keyClick(window.query, Qt.Key.Key_Down)
        assert window.results.currentRow() == 1
        QTest.keyClick(window.query, Qt.Key.Key_Up)
    assert window.results.currentRow() == 0
    QTest.keyClick(window, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier |
                   Qt.KeyboardModifier.ShiftModifier)
    assert QGuiApplication.clipboard().text() == str(env["docs"] / "passport.md")
    # Enter opens it with the desktop's launcher (xdg-open; a stand-in that notes its argument).
    opened, bin_dir = tmp_path / "opened", tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "xdg-open").write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    (bin_dir / "xdg-open").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    QTest.keyClick(window.query, Qt.Key.Key_Return)
    run(wait_until(opened.exists, timeout=30, what="the document to be opened"))
    assert opened.read_text().strip() == str(env["docs"] / "passport.md")
    # Keyword mode and a type filter narrow the results; a query with no match says so.
    window.mode.setCurrentIndex(window.mode.findData("fts"))
    window.type.setCurrentText("md")
    run(wait_until(
        lambda: window.hits and all(h.uri.endswith(".md") for h in window.hits), timeout=30,
        what="keyword results"))
    window.query.setText("zyxwvut")
    run(wait_until(lambda: "No results" in window.message.text(),
                                       timeout=30, what="the no-results message"))


def test_search_works_while_the_service_is_stopped(indexed, run):
    """Search goes through the Service; with none running (restarting, or the index held by
    another process) the controller's idle one opens the index for it."""
    tray = indexed
    run(tray.stop_service())
    try:
        assert tray.service is None
        window = tray.show_window("search")
        window.mode.setCurrentIndex(window.mode.findData("hybrid"))
        window.type.setCurrentIndex(0)
        window.query.setText("consulate photographs")
        run(wait_until(lambda: window.hits or "failed" in window.message.text(), timeout=60,
                       what="results"))
        assert window.hits and window.hits[0].title.lower().startswith("renewing a passport")
    finally:
        run(tray.start_service())
    assert tray.service is not None


def test_backup_secret_lands_in_the_keyring_and_in_no_file(tray, env, run,
                                                           secret_service):
    import keyring

    from app import secrets

    window = tray.show_window("backup")
    assert not window.backup_button.isEnabled() and window.backup_button.toolTip()
    assert not window.restore_button.isEnabled()
    run(wait_until(lambda: "SecretService" in window.keyring_label.text(),
                                       timeout=15, what="the keyring description"))
    window.bucket.setText("my-backups")
    window.region.setText("eu-west-1")
    window.key_id.setText("AKIATESTKEY")
    secret = "s3cr3t-Value-9f8e7d"
    QTest.keyClicks(window.secret, secret)
    run(window.save())
    assert keyring.get_password(secrets.SERVICE_NAME, "s3:backup:secret_access_key") == secret
    assert window.secret.text() == ""
    config = (env["home"] / "config" / "config.toml").read_text()
    assert 's3_bucket = "my-backups"' in config and "AKIATESTKEY" in config
    for path in env["home"].rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert "keyring" not in tray.attention


def test_back_up_now_with_credentials_from_the_keyring(indexed, env, run, secret_service):
    """Bucket, endpoint, key id and secret typed into the Backup window; Back up now uploads a
    snapshot to a real S3 endpoint (moto on loopback) with the secret read from the keyring."""
    import boto3

    from app.config import save_values
    from tests.helpers.s3server import start_moto

    tray = indexed  # a backup needs an index
    server, url = start_moto()
    try:
        boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                     aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="tray-backups")
        window = tray.show_window("backup")
        window.bucket.setText("tray-backups")
        window.region.setText("us-east-1")
        window.endpoint.setText(url)
        window.key_id.setText("testing")
        window.secret.setText("testing")
        assert run(window.save())
        run(wait_until(lambda: tray.service is not None and window.backup_button.isEnabled(),
                       timeout=60, what="the restarted service and an enabled Back up now"))
        QTest.mouseClick(window.backup_button, Qt.MouseButton.LeftButton)
        run(wait_until(lambda: "Backed up as snapshot" in window.banner.label.text()
                       or "failed" in window.banner.label.text(), timeout=120,
                       what="the backup's outcome"))
        assert "Backed up as snapshot" in window.banner.label.text(), window.banner.label.text()
        keys = [o["Key"] for o in boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing").list_objects_v2(
                Bucket="tray-backups").get("Contents", [])]
        assert any(k.endswith(".json") and "/snapshots/" in k for k in keys), keys
    finally:
        tray.settings = save_values(tray.settings, {
            "s3_bucket": None, "s3_endpoint_url": None, "s3_access_key_id": None})
        run(tray.restart_service(tray.settings))
        server.stop()


def test_locked_keyring_leaves_attention_and_never_blocks_the_ui(indexed, run,
                                                                 secret_service,
                                                                 locked_secret_service,
                                                                 monkeypatch):
    from app import secrets

    tray = indexed
    progress = tray.show_window("progress")
    window = tray.show_window("backup")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", locked_secret_service)
    monkeypatch.setattr(secrets, "DEFAULT_TIMEOUT", 2.0)
    QTest.keyClicks(window.secret, "another-secret")
    beat = Heartbeat()
    t0 = time.monotonic()
    ok = run(window.save())
    beat.stop()
    assert not ok
    assert time.monotonic() - t0 < 10
    assert beat.worst < 0.5 and len(beat.gaps) > 20  # the UI kept running while it waited
    assert "keyring" in tray.attention
    assert tray.state == "attention" and tray.tray.shown_state == "attention"
    assert "did not answer" in window.banner.label.text()
    assert "needs attention" in tray.summary()
    assert "keyring" in progress.banner.label.text()
    # Back on the unlocked keyring, a save clears it.
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service)


def test_no_secure_keyring_refuses_to_store_in_plaintext(tray, run, secret_service):
    import keyring
    from keyring.backends import SecretService, fail

    window = tray.show_window("backup")
    keyring.set_keyring(fail.Keyring())
    try:
        window.secret.setText("plain")
        assert not run(window.save())
        assert "No secure keyring" in window.banner.label.text()
        assert "keyring" in tray.attention
    finally:
        keyring.set_keyring(SecretService.Keyring())
    window.secret.setText("fine-now")
    assert run(window.save())
    assert "keyring" not in tray.attention


def test_settings_apply_writes_the_config_and_shows_reembed_cost(indexed, env, run):
    tray = indexed
    window = tray.show_window("settings")
    assert not window.low_priority.isEnabled() or window.low_priority.property("field")
    window.model.setCurrentText("wordllama:64")
    assert "re-embeds all" in window.cost.text() and window.cost.isVisible()
    window.model.setCurrentText(tray.settings.values["embedder"])
    assert not window.cost.isVisible()
    window.notifications.setChecked(False)
    window.log_level.setCurrentText("debug")
    window.apply()
    run(wait_until(lambda: window.banner.isVisible() and (
        "Saved" in window.banner.label.text()), timeout=60, what="saved"))
    config = (env["home"] / "config" / "config.toml").read_text()
    assert "notifications = false" in config and 'log_level = "debug"' in config
    assert "[[sources]]" in config  # the sources survived
    run(wait_until(lambda: tray.service is not None, what="service"))
    assert tray.settings.values["notifications"] is False


def test_changing_the_model_asks_then_reembeds_and_restarts(indexed, run):
    from PySide6.QtWidgets import QMessageBox

    tray = indexed
    window = tray.show_window("settings")
    window.model.setCurrentText("wordllama:64")
    window.apply()
    box = window.confirm
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "re-embeds all" in box.text()
    go = next(b for b in box.buttons() if b.text() == "Re-embed now")
    go.click()
    run(wait_until(lambda: "now uses wordllama:64" in window.banner.label.text(), timeout=120,
                   what="the re-embed"))
    assert tray.service is not None
    assert tray.service.settings.values["embedder"] == "wordllama:64"
    search = tray.show_window("search")
    search.mode.setCurrentIndex(search.mode.findData("vector"))
    search.query.setText("passport appointment")
    run(wait_until(lambda: search.hits, timeout=30, what="semantic results on the new model"))
    assert search.hits[0].title.lower().startswith("renewing a passport")


def test_a_folder_inside_a_source_and_an_unknown_model_are_refused_before_saving(
        docs_source, env, run):
    """Issue 16 items 4 and 6: the Sources dialog names the source a folder overlaps (the
    service's one check), and the Settings window says what models it accepts without
    writing config.toml or offering a re-embed."""
    tray = docs_source
    window = tray.show_window("sources")
    inner = env["docs"] / "inner"
    inner.mkdir(exist_ok=True)
    dialog = window.add_source()
    dialog.add_folder(str(inner))
    dialog.id_edit.setText("inner")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert dialog.isVisible() and "'docs'" in dialog.error.text()
    assert "twice" in dialog.error.text()
    dialog.reject()
    assert [s.source_id for s in tray.service.settings.sources] == ["docs"]

    settings = tray.show_window("settings")
    config = env["home"] / "config" / "config.toml"
    before = config.read_text()
    settings.model.setCurrentText("foo")
    assert not settings.cost.isVisible()
    confirm = getattr(settings, "confirm", None)
    settings.apply()
    assert "wordllama:DIM" in settings.banner.label.text() and settings.banner.isVisible()
    assert config.read_text() == before
    assert getattr(settings, "confirm", None) is confirm  # no re-embed offered
    # The model the index already has costs nothing (an earlier test may have switched it).
    current = tray.service.index_model().replace("wordllama/l2_supercat-", "wordllama:")
    other = "wordllama:128" if current != "wordllama:128" else "wordllama:64"
    settings.model.setCurrentText(other)
    assert settings.cost.isVisible()
    settings.model.setCurrentText(current)
    assert not settings.cost.isVisible()
    assert not tray.service.reembed_needed(current)
    settings.model.setCurrentText(tray.settings.values["embedder"])  # as the next tests expect


def test_edit_and_remove_a_source_from_the_sources_window(docs_source, env, run):
    from PySide6.QtWidgets import QMessageBox

    tray = docs_source
    window = tray.show_window("sources")
    window.table.selectRow(0)
    assert window.scan_button.isEnabled()
    dialog = window.edit_source()
    assert dialog.id_edit.isReadOnly() and dialog.folders.count() == 1
    dialog.excludes.setText("*.html")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    run(wait_until(lambda: tray.service.settings.source("docs").config.get(
        "exclude_patterns") == ["*.html"], what="the edit to be saved"))
    window.table.selectRow(0)
    box = window.remove_source()
    assert isinstance(box, QMessageBox)
    texts = {b.text() for b in box.buttons()}
    # Removing always deletes the documents (kept, they would be counted nowhere): no
    # "keep documents" button, and Cancel is the default.
    assert "Remove and delete its documents" in texts
    assert not any("keep" in t.lower() for t in texts)
    assert "delete its" in box.text() and "from the index" in box.text()
    purge = next(b for b in box.buttons() if b.text().startswith("Remove and delete"))
    purge.click()
    run(wait_until(lambda: "documents were deleted" in window.banner.label.text(), timeout=60,
                   what="the removal"))
    run(wait_until(lambda: not tray.snapshot.sources, what="the table to update"))
    assert tray.service.settings.source("docs") is None
    assert window.empty.isVisible()
    assert "documents were deleted" in window.banner.label.text()


def _api_get(url: str, path: str, token: str | None) -> tuple[int, dict]:
    import http.client
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_tray_serves_the_rest_api_and_settings_turn_it_off_and_on(indexed, env, run):
    import asyncio
    import json

    from app.api.discovery import api_file, read_running

    tray = indexed
    run(wait_until(lambda: tray.api is not None, timeout=60, what="the REST API"))
    info = read_running(tray.settings.state_dir)
    assert info is not None and info.url == tray.api.url
    assert oct(api_file(tray.settings.state_dir).stat().st_mode & 0o777) == "0o600"
    # Served on the tray's own loop: the blocking client runs in a thread meanwhile.
    status, body = run(asyncio.to_thread(_api_get, info.url, "/health", None))
    assert status == 200 and body["running"] is True
    status, body = run(asyncio.to_thread(_api_get, info.url, "/api/v1/search?q=passport+"
                                         "appointment&k=3", info.token))
    assert status == 200
    assert body["results"][0]["title"].lower().startswith("renewing a passport")
    assert run(asyncio.to_thread(_api_get, info.url, "/api/v1/status", None))[0] == 401

    window = tray.show_window("settings")
    assert window.api.isEnabled() and window.api.isChecked()
    assert info.url in window.api_info.text() and window.api_docs.isEnabled()
    window.api.setChecked(False)
    window.apply()
    run(wait_until(lambda: tray.api is None and "Saved" in window.banner.label.text(),
                   timeout=60, what="the API to stop"))
    assert "url" not in json.loads(api_file(tray.settings.state_dir).read_text())
    with pytest.raises(OSError):
        run(asyncio.to_thread(_api_get, info.url, "/health", None))
    assert "Off" in window.api_info.text() and not window.api_docs.isEnabled()
    assert tray.service is not None  # the service kept running
    window.api.setChecked(True)
    window.apply()
    run(wait_until(lambda: tray.api is not None, timeout=60, what="the API to start again"))
    again = read_running(tray.settings.state_dir)
    assert again is not None and again.token == info.token  # the token is kept
    assert run(asyncio.to_thread(_api_get, again.url, "/health", None))[0] == 200


def test_quit_from_the_menu_stops_the_service(tray, loop):
    import asyncio

    service = tray.service
    assert service is not None
    action = menu_actions(tray.tray)["quit"]
    before = set(tray._tasks)  # other work may be under way (a status refresh): not the quit
    action.trigger()  # spawns TrayApp.quit(): stop the service, then QApplication.quit()
    (task,) = set(tray._tasks) - before
    loop.run_forever()  # returns when the app quits
    assert task.done() and task.exception() is None
    assert tray.service is None and tray.quitting
    assert service._indexer is None  # closed: the index lock is released
    assert tray.api is None  # the REST API stopped with it
    asyncio.set_event_loop(loop)
