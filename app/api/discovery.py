"""`api.json`: where a running app's REST API listens and the token it wants.

Written 0600 in the state folder when the server starts (other local programs read the URL and
token there), rewritten without the address when it stops. The token is created once and kept,
so a client configured with it keeps working across restarts. Standard library only: the
command line reads this before deciding whether to import anything heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "api.json"


@dataclass(frozen=True)
class ApiInfo:
    url: str
    token: str
    pid: int
    index: str


def api_file(state_dir: Path) -> Path:
    return Path(state_dir) / FILE_NAME


def _read(state_dir: Path) -> dict:
    try:
        data = json.loads(api_file(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_or_create_token(state_dir: Path) -> str:
    token = _read(state_dir).get("token")
    if isinstance(token, str) and len(token) >= 32:
        return token
    return secrets.token_urlsafe(32)


def write_running(state_dir: Path, *, url: str, token: str, index: str) -> None:
    from app.fsutil import write_atomic

    payload = {"url": url, "token": token, "pid": os.getpid(), "index": index}
    write_atomic(api_file(state_dir), json.dumps(payload, indent=2) + "\n", mode=0o600)


def write_stopped(state_dir: Path, token: str) -> None:
    """Keep the token, drop the address: nothing listens any more."""
    from app.fsutil import write_atomic

    with contextlib.suppress(OSError):
        write_atomic(api_file(state_dir), json.dumps({"token": token}, indent=2) + "\n",
                     mode=0o600)


def read_running(state_dir: Path) -> ApiInfo | None:
    """The running server's address and token, or None when none runs (no file, no address,
    or its process is gone)."""
    data = _read(state_dir)
    url, token, pid = data.get("url"), data.get("token"), data.get("pid")
    if not (isinstance(url, str) and isinstance(token, str) and isinstance(pid, int)):
        return None
    if not _alive(pid):
        return None
    return ApiInfo(url=url, token=token, pid=pid, index=str(data.get("index", "")))


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would end the process there
        import psutil

        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
