"""Turn a document on disk into text blocks: the one entry point, `extract_path`.

Every expected failure becomes an ExtractionError whose `reason` is written for the person
whose file it is. Parser libraries are imported only when a file of their type is read, so
importing this package stays cheap (the UI imports it at start-up).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from app.core.extract.registry import (
    BUILTIN_FORMATS,
    Extractor,
    Format,
    find_format,
    load_extractor,
)
from app.core.extract.types import ERROR_KINDS, Block, Extracted, ExtractionError
from app.wording import size

__all__ = [
    "DEFAULT_PATTERNS",
    "ERROR_KINDS",
    "SUPPORTED_EXTENSIONS",
    "Block",
    "Extracted",
    "ExtractionError",
    "extract_path",
    "load_reader",
]

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(BUILTIN_FORMATS)
DEFAULT_PATTERNS: tuple[str, ...] = tuple(f"*{ext}" for ext in sorted(SUPPORTED_EXTENSIONS))

_DETAIL_CHARS = 120


def _short_detail(exc: BaseException) -> str:
    """A one-line hint about what went wrong inside a parser, never a traceback."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    if len(detail) > _DETAIL_CHARS:
        detail = detail[: _DETAIL_CHARS - 1] + "…"
    return detail


def _vanished() -> ExtractionError:
    return ExtractionError(
        "vanished", "The file was moved or deleted before it could be read, so it was skipped."
    )


def _unreadable(exc: OSError | None = None) -> ExtractionError:
    if exc is None or isinstance(exc, PermissionError):
        return ExtractionError(
            "unreadable",
            "This file could not be opened because of its permissions; allow your user "
            "account to read it to index it.",
        )
    return ExtractionError(
        "unreadable",
        f"This file could not be read ({exc.strerror or _short_detail(exc)}); check that the "
        "disk or network share holding it is available.",
    )


def _check_file(path: str, max_bytes: int | None) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise _vanished() from None
    except OSError as exc:
        raise _unreadable(exc) from None
    if not stat.S_ISREG(info.st_mode):
        raise ExtractionError(
            "unsupported", "This is not a regular file (it may be a folder or a device)."
        )
    if info.st_size == 0:
        raise ExtractionError("empty", "This file is empty, so there is nothing to index.")
    if max_bytes is not None and info.st_size > max_bytes:
        raise ExtractionError(
            "too_large",
            f"This file is {size(info.st_size)}, more than the "
            f"{size(max_bytes)} size limit, so it was skipped; raise the limit in "
            "settings to index it.",
        )


def extract_path(
    path: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    plugins: Mapping[str, str] | None = None,
    max_chars: int | None = None,
) -> Extracted:
    """Extract one file in this process. Raises ExtractionError for every expected failure.

    `plugins` maps an extension (".hang") to a "module:function" extractor that takes a path
    and returns Extracted; plugins take precedence over the built-in formats. A file without
    an extension is read as plain text when its first bytes are text (README, LICENSE); a
    `.gz` of a text or HTML file is decompressed, at most `max_chars` bytes of it (a gzip bomb
    is refused as too large).
    """
    path_str = os.fspath(path)
    ext = _extension(path_str)
    fmt = _format_for(ext, plugins)
    _check_file(path_str, max_bytes)
    extractor = _load(fmt, ext)
    if ext == "":
        _sniff(path_str)
    elif ext.endswith(".gz"):
        from app.core.extract.compressed import extract_gzip

        return extract_gzip(path_str, ext[:-3], lambda p: extract_path(
            p, max_bytes=None, plugins=plugins), max_chars)

    try:
        result = extractor(path_str)
    except ExtractionError:
        raise
    except FileNotFoundError:
        raise _vanished() from None
    except PermissionError as exc:
        raise _unreadable(exc) from None
    except MemoryError:
        raise _out_of_memory() from None
    except OSError as exc:
        if exc.errno is not None:  # a genuine I/O error, not a format complaint
            raise _unreadable(exc) from None
        raise _corrupt(fmt.label, exc) from None
    except Exception as exc:
        raise _corrupt(fmt.label, exc) from None

    if not isinstance(result, Extracted):
        raise ExtractionError(
            "internal",
            f"The reader for {ext} files returned something unexpected; check the add-on "
            "parser settings.",
        )
    if not any(block.text.strip() for block in result.blocks):
        raise ExtractionError("no_text", fmt.no_text_reason)
    return result


def load_reader(
    path: str | os.PathLike[str], *, plugins: Mapping[str, str] | None = None
) -> None:
    """Import the reader `extract_path` would use for this path, without opening the file.

    The sandbox calls this before starting a file's clock: the first file of a type pays for
    importing its parser library, which on a busy machine can take longer than the whole
    parse time limit. Raises ExtractionError as `extract_path` would for an unsupported type or
    a reader that cannot be loaded; a loaded reader is cached, so the parse does not load it
    again.
    """
    ext = _extension(os.fspath(path))
    _load(_format_for(ext, plugins), ext)


def _extension(path: str) -> str:
    """The lower-case extension; ".txt.gz" for a compressed text file, "" for none."""
    name = os.path.basename(path).lower()
    ext = os.path.splitext(name)[1]
    if ext == ".gz":
        return os.path.splitext(name[:-3])[1] + ".gz"
    return ext


def _sniff(path: str) -> None:
    from app.core.extract.triage import NOT_TEXT_REASON, sniff_text

    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError as exc:
        raise _unreadable(exc) from None
    if not sniff_text(head):
        raise ExtractionError("unsupported", NOT_TEXT_REASON)


def _format_for(ext: str, plugins: Mapping[str, str] | None) -> Format:
    from app.core.extract.triage import gzip_inner_format_ok

    if ext == "":
        return find_format(".txt") or BUILTIN_FORMATS[".txt"]
    if ext.endswith(".gz"):
        if not gzip_inner_format_ok(ext[:-3], plugins):
            raise ExtractionError("unsupported",
                                  "Unsupported: compressed file that is not text (.gz).")
        return Format("app.core.extract.compressed:extract_gzip", "compressed file")
    fmt = find_format(ext, plugins)
    if fmt is None:
        kind = f"Files of type {ext}" if ext else "Files without an extension"
        raise ExtractionError("unsupported", f"{kind} are not supported, so this one was skipped.")
    return fmt


def _load(fmt: Format, ext: str) -> Extractor:
    try:
        return load_extractor(fmt.target)
    except MemoryError:
        raise _out_of_memory() from None
    except Exception as exc:
        raise ExtractionError(
            "internal",
            f"The reader for {ext} files could not be loaded ({_short_detail(exc)}); "
            "check the add-on parser settings or reinstall the app.",
        ) from None


def _out_of_memory() -> ExtractionError:
    return ExtractionError(
        "memory", "Reading this file needed more memory than allowed, so it was skipped."
    )


def _corrupt(label: str, exc: BaseException) -> ExtractionError:
    return ExtractionError(
        "corrupt",
        f"This {label} appears to be damaged or truncated ({_short_detail(exc)}); try opening "
        "and re-saving it.",
    )
