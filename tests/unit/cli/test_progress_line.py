"""The live progress line fits the terminal: counts whole, the file name shortened from the
left (app/cli/output.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.cli.output import progress_text

LONG = "file:///home/someone/projects/python-docs/library/asyncio-eventloop.txt"


def progress(**kw):
    values = {"source_id": "documentation", "phase": "indexing", "done": 1234, "total": 30815,
              "parsed": 1500, "rate": 312.4, "eta_s": 95.0, "failed": 12, "current": LONG}
    return SimpleNamespace(**{**values, **kw})


@pytest.mark.parametrize("width", [39, 59, 79, 99, 199])
def test_the_line_fits_and_keeps_the_counts(width):
    line = progress_text(progress(), width)
    assert len(line) <= width
    assert "1234/30815 indexed" in line and "12 failed" in line


def test_the_file_name_is_shortened_from_the_left():
    line = progress_text(progress(), 79)
    assert line.endswith("eventloop.txt") and "…" in line
    assert "ETA" in line  # what is left to wait is kept over the bar
    wide = progress_text(progress(), 200)
    assert wide.endswith(LONG.removeprefix("file://")) and "[" in wide


def test_other_phases():
    assert progress_text(progress(phase="scanning"), 79) == "documentation: scanning…"
    assert "0 failed" not in progress_text(progress(failed=0), 79)
