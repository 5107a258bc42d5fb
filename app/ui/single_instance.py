"""One tray per user and data folder: a second launch hands over to the first and exits.

The first instance listens on a local socket (a named pipe on Windows) whose name is derived from
the data folder, so portable homes (`--home`) and test runs do not collide. A later launch
connects, sends one line (`show` or `show <window>`), and the running instance brings that
window forward.
"""

from __future__ import annotations

import getpass
import hashlib

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

CONNECT_MS = 500


def server_name(data_dir: str) -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name (some containers): the data folder still separates
        user = "user"
    digest = hashlib.sha1(f"{user}\0{data_dir}".encode()).hexdigest()[:16]
    return f"lancedb-sync-{digest}"


def send_to_running(name: str, message: str = "show", timeout_ms: int = CONNECT_MS) -> bool:
    """True when an instance was listening and took the message."""
    sock = QLocalSocket()
    sock.connectToServer(name)
    if not sock.waitForConnected(timeout_ms):
        return False
    sock.write((message + "\n").encode())
    sock.flush()
    sock.waitForBytesWritten(timeout_ms)
    sock.waitForReadyRead(timeout_ms)  # the first instance answers "ok" once it has it
    sock.disconnectFromServer()
    return True


class SingleInstance(QObject):
    """Listens for later launches; `message` carries what they asked for."""

    message = Signal(str)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._server = QLocalServer(self)
        self._server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        if self._server.listen(self.name):
            return True
        # A crashed instance leaves its socket file behind (Unix): nobody answers it.
        QLocalServer.removeServer(self.name)
        return self._server.listen(self.name)

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(sock.deleteLater)

    def _read(self, sock: QLocalSocket) -> None:
        while sock.canReadLine():
            line = bytes(sock.readLine().data()).decode(errors="replace").strip()
            sock.write(b"ok\n")
            sock.flush()
            if line:
                self.message.emit(line)
