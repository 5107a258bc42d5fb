"""Is there a display to show a tray on? Answered without importing Qt, so a headless machine gets
one line pointing to `lancedb-sync run` instead of a Qt abort."""

from __future__ import annotations

import os
import socket
import sys


def display_problem(env: dict[str, str] | None = None, platform: str = sys.platform) -> str | None:
    """None when a GUI can start; otherwise why not, in one sentence."""
    env = dict(os.environ) if env is None else env
    if platform in ("win32", "darwin"):
        return None
    qpa = env.get("QT_QPA_PLATFORM", "")
    if qpa and not qpa.startswith(("xcb", "wayland")):
        return None  # offscreen, vnc, eglfs…: the person chose a platform on purpose
    wayland = env.get("WAYLAND_DISPLAY")
    if wayland and not qpa.startswith("xcb"):
        runtime = env.get("XDG_RUNTIME_DIR", "")
        path = wayland if os.path.isabs(wayland) else os.path.join(runtime, wayland)
        if os.path.exists(path):
            return None
    display = env.get("DISPLAY")
    if not display:
        return "no graphical display found (DISPLAY is not set)"
    if _x_reachable(display):
        return None
    return f"cannot connect to the X display {display}"


def _x_reachable(display: str) -> bool:
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        try:
            sock.connect(path)
            return True
        except OSError:
            # Linux also offers an abstract socket with the same name
            try:
                sock.connect("\0" + path)
                return True
            except OSError:
                return False
        finally:
            sock.close()
    return True  # a remote display (ssh -X): let Qt try
