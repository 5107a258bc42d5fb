"""Split decoded plain text, Markdown and reStructuredText into blocks.

These are deliberately small line scanners, not full parsers: the goal is good chunk boundaries
(headings, code fences, paragraphs) in linear time, even on very large files.
"""

from __future__ import annotations

import re

from app.core.extract.types import Block, BlockKind

# One regex over the whole text instead of a per-line loop; it is the only split plain
# text needs.
_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n")

_RST_ADORNMENT = frozenset("=-~^\"'`#*+_.:<>!$%&(),/;?@[\\]{|}")
_RST_CODE_DIRECTIVES = ("code-block", "code", "sourcecode", "literalinclude")
# Directives whose argument is prose worth indexing; others (image, toctree, ...) are skipped.
_RST_PROSE_DIRECTIVES = frozenset(
    {
        "note", "warning", "tip", "important", "caution", "danger", "attention", "hint",
        "error", "admonition", "seealso", "topic", "sidebar", "versionadded",
        "versionchanged", "deprecated", "rubric",
    }
)  # fmt: skip


def normalize_newlines(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def paragraph_blocks(text: str, kind: BlockKind = "para") -> list[Block]:
    """Blocks separated by blank lines, stripped, empty ones dropped."""
    text = normalize_newlines(text)
    return [Block(p.strip("\n"), kind) for p in _BLANK_LINE.split(text) if p.strip()]


# ---------------------------------------------------------------------------------------------
# Markdown


def _split_front_matter(text: str) -> tuple[str, str | None]:
    """Drop a leading YAML front-matter block; return the rest and its `title:` if any."""
    if not text.startswith("---\n"):
        return text, None
    end = text.find("\n---\n", 3)
    if end == -1:
        end = text.find("\n...\n", 3)
    if end == -1:
        return text, None
    title = None
    for line in text[4:end].split("\n"):
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "title":
            title = value.strip().strip("'\"") or None
            break
    return text[end + 5 :], title


def _atx_heading(stripped: str) -> tuple[int, str] | None:
    level = len(stripped) - len(stripped.lstrip("#"))
    if not 1 <= level <= 6:
        return None
    if len(stripped) > level and stripped[level] not in " \t":
        return None  # "#hashtag" is not a heading
    title = stripped[level:].strip()
    if title.endswith("#"):
        without = title.rstrip("#")
        if not without or without[-1] in " \t":
            title = without.strip()
    return level, title


def _fence_opening(stripped: str) -> tuple[str, int] | None:
    if not stripped.startswith(("```", "~~~")):
        return None
    char = stripped[0]
    length = len(stripped) - len(stripped.lstrip(char))
    return char, length


def markdown_blocks(text: str) -> tuple[list[Block], str | None]:
    """Return the blocks of a Markdown document and its front-matter title, if it has one."""
    text, title = _split_front_matter(normalize_newlines(text))
    blocks: list[Block] = []
    para: list[str] = []
    code: list[str] = []
    fence: tuple[str, int] | None = None

    def flush_para() -> None:
        if para:
            blocks.append(Block("\n".join(para), "para"))
            para.clear()

    for line in text.split("\n"):
        if fence is not None:
            closing = line.strip()
            char, length = fence
            if len(closing) >= length and closing == char * len(closing):
                if any(c.strip() for c in code):
                    blocks.append(Block("\n".join(code), "code"))
                code.clear()
                fence = None
            else:
                code.append(line)
            continue

        stripped = line.lstrip(" ")
        shallow = len(line) - len(stripped) <= 3
        content = stripped.strip()
        if not content:
            flush_para()
            continue
        if shallow and (opening := _fence_opening(stripped)) is not None:
            flush_para()
            fence = opening
            continue
        if shallow and stripped.startswith("#") and (atx := _atx_heading(stripped)) is not None:
            flush_para()
            if atx[1]:
                blocks.append(Block(atx[1], "heading", atx[0]))
            continue
        underline_char = content[0]
        bare = content.replace(" ", "")
        if shallow and underline_char in "=-*_" and bare == underline_char * len(bare):
            if para and underline_char in "=-" and " " not in content:
                # Setext heading: the paragraph above the underline is the title.
                blocks.append(Block(" ".join(para), "heading", 1 if underline_char == "=" else 2))
                para.clear()
                continue
            if len(bare) >= 3:
                flush_para()  # thematic break
                continue
        para.append(content)

    if fence is not None and any(c.strip() for c in code):
        blocks.append(Block("\n".join(code), "code"))  # unterminated fence runs to the end
    flush_para()
    return blocks, title


# ---------------------------------------------------------------------------------------------
# reStructuredText


def _is_adornment(stripped: str) -> bool:
    return (
        len(stripped) >= 2
        and stripped[0] in _RST_ADORNMENT
        and stripped == stripped[0] * len(stripped)
    )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


class _RstScanner:
    def __init__(self, text: str) -> None:
        self.lines = normalize_newlines(text).split("\n")
        self.blocks: list[Block] = []
        self.para: list[str] = []
        # Section levels follow the order in which adornment styles first appear.
        self.styles: dict[tuple[str, bool], int] = {}
        self.expect_literal = False

    def flush(self) -> None:
        if self.para:
            text = "\n".join(self.para)
            if text.endswith("::"):
                # "Paragraph::" introduces a literal block and renders as "Paragraph:";
                # a detached "::" renders as nothing.
                self.expect_literal = True
                if text == "::" or text.endswith((" ::", "\n::")):
                    text = text[:-2].rstrip()
                else:
                    text = text[:-1]
            if text.strip():
                self.blocks.append(Block(text, "para"))
            self.para.clear()

    def heading(self, title: str, char: str, overline: bool) -> None:
        level = self.styles.setdefault((char, overline), len(self.styles) + 1)
        self.blocks.append(Block(title, "heading", level))

    def literal(self, start: int) -> int:
        """Collect the indented block starting at `start` as code; return the next index."""
        lines = self.lines
        i = start
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines) or _indent(lines[i]) == 0:
            return start
        body: list[str] = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > 0):
            body.append(lines[i])
            i += 1
        margin = min(_indent(b) for b in body if b.strip())
        code = "\n".join(b[margin:] for b in body).strip("\n")
        if code:
            self.blocks.append(Block(code, "code"))
        return i

    def directive(self, stripped: str) -> None:
        name, sep, argument = stripped[3:].partition("::")
        name = name.strip().lower()
        if not sep:
            return  # comment, hyperlink target or substitution definition
        if name in _RST_CODE_DIRECTIVES:
            self.expect_literal = True
        elif name in _RST_PROSE_DIRECTIVES and argument.strip():
            self.para.append(argument.strip())

    def run(self) -> list[Block]:
        lines = self.lines
        i, n = 0, len(lines)
        while i < n:
            if self.expect_literal:
                self.expect_literal = False
                nxt = self.literal(i)
                if nxt != i:
                    i = nxt
                    continue
            stripped = lines[i].strip()
            if not stripped:
                self.flush()
                i += 1
                continue
            if _is_adornment(stripped):
                if (
                    not self.para
                    and i + 2 < n
                    and lines[i + 1].strip()
                    and lines[i + 2].strip() == stripped
                ):
                    self.heading(lines[i + 1].strip(), stripped[0], True)
                    i += 3
                    continue
                if self.para and (len(stripped) >= 3 or len(stripped) >= len(self.para[-1])):
                    title = self.para.pop()
                    self.flush()
                    self.heading(title, stripped[0], False)
                    i += 1
                    continue
                self.flush()  # a transition line separates content
                i += 1
                continue
            if stripped.startswith(".. "):
                self.flush()
                self.directive(stripped)
                i += 1
                continue
            self.para.append(stripped)
            i += 1
        self.flush()
        return self.blocks


def rst_blocks(text: str) -> list[Block]:
    return _RstScanner(text).run()
