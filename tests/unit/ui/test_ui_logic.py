"""The tray's Qt-free parts: status → tray state and words, the keyring seam's rules, autostart
files, display detection, and saving settings."""

from __future__ import annotations

import threading
import time

import keyring
import pytest
from jaraco.classes.properties import classproperty
from keyring.backend import KeyringBackend

from app import secrets
from app.config import ConfigError, load_settings, save_sources, save_values
from app.models import FailedFile, SourceConfig, SourceType
from app.service.status import ServiceStatus, SourceStatus
from app.ui import status as st
from app.ui.activity import ActivityLog, NotificationLimit, pass_lines
from app.ui.autostart import Autostart, _desktop_quote
from app.ui.display import display_problem


def src(**kw):
    base = {"source_id": "docs", "source_type": "local", "enabled": True, "state": "idle",
            "documents": 12345, "failed": 0, "watcher": "watching", "queued": False,
            "retry_in": 0.0, "last_error": "", "last_sync": {"finished_at": time.time() - 120}}
    return SourceStatus(**{**base, **kw})


def test_tray_state_priorities():
    idle = st.Snapshot((src(),))
    assert st.tray_state(idle) == st.IDLE
    assert st.tray_state(st.Snapshot((src(state="indexing"),))) == st.SYNCING
    assert st.tray_state(idle, busy={"docs"}) == st.SYNCING
    assert st.tray_state(st.Snapshot((src(),), paused=True)) == st.PAUSED
    assert st.tray_state(st.Snapshot((src(state="error"),), paused=True)) == st.ERROR
    assert st.tray_state(idle, {"keyring": "locked"}) == st.ATTENTION
    assert st.tray_state(st.Snapshot((src(watcher="degraded"),))) == st.ATTENTION
    failed = st.FailedEntry("docs:a", "docs", "file:///a.pdf", "failed", "bad", 0.0)
    assert st.tray_state(st.Snapshot((src(failed=1),), failed=(failed,))) == st.ATTENTION


def test_skipped_and_unsupported_files_never_alarm():
    """An empty file, an image, a .gz of a binary, a searchindex.js: skipped by design or
    unsupported, listed with the reason, but the tray stays idle and says nothing failed."""
    entries = (
        st.FailedEntry("docs:e", "docs", "file:///e.txt", "skipped", "empty", 0.0),
        st.FailedEntry("docs:p", "docs", "file:///p.png", "unsupported", "png", 0.0),
        st.FailedEntry("docs:s", "docs", "file:///searchindex.js", "skipped", "generated", 0.0))
    snap = st.Snapshot((src(skipped=2, unsupported=1),), failed=entries)
    assert st.tray_state(snap) == st.IDLE
    assert snap.failed_count == 0
    assert st.summary_line(snap, st.IDLE) == "12,345 documents · synced 2 min ago"
    assert st.ledger_title(entries) == "Not indexed (0 failed, 2 skipped, 1 unsupported)"
    assert st.counts_text(snap.sources[0].counts) == \
        "12,345 documents indexed · 0 failed · 2 skipped · 1 unsupported"
    # A real failure does alarm, and the line counts only it.
    bad = st.FailedEntry("docs:b", "docs", "file:///b.pdf", "failed", "damaged", 0.0)
    snap = st.Snapshot((src(failed=1, skipped=2, unsupported=1),), failed=(*entries, bad))
    assert st.tray_state(snap) == st.ATTENTION
    assert st.summary_line(snap, st.ATTENTION).endswith("1 file could not be indexed")
    assert st.ledger_title((bad,)) == "Failed files (1)"


def test_counts_during_a_first_sync_are_live():
    from app.models import Counts
    from app.service.status import PassInfo, live_counts

    stored = Counts(indexed=40, skipped=1, chunks=90)
    during = live_counts(stored, PassInfo("indexing", done=41, total=394))
    assert (during.indexed, during.in_progress) == (40, 353)
    assert live_counts(stored, None).in_progress == 0
    snap = st.Snapshot((src(state="indexing", documents=40, in_progress=353),))
    assert st.summary_line(snap, st.SYNCING).startswith("40 documents (353 in progress)")


def test_summary_line_reads_like_a_sentence():
    assert st.summary_line(st.Snapshot((src(),)), st.IDLE) == \
        "12,345 documents · synced 2 min ago"
    assert st.summary_line(st.Snapshot(), st.IDLE).startswith("No sources yet")
    until = time.time() + 1800
    line = st.summary_line(st.Snapshot((src(),), paused=True, paused_until=until), st.PAUSED)
    assert line.startswith("12,345 documents · paused until ")
    line = st.summary_line(st.Snapshot((src(state="indexing"),)), st.SYNCING,
                           progress={"docs": {"phase": "indexing", "done": 10, "total": 200}})
    assert line == "12,345 documents · indexing docs: 10 of 200 files…"
    assert "needs attention: the keyring is locked" in st.summary_line(
        st.Snapshot((src(),)), st.ATTENTION, {"keyring": "the keyring is locked"})


