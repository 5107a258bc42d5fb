"""Which extractor handles which file extension.

Format modules are named here as strings and imported on first use, so importing the
registry never loads a parser library (PDFium, lexbor, python-docx, ...).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from app.core.extract.types import Extracted

Extractor = Callable[[str], Extracted]

_PACKAGE = "app.core.extract"


@dataclass(frozen=True, slots=True)
class Format:
    target: str  # "module:function"
    label: str  # how the file type is named to a person: "This <label> appears to be damaged"
    no_text_reason: str = "This file contains no text to index."


PDF_NO_TEXT_REASON = (
    "This PDF has no selectable text — it may be a scanned image; OCR is not supported, "
    "so it was skipped."
)


_TEXT = Format(f"{_PACKAGE}.text:extract", "text file")
_TEXT_EXTENSIONS = (
    ".txt", ".md", ".markdown", ".rst", ".rest", ".org", ".tex", ".log", ".json", ".yaml",
    ".yml", ".toml", ".ini", ".cfg", ".py", ".js", ".ts", ".tsx", ".jsx", ".java", ".c", ".h",
    ".cpp", ".hpp", ".cs", ".go", ".rs", ".rb", ".php", ".sh", ".swift", ".kt", ".scala",
    ".sql", ".r", ".lua", ".pl",
)  # fmt: skip

BUILTIN_FORMATS: dict[str, Format] = {
    **{ext: _TEXT for ext in _TEXT_EXTENSIONS},
    **dict.fromkeys((".html", ".htm", ".xhtml"), Format(f"{_PACKAGE}.html:extract", "HTML file")),
    ".pdf": Format(f"{_PACKAGE}.pdf:extract", "PDF file", PDF_NO_TEXT_REASON),
    ".docx": Format(f"{_PACKAGE}.office_docx:extract", "Word (.docx) file"),
    ".pptx": Format(f"{_PACKAGE}.office_pptx:extract", "PowerPoint (.pptx) file"),
    ".xlsx": Format(f"{_PACKAGE}.office_xlsx:extract", "Excel (.xlsx) file"),
    ".csv": Format(f"{_PACKAGE}.tabular:extract", "CSV file"),
    ".tsv": Format(f"{_PACKAGE}.tabular:extract", "TSV file"),
    ".odt": Format(f"{_PACKAGE}.odt:extract", "OpenDocument (.odt) file"),
    ".eml": Format(f"{_PACKAGE}.eml:extract", "email (.eml) file"),
    ".epub": Format(f"{_PACKAGE}.epub:extract", "EPUB e-book"),
}


def normalize_extension(ext: str) -> str:
    ext = ext.strip().lower()
    return ext if ext.startswith(".") else "." + ext


def find_format(ext: str, plugins: Mapping[str, str] | None = None) -> Format | None:
    """The format for a lower-case extension; plugins win over built-ins."""
    if plugins:
        for plugin_ext, target in plugins.items():
            if normalize_extension(plugin_ext) == ext:
                builtin = BUILTIN_FORMATS.get(ext)
                label = builtin.label if builtin else f"{ext} file"
                return Format(target, label)
    return BUILTIN_FORMATS.get(ext)


@cache
def load_extractor(target: str) -> Extractor:
    """Resolve "package.module:function" (a dotted "package.module.function" also works)."""
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"extractor {target!r} is not of the form 'module:function'")
    function = getattr(importlib.import_module(module_name), attr)
    if not callable(function):
        raise ValueError(f"extractor {target!r} is not callable")
    return function  # type: ignore[no-any-return]
