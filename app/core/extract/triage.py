"""Which files are not documents, decided from the name and the first bytes, before any parser
runs: generated files (minified code, search indexes, lock files, vendored libraries) and file
types the app does not read. Pure functions, cheap: the pass calls them for every new file.

Reasons are short and read by people in the failed/skipped list.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from app.core.extract.registry import find_format

# Folders whose contents are other people's code, never walked or indexed (with skip_generated).
VENDOR_DIRS = frozenset({"node_modules", "bower_components"})
# Folders where web code is usually a copied library: its .js/.css files are skipped.
LIBRARY_DIRS = frozenset({"vendor", "vendors", "third_party", "_static"})

LOCK_FILES = frozenset({
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock",
    "pipfile.lock", "cargo.lock", "composer.lock", "gemfile.lock", "uv.lock", "pdm.lock",
    "go.sum", "flake.lock",
})  # fmt: skip
SEARCH_INDEXES = frozenset({"searchindex.js", "search_index.js", "search-index.js",
                            "search_index.json", "lunr-index.json"})
_LIBRARY_NAME = re.compile(
    r"^(jquery|underscore|lodash|bootstrap|popper|mathjax|doctools|sphinx_highlight|"
    r"searchtools|language_data)([-_.].*)?\.(js|css)$")
_MINIFIED_NAME = re.compile(r".*[.-]min\.(js|css|mjs)$")
MINIFIABLE = frozenset({".js", ".mjs", ".cjs", ".css"})
# A line this long in code is not written by a person: minified or generated.
LONG_LINE = 1000
HEAD_BYTES = 64 * 1024

MINIFIED_REASON = "Skipped: generated file (minified code)."


def generated_reason(path: str) -> str | None:
    """Why this file is generated rather than written (its name and folders), or None."""
    name = os.path.basename(path).lower()
    parts = {p.lower() for p in path.replace("\\", "/").split("/")[:-1]}
    if parts & VENDOR_DIRS:
        return "Skipped: vendored library (node_modules)."
    if name in LOCK_FILES or name.endswith(".lock"):
        return "Skipped: generated file (lock file)."
    if name in SEARCH_INDEXES:
        return "Skipped: generated file (search index)."
    if _MINIFIED_NAME.match(name):
        return MINIFIED_REASON
    ext = os.path.splitext(name)[1]
    if _LIBRARY_NAME.match(name) or (ext in MINIFIABLE and parts & LIBRARY_DIRS):
        return "Skipped: vendored library."
    return None


def looks_minified(head: bytes) -> bool:
    """True when the start of a code file has a line no person writes (minified code)."""
    return any(len(line) > LONG_LINE for line in head.split(b"\n"))


def may_be_minified(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in MINIFIABLE


def unsupported_reason(name: str, plugins: Mapping[str, str] | None = None) -> str | None:
    """Why a file of this name is never read, from the name alone (None: it may be: a known
    format, a `.gz` of a text format, or a name without an extension, sniffed later)."""
    lower = name.lower()
    if lower.endswith(".gz"):
        inner = os.path.splitext(lower[:-3])[1]
        if gzip_inner_format_ok(inner, plugins):
            return None
        return "Unsupported: compressed file that is not text (.gz)."
    ext = os.path.splitext(lower)[1]
    if not ext or find_format(ext, plugins) is not None:
        return None
    return f"Unsupported file type ({ext})."


# Formats read from inside a .gz: text and HTML (cheap to decompress and parse).
GZIP_TARGETS = ("app.core.extract.text:", "app.core.extract.html:")


def gzip_inner_format_ok(ext: str, plugins: Mapping[str, str] | None = None) -> bool:
    fmt = find_format(ext, plugins) if ext else None
    return fmt is not None and fmt.target.startswith(GZIP_TARGETS)


NOT_TEXT_REASON = "Unsupported: no extension and not text."


def sniff_text(head: bytes) -> bool:
    """Whether the first bytes of a file without an extension are plain text (README, LICENSE,
    copyright): no NUL bytes, and charset-normalizer finds an encoding."""
    if not head.strip():
        return True  # empty or blank: the reader says "empty"
    if b"\0" in head:
        return False
    from charset_normalizer import from_bytes

    best = from_bytes(head).best()
    return best is not None
