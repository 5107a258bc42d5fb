"""A virtual desktop for GUI tests, screenshots and benchmarks: Xvfb plus trayer as tray host."""

from __future__ import annotations

import os
import subprocess

TRAYER = ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
          "--height", "28", "--SetDockType", "true"]


def start_xvfb(size: str = "1280x800x24") -> tuple[subprocess.Popen, str]:
    """Xvfb on a free display number (it writes the number it chose to -displayfd)."""
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", size,
                             "-nolisten", "tcp"], pass_fds=(write,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as fh:
        number = fh.readline().strip()
    if not number:
        proc.kill()
        proc.wait(5)
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number}"


def start_trayer(display: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*TRAYER, *extra], env={**os.environ, "DISPLAY": display},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
