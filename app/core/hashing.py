"""Content hashes (BLAKE3) of files and texts."""

from __future__ import annotations

import errno
import os
import stat

import blake3

_BUF = 1 << 20
# Opening a FIFO for reading blocks until a writer appears; O_NONBLOCK makes the open return at
# once, and the fstat below refuses anything but a regular file.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
    | getattr(os, "O_BINARY", 0)


def open_regular(path: str):
    """Open a regular file for reading in binary mode; OSError(EINVAL) for a pipe, socket or
    device, without ever blocking on it."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        if _OPEN_FLAGS & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def hash_file(path: str) -> str:
    h = blake3.blake3()
    with open_regular(path) as fh:
        while True:
            buf = fh.read(_BUF)
            if not buf:
                break
            h.update(buf)
    return h.hexdigest()


def hash_text(text: str) -> str:
    return blake3.blake3(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def chunk_id(doc_uid: str, text_hash: str, duplicate: int) -> str:
    return blake3.blake3(f"{doc_uid}\0{text_hash}\0{duplicate}".encode(
        "utf-8", "surrogatepass")).hexdigest()[:32]