def test_first_sync_says_what_is_happening_not_zero_documents():
    from app.service.status import PassInfo

    first = src(documents=0, state="indexing",
                progress=PassInfo("indexing", done=120, total=394, rate=40.0, eta_s=6.8))
    snap = st.Snapshot((first,))
    # No bridge event yet: the status's own progress speaks.
    assert st.summary_line(snap, st.SYNCING) == "120 documents · indexing docs: 120 of 394 files…"
    assert st.pass_progress(first)["total"] == 394
    nothing_yet = src(documents=0, state="indexing", progress=PassInfo("indexing", 0, 394))
    assert st.summary_line(st.Snapshot((nothing_yet,)), st.SYNCING) == \
        "Indexing docs: 0 of 394 files…"
    # A newer bridge event wins over the status's progress.
    line = st.summary_line(snap, st.SYNCING, progress={"docs": {"phase": "indexing", "done": 200,
                                                                "total": 394}})
    assert line == "200 documents · indexing docs: 200 of 394 files…"
    # Not indexing: the counts as they are.
    assert st.pass_progress(src(progress=PassInfo("scanning"))) is None
    assert st.live_documents(src(documents=7), {"done": 3}) == 7


def test_time_left_is_hidden_until_it_means_something():
    from app.wording import time_left

    assert time_left(None, 10, 100) == ""
    assert time_left(12.0, 0, 100) == ""  # nothing committed: no rate yet
    assert time_left(0.4, 100, 100) == ""  # all done
    assert time_left(0.4, 99, 100) == "a few seconds left"
    assert time_left(75, 10, 100) == "about 75 s left"
    assert time_left(600, 10, 100) == "about 10 min left"


def test_snapshot_from_the_service_and_last_sync():
    class FakeService:  # what fetch_snapshot asks of the Service
        def get_status(self):
            return ServiceStatus(paused=True, paused_until=99.0, current="docs",
                                 sources=(src(last_sync=None), src(source_id="notes")))

        def recent_runs(self):
            return {"docs": {"finished_at": 50.0, "outcome": "ok", "problems": []}}

        def failed_files(self):
            return [FailedFile("docs:a", "docs", "file:///x/a.pdf", "failed", "", 7.0)]

    snap = st.fetch_snapshot(FakeService())
    assert snap.paused and snap.paused_until == 99.0 and snap.current == "docs"
    assert [s.source_id for s in snap.sources] == ["docs", "notes"]
    assert snap.source("notes").documents == 12345 and snap.source("nope") is None
    assert snap.documents == 2 * 12345
    assert snap.failed == (st.FailedEntry("docs:a", "docs", "file:///x/a.pdf", "failed", "",
                                          7.0),)
    assert snap.failed[0].path == "/x/a.pdf"
    assert snap.last_sync("docs") == 50.0  # from the journal: no pass since the start
    assert snap.last_sync() == snap.source("notes").last_sync["finished_at"]


def test_why_slow_names_the_reason():
    snap = st.Snapshot((src(),))
    assert st.why_slow(src(), snap) == ""
    assert st.why_slow(src(), st.Snapshot((src(),), paused=True)).startswith("Paused")
    assert "Backing off" in st.why_slow(src(state="error", last_error="disk full",
                                            retry_in=30), snap)
    assert "polling" in st.why_slow(src(watcher="degraded", watcher_reason="inotify limit"),
                                    snap)
    locked = {"keyring": "the keyring is locked"}
    assert st.why_slow(src(), snap, locked) == ""  # a local folder needs no credentials
    assert "keyring" in st.why_slow(src(source_type="notion"), snap, locked)
    assert "Waiting: stuck" in st.why_slow(src(), snap, {"docs": "stuck"})
    busy = st.Snapshot((src(), src(source_id="other")), current="other")
    assert "Queued behind other" in st.why_slow(src(queued=True), busy)
    assert st.why_slow(src(waiting="Paused: on battery."), snap) == "Paused: on battery."


def test_activity_log_keeps_the_latest_entries():
    now = [100.0]
    log = ActivityLog(limit=3, clock=lambda: now[0])
    for i in range(5):
        now[0] += 1
        assert log.add("info", f"line {i}") == (now[0], "info", f"line {i}")
    assert len(log) == 3 and [text for _t, _l, text in log] == ["line 2", "line 3", "line 4"]
    assert log[-1] == (105.0, "info", "line 4") and log[1:] == list(log)[1:]


