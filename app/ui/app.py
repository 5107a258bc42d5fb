"""The tray application's entry point: one process, one qasync loop running both Qt and the sync
service.

`run_tray` is what `lancedb-sync` (no arguments) and `lancedb-sync tray` call. Start-up order keeps
the tray visible fast: Qt and the tray icon first, then (in a worker thread) the heavy imports,
then the service. The controller is `TrayApp` (app/ui/controller.py; importable from here too);
this module starts Qt and the loop, hands over to a running tray, installs the signal handlers
and the exception hook, and takes it all down in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from app import __version__
from app.ui.controller import TrayApp, delete_now

__all__ = ["TrayApp", "run_tray", "shut_down_qt"]

log = logging.getLogger(__name__)


def shut_down_qt(qapp: QApplication, *objects: QObject) -> None:
    """Tear Qt down in order while the interpreter is still whole: `objects` (controllers and
    the like), then any top-level widget still around, then the QApplication itself.

    A QApplication left to interpreter shutdown is destroyed after modules and wrappers it
    relies on are half gone, and widgets outliving it crash when they go.
    """
    for obj in objects:
        delete_now(obj)
    for widget in QApplication.topLevelWidgets():
        delete_now(widget)
    qapp.shutdown()  # PySide's explicit QApplication destructor; the wrapper becomes invalid


# -- entry point ----------------------------------------------------------------------------------


def run_tray(settings: Any, *, home: str | None = None, window: str | None = None,
             argv: list[str] | None = None) -> int:
    """Start the tray (or hand over to the running one). Returns the exit status."""
    from app.ui.display import display_problem

    started = time.monotonic()
    problem = display_problem()
    if problem:
        print(f"lancedb-sync: {problem}; the tray needs a desktop session. To keep the index up "
              "to date without one, run 'lancedb-sync run'.", file=sys.stderr)
        return 1

    existing = QApplication.instance()
    qapp = existing if isinstance(existing, QApplication) else QApplication(
        argv or [sys.argv[0]])
    try:
        return _run_tray(qapp, settings, home, window, started)
    finally:
        if existing is None:  # ours to end, before interpreter shutdown would
            shut_down_qt(qapp)


def _run_tray(qapp: QApplication, settings: Any, home: str | None, window: str | None,
              started: float) -> int:
    import qasync

    from app.ui.single_instance import SingleInstance, send_to_running, server_name

    qapp.setApplicationName("LanceDB Sync")
    qapp.setApplicationVersion(__version__)
    qapp.setDesktopFileName("lancedb-sync")
    qapp.setQuitOnLastWindowClosed(False)
    name = server_name(str(settings.paths.data_dir))
    if send_to_running(name, f"show {window or 'progress'}"):
        print("lancedb-sync: the tray is already running; brought its window forward.",
              file=sys.stderr)
        return 0
    instance = SingleInstance(name)
    if not instance.listen():
        log.warning("cannot listen on %s: a second launch will start a second tray", name)

    from app.ui.icons import app_icon

    qapp.setWindowIcon(app_icon())
    controller = TrayApp(settings, home=home)
    instance.message.connect(lambda msg: controller.show_window(
        [*msg.split(), "progress"][1] if msg.startswith("show") else "progress"))
    previous_hook = _install_excepthook(controller)
    previous_handlers: dict[int, Any] = {}

    async def main() -> int:
        from app.ui.tray import Tray

        stopped = asyncio.Event()
        qapp.aboutToQuit.connect(stopped.set)
        if QSystemTrayIcon.isSystemTrayAvailable():
            controller.tray = Tray(controller)
            controller.tray.show()
            if window:
                controller.show_window(window)
        else:
            # No tray host (some GNOME set-ups): a main window instead of vanishing.
            controller.main_window_mode = True
            qapp.setQuitOnLastWindowClosed(True)
            controller.show_window(window or "progress")
        controller.spawn(controller.start(welcome=True))
        previous_handlers.update(_quit_on_signals(controller))
        log.info("tray ready in %.2f s (pid %d)", time.monotonic() - started, os.getpid())
        await stopped.wait()
        if not controller.quitting:  # closed by the session or the last window: stop cleanly
            controller.quitting = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(controller.stop_service(), timeout=60)
        return 0

    # Not qasync.run(): on Python < 3.12 it installs an event-loop *policy* for the whole run, so
    # every asyncio.new_event_loop() in other threads (LanceDB's background loop) would build a
    # Qt loop and call QApplication.exec() off the main thread. One explicit loop instead.
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            return loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)
        # Nothing may reach the controller once its widgets are gone: a late SIGTERM or an
        # uncaught exception would otherwise try to show a dialog with no QApplication.
        _restore_signals(previous_handlers)
        sys.excepthook = previous_hook
        instance.close()
        controller.dispose()
        for obj in (instance, controller):
            delete_now(obj)


def _quit_on_signals(controller: TrayApp) -> dict[int, Any]:
    """SIGTERM / SIGINT (logout, `kill`, Ctrl-C in a terminal) quit as gracefully as the menu.
    Python runs signal handlers only between bytecodes, so a timer gives it regular chances
    while Qt waits in C++. Returns the handlers it replaced."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        log.info("signal %d: quitting", signum)
        controller.spawn(controller.quit())

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, OSError):
            previous[sig] = signal.signal(sig, handler)
    timer = QTimer(controller, interval=250)
    timer.timeout.connect(lambda: None)
    timer.start()
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    import signal

    for sig, handler in previous.items():
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(sig, handler)


def _install_excepthook(controller: TrayApp) -> Callable[..., Any]:
    """Show uncaught exceptions in a dialog; returns the hook it replaced."""
    previous = sys.excepthook

    def hook(etype: Any, value: Any, tb: Any) -> None:
        log.error("uncaught exception", exc_info=(etype, value, tb))
        if issubclass(etype, KeyboardInterrupt):
            previous(etype, value, tb)
            return
        with contextlib.suppress(Exception):
            controller.show_error("Something went wrong",
                                  f"{value}\n\nDetails are in the log folder: "
                                  f"{controller.settings.paths.log_dir}")

    sys.excepthook = hook
    return previous
