"""Extractor plugins that reproduce what happens to files during a sync."""

from __future__ import annotations

import os

from app.core.extract.types import Extracted


def vanish(path: str) -> Extracted:
    """The file is deleted while its parser runs (a user emptying a folder mid-sync)."""
    os.remove(path)
    with open(path, "rb"):
        pass
    raise AssertionError("unreachable: the file is gone")


def saved_while_parsing(path: str) -> Extracted:
    """The user saves the file while its parser runs: the text returned is the version read
    before the save. Happens once per file (a `<file>.saved` marker remembers it)."""
    from pathlib import Path

    from app.core.extract.types import Block

    p = Path(path)
    text = p.read_text()
    marker = Path(path + ".saved")
    if not marker.exists():
        marker.write_text("")
        st = p.stat()
        p.write_text(text.replace("OLDWORD", "NEWWORD"))
        # A different size already moves the token; a clearly later mtime makes it certain.
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    return Extracted((Block(text),), "text/plain", p.stem)


def hang_when_marked(path: str) -> Extracted:
    """Parses like plain text, but never returns for a file containing HANG-NOW: a parser
    that times out on one version of a document."""
    import time
    from pathlib import Path

    from app.core.extract.types import Block

    text = Path(path).read_text()
    if "HANG-NOW" in text:
        while True:
            time.sleep(3600)
    return Extracted((Block(text),), "text/plain", Path(path).stem)
