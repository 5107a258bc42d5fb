"""Text compressed with gzip (`notes.txt.gz`, `changelog.md.gz`, `page.html.gz`): decompressed
into a private temporary file, at most a bounded number of bytes (a gzip bomb is refused as too
large), then read by the inner format's reader."""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from collections.abc import Callable
from contextlib import suppress

from app.core.extract.types import Extracted, ExtractionError

# Without a limit from the settings (max_text_mb), this many bytes of decompressed text.
DEFAULT_MAX_BYTES = 20_000_000
_CHUNK = 1 << 16


def extract_gzip(path: str, inner_ext: str, read: Callable[[str], Extracted],
                 max_bytes: int | None = None) -> Extracted:
    """Decompress `path` (at most `max_bytes` bytes) and read it as an `inner_ext` file."""
    limit = max_bytes or DEFAULT_MAX_BYTES
    fd, tmp = tempfile.mkstemp(suffix=inner_ext, prefix="lancedb-sync-gz-")
    try:
        written = 0
        with os.fdopen(fd, "wb") as out, gzip.open(path, "rb") as src:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise ExtractionError(
                        "too_large",
                        f"This compressed file holds more than {limit / 1e6:g} million "
                        "characters of text, so it was skipped; raise max_text_mb "
                        "(LANCEDB_SYNC_MAX_TEXT_MB) to index it.")
                out.write(chunk)
        result = read(tmp)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ExtractionError(
            "corrupt", f"This compressed (.gz) file appears to be damaged or truncated ({exc}).",
        ) from None
    finally:
        with suppress(OSError):
            os.unlink(tmp)
    name = os.path.basename(path)
    mime = result.mime
    return Extracted(result.blocks, mime, result.title or name[:-3], result.metadata)
