"""HTML pages, and the HTML-to-blocks conversion that email and EPUB reuse."""

from __future__ import annotations

import os
import re
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser, LexborNode

from app.core.extract.decode import decode_markup
from app.core.extract.tables import table_blocks
from app.core.extract.types import Block, BlockKind, Extracted

EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})

_ALWAYS_DROP = ["script", "style", "noscript", "template", "svg", "iframe", "object", "canvas"]
_BOILERPLATE = ["nav", "aside", "form"]
# Site-wide chrome; only dropped when there is no main-content container, because inside an
# <article> a <header> usually holds the article's own title.
_PAGE_CHROME = ["header", "footer"]
_MAIN_SELECTOR = "main, [role=main], article"

_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements whose whole subtree is one paragraph: they cannot hold block content, so one C-level
# text() call replaces walking their children in Python (this is what keeps large pages fast).
_TEXT_BLOCKS = frozenset({"p", "dt", "caption", "figcaption", "summary", "legend", "address"})
_INLINE = frozenset(
    {
        "a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em",
        "font", "i", "img", "input", "ins", "kbd", "label", "mark", "q", "rp", "rt", "ruby",
        "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u",
        "var", "wbr", "math",
    }
)  # fmt: skip
_IGNORED = frozenset({"-comment", "br", "hr", "head", "meta", "link", "title", "base"})
_TABLE_SECTIONS = frozenset({"thead", "tbody", "tfoot"})
# Permalink markers that documentation generators append to headings and definitions.
_HEADING_MARKERS = "¶🔗 \u00a0"
# XHTML's <title/> or <a id="x"/> mean "empty element", but an HTML parser reads them as
# start tags and swallows everything after them; void elements (<br/>) are fine either way.
_SELF_CLOSED = re.compile(r"<([A-Za-z][\w:.-]*)((?:\s[^<>]*?)?)\s*/>")
_VOID = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr",
    }
)  # fmt: skip
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)


def _collapse(text: str) -> str:
    return " ".join(text.split())


class _BlockBuilder:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self._inline: list[str] = []

    def inline(self, text: str) -> None:
        self._inline.append(text)

    def flush(self) -> None:
        if self._inline:
            text = _collapse("".join(self._inline))
            self._inline.clear()
            if text:
                self.blocks.append(Block(text, "para"))

    def add(self, text: str, kind: BlockKind = "para", level: int = 0) -> None:
        if text:
            self.blocks.append(Block(text, kind, level))


def _table_rows(table: LexborNode) -> list[list[LexborNode]]:
    """Rows that belong to this table itself; nested tables stay inside their cell's text."""
    rows: list[list[LexborNode]] = []
    for child in table.iter():
        if child.tag == "tr":
            trs = [child]
        elif child.tag in _TABLE_SECTIONS:
            trs = [tr for tr in child.iter() if tr.tag == "tr"]
        else:
            continue
        for tr in trs:
            rows.append([cell for cell in tr.iter() if cell.tag in ("td", "th")])
    return rows


def _table(table: LexborNode, out: _BlockBuilder) -> None:
    caption = table.css_first("caption")
    if caption is not None:
        out.add(_collapse(caption.text()))
    rows = _table_rows(table)
    if rows and max(len(r) for r in rows) <= 1:
        # One cell per row is a layout table (common in email); treat cells as containers.
        for row in rows:
            for cell in row:
                _walk(cell, out)
                out.flush()
        return
    lines = ["\t".join(_collapse(cell.text()) for cell in row) for row in rows]
    lines = [line for line in lines if line.strip()]
    out.blocks.extend(table_blocks(lines))


def _dispatch(child: LexborNode, tag: str, out: _BlockBuilder) -> None:
    """Handle one element child of a container that holds block content."""
    if tag in _INLINE:
        out.inline(child.text())
    elif tag in _TEXT_BLOCKS:
        out.flush()
        text = _collapse(child.text())
        out.add(text.rstrip(_HEADING_MARKERS) if tag == "dt" else text)
    elif tag in _HEADINGS:
        out.flush()
        out.add(_collapse(child.text()).rstrip(_HEADING_MARKERS), "heading", _HEADINGS[tag])
    elif tag == "pre":
        out.flush()
        code = child.text().strip("\n")
        if code.strip():
            out.add(code, "code")
    elif tag == "table":
        out.flush()
        _table(child, out)
    elif tag not in _IGNORED:
        # Block container (div, section, li, dd, blockquote, ...): its boundaries end the
        # current paragraph.
        out.flush()
        _walk(child, out)
        out.flush()


