"""`lancedb-sync` as a process: no display, start-up time, a second launch handing over to the
first, and a graceful quit on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tests.gui.conftest import wait_until

pytestmark = pytest.mark.gui


def launch(home, *args, env=None, **kw):
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "app", "--home", str(home), *args],
                            env=full, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def log_text(home) -> str:
    path = home / "logs" / "lancedb-sync.log"
    return path.read_text() if path.exists() else ""


def wait_for_log(home, pattern, proc, timeout=30.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, log_text(home))
        if m:
            return m
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"the tray exited with {proc.returncode}: {err}")
        time.sleep(0.05)
    pytest.fail(f"no {pattern!r} in the log within {timeout} s:\n{log_text(home)}")


def window_titles(display) -> str:
    r = subprocess.run(["xwininfo", "-root", "-tree"], env={**os.environ, "DISPLAY": display},
                       capture_output=True, text=True)
    return r.stdout


def test_without_a_display_it_says_so_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(REPO)
    r = subprocess.run([sys.executable, "-m", "app", "--home", str(tmp_path / "home")],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "no graphical display" in lines[0] and "lancedb-sync run" in lines[0]
    assert "Traceback" not in r.stderr and "qt." not in r.stderr.lower()
    # a display that is set but not there: the same, no Qt abort
    env["DISPLAY"] = ":987"
    r = subprocess.run([sys.executable, "-m", "app", "--home", str(tmp_path / "home"), "tray"],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "cannot connect to the X display :987" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_help_stays_instant_and_qt_free(tmp_path):
    code = ("import sys; from app.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert not [m for m in sys.modules if m.startswith(('PySide6', 'lancedb'))]\n")
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ,
                       "PYTHONPATH": str(REPO)}, cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "tray" in text and "Without a command, starts the tray" in text


def test_second_launch_hands_over_and_sigterm_quits_gracefully(tmp_path, display):
    home = tmp_path / "home"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nSome text to index.\n")
    subprocess.run([sys.executable, "-m", "app", "--home", str(home), "sources", "add", "local",
                    str(docs)], env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                   check=True, capture_output=True)
    first = launch(home, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")},
                   start_new_session=True)
    try:
        ready = wait_for_log(home, r"tray ready in ([\d.]+) s", first)
        startup = float(ready.group(1))
        # The target is 2 s (bench/bench_tray.py measures it); a loaded CI machine gets slack.
        assert startup <= 3.0, f"tray visible after {startup} s"
        wait_for_log(home, r"docs: 1 added", first, timeout=60)  # the service runs in it
        t0 = time.monotonic()
        second = launch(home, "tray", "--window", "search")
        _out, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
        assert "already running" in err
        assert time.monotonic() - t0 < 10
        deadline = time.monotonic() + 10
        while "Search — LanceDB Sync" not in window_titles(display):
            assert time.monotonic() < deadline, "the running tray did not show Search"
            time.sleep(0.1)
        first.send_signal(signal.SIGTERM)
        _out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert "service stopped; quitting" in log_text(home)
        assert "Traceback" not in err
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()


def test_without_a_tray_host_the_progress_window_opens_instead(tmp_path, display):
    from tests.gui.conftest import _stop, start_xvfb

    xvfb, bare = start_xvfb()  # an X server with no tray host on it
    home = tmp_path / "home"
    proc = launch(home, env={"DISPLAY": bare, "XDG_CONFIG_HOME": str(tmp_path / "xdg")},
                  start_new_session=True)
    try:
        wait_for_log(home, r"tray ready", proc)
        deadline = time.monotonic() + 15
        while "Progress — LanceDB Sync" not in window_titles(bare):
            assert time.monotonic() < deadline, "no main window without a tray host"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _stop(xvfb)


def test_index_busy_in_another_process_leaves_the_tray_up_and_says_why(tmp_path, run):
    import shiboken6

    from app.config import load_settings
    from app.core.lock import WriterLock
    from app.ui.app import TrayApp
    from app.ui.tray import Tray

    settings = load_settings(home=tmp_path / "home", env={})
    with WriterLock(settings.state_dir / "writer.lock"):  # what a running 'lancedb-sync run' holds
        app = TrayApp(settings)
        app.tray = Tray(app)
        app.tray.show()
        try:
            run(app.start())
            assert app.service is None
            assert app.state == "attention" and app.tray.shown_state == "attention"
            assert "another LanceDB Sync process" in app.summary()
            assert "lancedb-sync run" in app.tray.toolTip()
            window = app.show_window("progress")
            assert "another LanceDB Sync process" in window.banner.label.text()
            assert not window.sync_button.isEnabled()
        finally:
            run(wait_until(lambda: not app._tasks, what="the app's tasks to end"))
            app.dispose()
            shiboken6.delete(app)
