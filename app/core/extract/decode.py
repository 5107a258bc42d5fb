"""Turn the bytes of a text-like file into a str, or decide that it is not text at all."""

from __future__ import annotations

import codecs

from app.core.extract.types import ExtractionError

# How much of the file the binary sniff looks at; enough to see a binary header,
# small enough to stay cheap on huge logs.
_SNIFF_BYTES = 8192
# Share of control characters above which decoded "text" is really binary noise.
_MAX_CONTROL_SHARE = 0.10

# How much "messier" (charset_normalizer's chaos score) cp1252 may read than the top guess
# and still be preferred; tuned on Polish, Czech, Russian, Greek and French samples.
_CP1252_CHAOS_MARGIN = 0.15

# UTF-32 first: its little-endian BOM starts with the UTF-16 one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Tab, newline, carriage return and form feed are ordinary in text files.
_CONTROL_CHARS = frozenset(chr(c) for c in range(32) if c not in (9, 10, 12, 13)) | {"\x7f"}


def _binary_error() -> ExtractionError:
    return ExtractionError(
        "binary",
        "This file looks like a binary file, not text, even though its name says it is text; "
        "it was skipped.",
    )


def _looks_like_control_noise(text: str) -> bool:
    sample = text[:_SNIFF_BYTES]
    if not sample:
        return False
    controls = sum(1 for ch in sample if ch in _CONTROL_CHARS)
    return controls / len(sample) > _MAX_CONTROL_SHARE


def decode_text(data: bytes) -> str:
    """Decode file bytes to text; raise ExtractionError("binary") when they are not text."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            # A BOM is an explicit statement of the encoding; UTF-16/32 also legitimately
            # contain NUL bytes, so the NUL sniff below must not run on them.
            return data.decode(encoding, errors="replace")

    if b"\x00" in data[:_SNIFF_BYTES]:
        raise _binary_error()

    try:
        # Fast path: almost every modern text file is UTF-8, and a strict decode is
        # orders of magnitude cheaper than statistical detection.
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = _detect_and_decode(data)

    if _looks_like_control_noise(text):
        raise _binary_error()
    return text


def decode_markup(data: bytes, declared: str | None = None) -> str:
    """Decode HTML/XML-ish bytes: BOM, then UTF-8, then the declared charset, then detection.

    Never raises: a web page with a wrong charset is still worth indexing with a few
    replacement characters.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if declared:
        try:
            return data.decode(declared, errors="replace")
        except LookupError:
            pass  # unknown charset name in the document; fall through to detection
    try:
        return _detect_and_decode(data)
    except ExtractionError:
        return data.decode("utf-8", errors="replace")


def _detect_and_decode(data: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise _binary_error()
    best = matches[0]
    # On short Western European texts the detector often ranks a Baltic or Central European
    # code page first by a hair ("crème" -> "crčme"). Windows-1252 is by far the most common
    # legacy encoding of personal documents, so it wins whenever it reads about as cleanly.
    for match in matches:
        if match.encoding == "cp1252" and match.chaos <= best.chaos + _CP1252_CHAOS_MARGIN:
            return str(match)
    return str(best)