def test_pass_lines_say_what_a_pass_changed():
    assert pass_lines("docs", {"added": 0, "modified": 0}) == []
    lines = pass_lines("docs", {
        "added": 1200, "deleted": 1, "failed": 1, "problems": ["cannot read /x"],
        "failures": [{"uri": "file:///a%20b.pdf", "reason": "encrypted"}]})
    assert lines == [("info", "docs: 1,200 added, 1 deleted, 1 failed"),
                     ("error", "docs: /a b.pdf: encrypted"),
                     ("warning", "docs: cannot read /x")]
    assert pass_lines("docs", {"problems": ["p"]})[0] == ("info", "docs: no changes")


def test_notifications_one_at_a_time_and_the_same_one_rarely():
    now = [1000.0]
    limit = NotificationLimit(min_gap=30, same_key=600, clock=lambda: now[0])
    assert limit.allow("error:docs")
    assert not limit.allow("first:docs")  # too soon after any other
    now[0] += 31
    assert not limit.allow("error:docs")  # the same one within 10 minutes
    assert limit.allow("first:docs")
    now[0] += 600
    assert limit.allow("error:docs")


def test_ago():
    now = 1_000_000.0
    assert st.ago(now - 10, now) == "just now"
    assert st.ago(now - 125, now) == "2 min ago"
    assert st.ago(now - 7300, now) == "2 h ago"
    assert st.ago(None) == "never"


# -- secrets ------------------------------------------------------------------------------------


class PlaintextKeyring(KeyringBackend):
    """Stores in a dict, like keyrings.alt's plaintext file backend stores in a file. Never
    chosen by keyring's own discovery (not viable), only set explicitly."""

    @classproperty
    def priority(cls):
        raise RuntimeError("only for these tests")

    def __init__(self):
        super().__init__()
        self.data = {}

    def get_password(self, service, username):
        return self.data.get((service, username))

    def set_password(self, service, username, password):
        self.data[(service, username)] = password

    def delete_password(self, service, username):
        from keyring.errors import PasswordDeleteError

        if self.data.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


class StuckKeyring(PlaintextKeyring):
    """Never answers, like a Secret Service waiting for an unlock prompt nobody sees."""

    release = threading.Event()

    def set_password(self, service, username, password):
        self.release.wait(30)


@pytest.fixture
def use_keyring():
    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


def test_secret_keys():
    assert secrets.secret_key("s3", "backup", "secret_access_key") == \
        "s3:backup:secret_access_key"
    with pytest.raises(ValueError):
        secrets.secret_key("s3", "a:b", "x")
    with pytest.raises(ValueError):
        secrets.secret_key("s3", "", "x")


def test_backends_are_judged_secure_or_not():
    from keyring.backends import SecretService, chainer, fail

    assert secrets.describe_backend(SecretService.Keyring()).secure
    info = secrets.describe_backend(fail.Keyring())
    assert not info.available and "No keyring" in info.description
    assert not secrets.describe_backend(PlaintextKeyring()).secure
    chain = chainer.ChainerBackend()
    assert all(not type(b).__module__.startswith("tests.") for b in chain.backends)


def test_plaintext_backend_is_refused_unless_opted_in(use_keyring):
    kr = PlaintextKeyring()
    use_keyring(kr)
    with pytest.raises(secrets.NoSecureBackendError, match="plaintext"):
        secrets.set_secret("s3", "backup", "secret", "hunter2")
    assert kr.data == {}
    secrets.set_secret("s3", "backup", "secret", "hunter2", allow_insecure=True)
    assert kr.data == {(secrets.SERVICE_NAME, "s3:backup:secret"): "hunter2"}
    assert secrets.get_secret("s3", "backup", "secret", allow_insecure=True) == "hunter2"
    assert secrets.delete_secret("s3", "backup", "secret")
    assert not secrets.delete_secret("s3", "backup", "secret")


def test_no_backend_at_all_says_what_to_install(use_keyring):
    from keyring.backends import fail

    use_keyring(fail.Keyring())
    with pytest.raises(secrets.NoSecureBackendError, match="GNOME Keyring or KWallet"):
        secrets.set_secret("s3", "backup", "secret", "x", allow_insecure=True)


def test_a_keyring_that_never_answers_times_out(use_keyring):
    use_keyring(StuckKeyring())
    t0 = time.monotonic()
    try:
        with pytest.raises(secrets.KeyringTimeoutError, match="locked"):
            secrets.set_secret("s3", "backup", "secret", "x", allow_insecure=True, timeout=0.3)
    finally:
        StuckKeyring.release.set()  # let the abandoned call finish (and release the lock)
    assert time.monotonic() - t0 < 2


