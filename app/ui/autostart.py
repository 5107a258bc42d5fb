"""Start at login, one small backend per OS (after Maestral's autostart module).

- Linux and other XDG desktops: `$XDG_CONFIG_HOME/autostart/lancedb-sync.desktop`.
- Windows: the `LanceDB Sync` value under `HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run`.
- macOS: a LaunchAgent, `~/Library/LaunchAgents/com.lancedb-sync.tray.plist`.

No Qt here: the tray's checkable menu item and the Settings window call `is_enabled`, `enable`
and `disable` (file or registry writes: cheap, but still called off the UI thread).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from app.fsutil import write_atomic

APP_ID = "lancedb-sync"
DISPLAY_NAME = "LanceDB Sync"
LAUNCH_LABEL = "com.lancedb-sync.tray"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"


def launch_command(home: str | os.PathLike[str] | None = None) -> list[str]:
    """The command that starts the tray: the frozen executable, else this Python with `-m app`."""
    if getattr(sys, "frozen", False):
        exe = Path(sys.executable)
        # On Windows the installer ships a windowless twin (LanceDBSync.exe): a login item must
        # not open a console window.
        windowless = exe.with_name("LanceDBSync.exe")
        cmd = [str(windowless if sys.platform == "win32" and windowless.exists() else exe)]
    else:
        cmd = [sys.executable, "-m", "app"]
    if home:
        cmd += ["--home", str(Path(home).expanduser().resolve())]
    cmd.append("tray")
    return cmd


class Autostart:
    def __init__(self, home: str | os.PathLike[str] | None = None,
                 platform: str = sys.platform) -> None:
        self.command = launch_command(home)
        self.platform = platform

    # -- public ---------------------------------------------------------------------------------

    def is_enabled(self) -> bool:
        if self.platform == "win32":
            return self._win_get() is not None
        return self.path.exists()

    def enable(self) -> None:
        if self.platform == "win32":
            self._win_set(subprocess_line(self.command))
            return
        write_atomic(self.path, self.render(), mode=0o644)

    def disable(self) -> None:
        if self.platform == "win32":
            self._win_delete()
            return
        self.path.unlink(missing_ok=True)

    def set_enabled(self, on: bool) -> None:
        self.enable() if on else self.disable()

    # -- per OS ----------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        if self.platform == "darwin":
            return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCH_LABEL}.plist"
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "autostart" / f"{APP_ID}.desktop"

    def render(self) -> bytes:
        """The file's contents (pure: tests and packaging read it)."""
        if self.platform == "darwin":
            import plistlib

            return plistlib.dumps({
                "Label": LAUNCH_LABEL,
                "ProgramArguments": self.command,
                "RunAtLoad": True,
                "ProcessType": "Interactive",
                "LimitLoadToSessionType": "Aqua",
            })
        exec_line = " ".join(_desktop_quote(a) for a in self.command)
        return (
            "[Desktop Entry]\n"
            "Type=Application\n"
            f"Name={DISPLAY_NAME}\n"
            "Comment=Keeps your LanceDB document index up to date\n"
            f"Exec={exec_line}\n"
            f"Icon={APP_ID}\n"
            "Terminal=false\n"
            "Categories=Utility;\n"
            "X-GNOME-Autostart-enabled=true\n"
            "X-GNOME-Autostart-Delay=5\n"
        ).encode()

    def _win_get(self) -> str | None:  # pragma: no cover - Windows only
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
                return winreg.QueryValueEx(key, DISPLAY_NAME)[0]
        except OSError:
            return None

    def _win_set(self, line: str) -> None:  # pragma: no cover - Windows only
        import winreg

        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
            winreg.SetValueEx(key, DISPLAY_NAME, 0, winreg.REG_SZ, line)

    def _win_delete(self) -> None:  # pragma: no cover - Windows only
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0,
                                winreg.KEY_SET_VALUE) as key:
                winreg.DeleteValue(key, DISPLAY_NAME)
        except OSError:
            pass


def subprocess_line(args: list[str]) -> str:
    import subprocess

    return subprocess.list2cmdline(args)


def _desktop_quote(arg: str) -> str:
    """Quote one Exec= argument as the Desktop Entry spec asks (and escape %)."""
    arg = arg.replace("%", "%%")
    if not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace(
        "$", "\\$") + '"'


__all__ = ["Autostart", "launch_command"]
