"""Content hashes (BLAKE3) of files and texts."""

from __future__ import annotations

import blake3

_BUF = 1 << 20


def hash_file(path: str) -> str:
    h = blake3.blake3()
    with open(path, "rb") as fh:
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
