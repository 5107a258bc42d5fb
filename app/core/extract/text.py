"""Plain text, Markdown, reStructuredText, config files and source code."""

from __future__ import annotations

import os
from pathlib import Path

from app.core.extract.decode import decode_text
from app.core.extract.markup import markdown_blocks, paragraph_blocks, rst_blocks
from app.core.extract.types import Block, Extracted

MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown"})
RST_EXTENSIONS = frozenset({".rst", ".rest"})
PROSE_EXTENSIONS = frozenset(
    {".txt", ".org", ".tex", ".log", ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg"}
)
CODE_EXTENSIONS = frozenset(
    {
        ".py", ".js", ".ts", ".tsx", ".jsx", ".java", ".c", ".h", ".cpp", ".hpp", ".cs",
        ".go", ".rs", ".rb", ".php", ".sh", ".swift", ".kt", ".scala", ".sql", ".r", ".lua",
        ".pl",
    }
)  # fmt: skip
EXTENSIONS = MARKDOWN_EXTENSIONS | RST_EXTENSIONS | PROSE_EXTENSIONS | CODE_EXTENSIONS

_MIME = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".rst": "text/x-rst",
    ".rest": "text/x-rst",
    ".org": "text/org",
    ".tex": "text/x-tex",
    ".json": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".py": "text/x-python",
    ".js": "text/javascript",
    ".ts": "text/x-typescript",
    ".java": "text/x-java",
    ".c": "text/x-c",
    ".h": "text/x-c",
    ".cpp": "text/x-c++",
    ".hpp": "text/x-c++",
    ".go": "text/x-go",
    ".rs": "text/x-rust",
    ".sh": "text/x-shellscript",
    ".sql": "application/sql",
}


def mime_for(ext: str) -> str:
    return _MIME.get(ext, "text/plain")


def _first_heading(blocks: list[Block]) -> str | None:
    headings = [b for b in blocks if b.kind == "heading"]
    if not headings:
        return None
    top = min(b.level for b in headings)
    return next(b.text for b in headings if b.level == top)


def extract(path: str | os.PathLike[str]) -> Extracted:
    ext = Path(path).suffix.lower()
    text = decode_text(Path(path).read_bytes())
    title: str | None = None
    if ext in MARKDOWN_EXTENSIONS:
        blocks, title = markdown_blocks(text)
        title = title or _first_heading(blocks)
    elif ext in RST_EXTENSIONS:
        blocks = rst_blocks(text)
        title = _first_heading(blocks)
    elif ext in CODE_EXTENSIONS:
        # Marked as code so chunking keeps functions intact rather than re-flowing them as prose.
        blocks = paragraph_blocks(text, "code")
    else:
        blocks = paragraph_blocks(text)
    return Extracted(tuple(blocks), mime_for(ext), title)
