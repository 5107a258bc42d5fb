"""GUI test environment: a real X server (Xvfb) with a real tray host (trayer), a real D-Bus
session with gnome-keyring for the keyring, and one qasync loop shared by the tests.

Each piece is started here, by the fixtures, and skipped with a reason only when its program is
not installed (`.ci/run` installs them on CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import xdisplay

pytestmark = pytest.mark.gui


def _need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"GUI tests need {', '.join(missing)} (apt-get install xvfb trayer "
                    "gnome-keyring dbus; .ci/run does this)")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def start_xvfb() -> tuple[subprocess.Popen, str]:
    try:
        return xdisplay.start_xvfb()
    except RuntimeError as exc:
        pytest.fail(str(exc))


start_trayer = xdisplay.start_trayer


@pytest.fixture(scope="session")
def display():
    """DISPLAY of a fresh Xvfb with trayer as the system tray host."""
    _need("Xvfb", "trayer")
    xvfb, disp = start_xvfb()
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = disp
    os.environ.pop("WAYLAND_DISPLAY", None)
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    trayer = start_trayer(disp)
    yield disp
    _stop(trayer)
    _stop(xvfb)
    if previous is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = previous


def start_dbus(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    address = proc.stdout.readline().strip()
    if not address:
        _stop(proc)
        pytest.fail("dbus-daemon did not start")
    return proc, address


def start_keyring(env: dict[str, str], unlock: bool) -> subprocess.Popen:
    """gnome-keyring-daemon in the foreground; with `unlock`, its login keyring is created and
    unlocked with a test password, so no prompt ever shows."""
    args = ["gnome-keyring-daemon", "--foreground", "--components=secrets"]
    if unlock:
        args.append("--unlock")
    proc = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if unlock:
        proc.stdin.write(b"test-password")
    proc.stdin.close()
    return proc


def _keyring_env(root: Path, address: str | None = None) -> dict[str, str]:
    for d in ("data", "runtime", "config", "cache"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "runtime").chmod(0o700)
    env = {**os.environ, "XDG_DATA_HOME": str(root / "data"),
           "XDG_RUNTIME_DIR": str(root / "runtime"), "XDG_CONFIG_HOME": str(root / "config"),
           "XDG_CACHE_HOME": str(root / "cache")}
    if address:
        env["DBUS_SESSION_BUS_ADDRESS"] = address
    return env


def _wait_for_secret_service(address: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run(["dbus-send", "--session", "--print-reply",
                            "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus.NameHasOwner",
                            "string:org.freedesktop.secrets"],
                           env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": address},
                           capture_output=True, text=True)
        if "true" in r.stdout:
            return
        time.sleep(0.1)
    pytest.fail("gnome-keyring did not register the Secret Service")


@pytest.fixture(scope="session")
def secret_service():
    """A D-Bus session bus with an unlocked gnome-keyring; DBUS_SESSION_BUS_ADDRESS points at it
    for the rest of the session."""
    _need("dbus-daemon", "gnome-keyring-daemon", "dbus-send")
    root = Path(tempfile.mkdtemp(prefix="lancedb-sync-keyring-"))
    env = _keyring_env(root)
    bus, address = start_dbus(env)
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    daemon = start_keyring(env, unlock=True)
    _wait_for_secret_service(address)
    saved = {k: os.environ.get(k) for k in ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR")}
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
    os.environ["XDG_RUNTIME_DIR"] = env["XDG_RUNTIME_DIR"]
    import keyring
    from keyring.backends import SecretService

    keyring.set_keyring(SecretService.Keyring())
    yield address
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _stop(daemon)
    _stop(bus)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def locked_secret_service(tmp_path):
    """A second bus whose gnome-keyring was never unlocked: any write waits for a prompt that
    nobody can answer. Yields its address; the daemons are stopped afterwards, which also
    releases a keyring call still waiting on them."""
    _need("dbus-daemon", "gnome-keyring-daemon", "dbus-send")
    env = _keyring_env(tmp_path / "locked")
    bus, address = start_dbus(env)
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    daemon = start_keyring(env, unlock=False)
    _wait_for_secret_service(address)
    yield address
    _stop(daemon)
    _stop(bus)


@pytest.fixture(scope="session")
def qapp(display):
    """The QApplication, created only once the X server is up, and destroyed (after every
    widget still around) before the X server is stopped and the interpreter shuts down."""
    from PySide6.QtWidgets import QApplication

    from app.ui.app import shut_down_qt

    app = QApplication.instance() or QApplication(["lancedb-sync-tests"])
    app.setQuitOnLastWindowClosed(False)
    yield app
    shut_down_qt(app)


@pytest.fixture(scope="session")
def loop(qapp):
    """One qasync loop for the session."""
    import qasync

    ev = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(ev)
    yield ev
    ev.close()  # joins its worker threads
    asyncio.set_event_loop(None)


@pytest.fixture(scope="session")
def run(loop):
    """`run(coro)`: drive the loop until the coroutine is done.

    Not `loop.run_until_complete`: qasync's version processes Qt events once more after the
    loop stopped, outside any running loop, and an asyncio task resumed there breaks. Between
    two `run` calls nothing processes Qt events (no pytest-qt, whose hooks would), so every
    callback runs inside a running loop, as in the app."""

    def run_(coro):
        fut = asyncio.ensure_future(coro, loop=loop)
        fut.add_done_callback(lambda _f: loop.stop())
        loop.run_forever()
        return fut.result()

    return run_


async def wait_until(predicate, timeout: float = 60.0, step: float = 0.05, what: str = ""):
    """Poll while the loop (and so Qt) keeps running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}"
                         f"{_describe()}")


def _describe() -> str:
    """What the running app looked like, for a timeout's message."""
    from PySide6.QtWidgets import QApplication

    for w in QApplication.topLevelWidgets():
        c = getattr(w, "c", None)
        if c is not None:
            return (f"\nstate={c.state} busy={c.busy} attention={c.attention}\n"
                    f"sources={list(c.snapshot.sources)}\nactivity={c.activity[-10:]}")
    return ""


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