def _walk(node: LexborNode, out: _BlockBuilder) -> None:
    # Python-level work per node is the cost that matters, so whitespace-only text nodes are
    # skipped in C, and a container of inline content becomes one C-level text() call.
    children = list(node.iter(include_text=True, skip_empty=True))
    tags = [child.tag for child in children]
    if all(tag in _INLINE or tag == "-text" for tag in tags):
        out.inline(node.text())
        return
    for child, tag in zip(children, tags, strict=True):
        # The whitespace text that usually separates siblings was skipped, and two text nodes
        # are only adjacent where something between them (a <br>) was removed: keep words apart.
        if tag == "-text":
            out.inline(" " + (child.text_content or ""))
        else:
            if tag in _INLINE:
                out.inline(" ")
            _dispatch(child, tag, out)


def _drop_selector(strip_boilerplate: bool, has_main: bool) -> str:
    tags = list(_ALWAYS_DROP)
    if strip_boilerplate:
        tags += [*_BOILERPLATE, "[role=navigation]"]
        if not has_main:
            tags += _PAGE_CHROME
    # <br> rides along so one tree traversal serves both jobs.
    return ",".join([*tags, "br"])


def _blocks(html: str, strip_boilerplate: bool) -> tuple[str | None, list[Block]]:
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = _collapse(title_node.text()) if title_node is not None else ""

    # First main-content container in document order; one selector means one traversal.
    main = tree.css_first(_MAIN_SELECTOR) if strip_boilerplate else None
    root = main or tree.body or tree.root
    if root is None:
        return title or None, []
    for node in root.css(_drop_selector(strip_boilerplate, main is not None)):
        if node.tag == "br":
            # text() would glue the lines around a <br> together.
            node.replace_with("\n")
        else:
            node.decompose()

    out = _BlockBuilder()
    _walk(root, out)
    out.flush()
    if not title:
        title = next((b.text for b in out.blocks if b.kind == "heading" and b.level == 1), "")
    return title or None, out.blocks


def _expand_self_closed(match: re.Match[str]) -> str:
    tag = match.group(1)
    if tag.lower() in _VOID:
        return match.group(0)
    return f"<{tag}{match.group(2)}></{tag}>"


def _plain_text_blocks(html: str) -> tuple[str | None, list[Block]]:
    """Last resort for pathologically deep documents: one paragraph per text node."""
    from app.core.extract.markup import paragraph_blocks

    tree = LexborHTMLParser(html)
    root = tree.body or tree.root
    text = root.text(separator="\n\n") if root is not None else ""
    return None, [Block(_collapse(b.text)) for b in paragraph_blocks(text) if b.text.strip()]


def html_to_blocks(
    html: str | bytes, *, strip_boilerplate: bool = True, xhtml: bool = False
) -> tuple[str | None, list[Block]]:
    """Convert an HTML document to (title, blocks).

    `strip_boilerplate` drops navigation, sidebars and site chrome, which suits web pages; pass
    False for content documents (email bodies, e-book chapters) where all of it is content.
    `xhtml` makes self-closed elements (<title/>) safe for the HTML parser.
    """
    if isinstance(html, bytes):
        declared = _META_CHARSET.search(html[:4096])
        html = decode_markup(html, declared.group(1).decode("ascii") if declared else None)
    if xhtml and "/>" in html:
        html = _SELF_CLOSED.sub(_expand_self_closed, html)
    try:
        title, blocks = _blocks(html, strip_boilerplate)
        if strip_boilerplate and not any(b.text.strip() for b in blocks):
            # Some sites wrap the whole page in <form> or <header>; rather than lose the page,
            # fall back to keeping everything.
            title, blocks = _blocks(html, False)
    except RecursionError:
        return _plain_text_blocks(html)
    return title, blocks


def extract(path: str | os.PathLike[str]) -> Extracted:
    xhtml = Path(path).suffix.lower() == ".xhtml"
    title, blocks = html_to_blocks(Path(path).read_bytes(), xhtml=xhtml)
    mime = "application/xhtml+xml" if xhtml else "text/html"
    return Extracted(tuple(blocks), mime, title)
