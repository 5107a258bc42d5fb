"""Each benchmark owns one generated section of docs/benchmarks.md, between its markers."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, name: str, heading: str, section: str) -> None:
    """Replace the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` with `section`
    (which carries the markers), or append it under `heading` the first time."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + section + "\n"
    path.write_text(text)