def test_keyring_errors_become_locked_errors(use_keyring):
    from keyring.errors import KeyringLocked

    class Locked(PlaintextKeyring):
        def get_password(self, service, username):
            raise KeyringLocked("Failed to unlock the collection!")

    use_keyring(Locked())
    with pytest.raises(secrets.KeyringLockedError, match="locked"):
        secrets.get_secret("s3", "backup", "secret", allow_insecure=True)


# -- autostart, display, settings ---------------------------------------------------------------


def test_autostart_desktop_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    a = Autostart(home=tmp_path / "my home", platform="linux")
    assert a.path == tmp_path / "autostart" / "lancedb-sync.desktop"
    assert not a.is_enabled()
    a.enable()
    text = a.path.read_text()
    assert "Type=Application" in text and "Name=LanceDB Sync" in text
    assert f'--home "{(tmp_path / "my home").resolve()}" tray' in text
    assert a.is_enabled()
    a.disable()
    assert not a.is_enabled()
    a.disable()  # twice is fine


def test_a_portable_home_from_the_environment_is_what_start_at_login_starts(tmp_path,
                                                                           monkeypatch):
    from app.paths import HOME_ENV, resolve_paths

    home = (tmp_path / "usb stick" / "lancedb").resolve()
    # `lancedb-sync` started with LANCEDB_SYNC_HOME and no --home
    settings = load_settings(env={HOME_ENV: str(tmp_path / "usb stick" / "." / "lancedb")})
    assert settings.paths.home == home and settings.paths.data_dir == home / "data"
    a = Autostart(settings.paths.home, platform="linux")
    assert a.command[-3:] == ["--home", str(home), "tray"]
    assert f'--home "{home}" tray\n' in a.render().decode()
    mac = Autostart(settings.paths.home, platform="darwin")
    import plistlib

    assert plistlib.loads(mac.render())["ProgramArguments"][-3:] == ["--home", str(home), "tray"]
    monkeypatch.setenv(HOME_ENV, str(home))
    assert resolve_paths().home == home
    assert resolve_paths(tmp_path / "other").home == (tmp_path / "other").resolve()
    monkeypatch.delenv(HOME_ENV)
    per_user = resolve_paths()
    assert per_user.home is None
    assert "--home" not in Autostart(per_user.home, platform="linux").command


def test_autostart_launch_agent(tmp_path, monkeypatch):
    import plistlib

    monkeypatch.setenv("HOME", str(tmp_path))
    a = Autostart(platform="darwin")
    assert a.path == tmp_path / "Library" / "LaunchAgents" / "com.lancedb-sync.tray.plist"
    plist = plistlib.loads(a.render())
    assert plist["RunAtLoad"] and plist["ProgramArguments"][-1] == "tray"


def test_desktop_exec_quoting():
    assert _desktop_quote("/usr/bin/python3") == "/usr/bin/python3"
    assert _desktop_quote("/a b/c") == '"/a b/c"'
    assert _desktop_quote("100%") == "100%%"
    assert _desktop_quote('say "$x"') == '"say \\"\\$x\\""'


def test_display_detection(tmp_path):
    assert display_problem({}, "linux") == "no graphical display found (DISPLAY is not set)"
    assert display_problem({"DISPLAY": ":4242"}, "linux") == \
        "cannot connect to the X display :4242"
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({}, "win32") is None and display_problem({}, "darwin") is None
    sock = tmp_path / "wayland-0"
    sock.touch()
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0",
                            "XDG_RUNTIME_DIR": str(tmp_path)}, "linux") is None


def test_save_values_keeps_sources_and_validates(tmp_path):
    settings = load_settings(home=tmp_path, env={})
    settings = save_sources(settings, (SourceConfig(SourceType.LOCAL_FILESYSTEM, "docs",
                                                    {"watch_paths": ["/x"]}),))
    settings = save_values(settings, {"s3_bucket": "b", "notifications": False,
                                      "backup_interval": 86400})
    assert settings.values["s3_bucket"] == "b" and settings.sources
    again = load_settings(home=tmp_path, env={})
    assert again.s3_bucket == "b" and again.notifications is False
    assert again.backup_interval == 86400 and again.source("docs") is not None
    settings = save_values(settings, {"s3_bucket": None})
    assert load_settings(home=tmp_path, env={}).s3_bucket is None
    with pytest.raises(ConfigError, match="backup_interval"):
        save_values(settings, {"backup_interval": 5})
    with pytest.raises(ConfigError, match="Unknown setting"):
        save_values(settings, {"nope": 1})
