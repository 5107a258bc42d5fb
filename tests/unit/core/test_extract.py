"""Extraction of every supported format, and the errors for files that cannot be indexed."""

from __future__ import annotations

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from app.core.extract import (
    DEFAULT_PATTERNS,
    SUPPORTED_EXTENSIONS,
    Block,
    Extracted,
    ExtractionError,
    extract_path,
)
from app.core.extract.registry import BUILTIN_FORMATS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FORMATS = FIXTURES / "formats"
BAD = FIXTURES / "bad"
REPO = Path(__file__).resolve().parents[3]
HELPERS = "tests.helpers.parsers"


def _text(extracted: Extracted) -> str:
    return "\n".join(block.text for block in extracted.blocks)


def _headings(extracted: Extracted) -> list[tuple[int, str]]:
    return [(b.level, b.text) for b in extracted.blocks if b.kind == "heading"]


def _assert_readable_reason(error: ExtractionError) -> None:
    reason = error.reason
    assert reason and reason[0].isupper() and reason.rstrip().endswith(".")
    assert "Traceback" not in reason and "\n" not in reason
    assert 'File "' not in reason


# -- every format ------------------------------------------------------------------------------

SAMPLES = [
    "sample.txt",
    "sample.md",
    "sample.rst",
    "sample.py",
    "sample.html",
    "sample.pdf",
    "sample.docx",
    "sample.pptx",
    "sample.xlsx",
    "sample.csv",
    "sample.odt",
    "sample.eml",
    "sample.epub",
]


@pytest.mark.parametrize("name", SAMPLES)
def test_every_format_extracts_its_marker_word(name: str) -> None:
    path = FORMATS / name
    extracted = extract_path(path)
    assert f"zebrafish{path.suffix[1:]}" in _text(extracted)
    assert extracted.mime
    assert all(block.kind in ("heading", "para", "code", "table") for block in extracted.blocks)
    assert path.stat().st_size < 50_000


def test_fixtures_cover_every_format_family() -> None:
    families = {BUILTIN_FORMATS[(FORMATS / name).suffix].target for name in SAMPLES}
    assert families == {fmt.target for fmt in BUILTIN_FORMATS.values()}


def test_markdown_headings_and_code_fence() -> None:
    extracted = extract_path(FORMATS / "sample.md")
    assert _headings(extracted) == [(1, "Zebrafish guide"), (2, "Feeding"), (2, "Setext heading")]
    code = [b.text for b in extracted.blocks if b.kind == "code"]
    assert len(code) == 1 and code[0].startswith("# not a heading")
    assert extracted.title == "Zebrafish Markdown sample"  # from the front matter
    assert "title:" not in _text(extracted)


def test_rst_section_levels_follow_first_appearance() -> None:
    extracted = extract_path(FORMATS / "sample.rst")
    assert _headings(extracted) == [
        (1, "Zebrafish RST"),
        (2, "Introduction"),
        (3, "Details"),
        (2, "Summary"),
    ]
    assert any(b.kind == "code" and "literal block" in b.text for b in extracted.blocks)
    assert extracted.title == "Zebrafish RST"


def test_source_code_blocks_are_code() -> None:
    extracted = extract_path(FORMATS / "sample.py")
    assert {b.kind for b in extracted.blocks} == {"code"}
    assert len(extracted.blocks) == 3


def test_plain_text_paragraphs() -> None:
    extracted = extract_path(FORMATS / "sample.txt")
    assert [b.kind for b in extracted.blocks] == ["para"] * 3


def test_html_keeps_main_content_only() -> None:
    extracted = extract_path(FORMATS / "sample.html")
    text = _text(extracted)
    assert extracted.title == "Zebrafish HTML sample"
    assert _headings(extracted) == [(1, "Zebrafish page"), (2, "Code")]
    for boilerplate in ("Navigation link", "Copyright footer", "Site name", "scriptword", "color"):
        assert boilerplate not in text
    code = next(b for b in extracted.blocks if b.kind == "code")
    assert code.text == 'def hello():\n    return "world"'
    assert any(b.kind == "table" and b.text == "Tank\tLitres\nA\t40" for b in extracted.blocks)


def test_pdf_pages() -> None:
    extracted = extract_path(FORMATS / "sample.pdf")
    assert {b.page for b in extracted.blocks} == {1, 2}
    assert "zebrafishpdf" in " ".join(b.text for b in extracted.blocks if b.page == 1)
    assert "fins" in " ".join(b.text for b in extracted.blocks if b.page == 2)
    assert extracted.title == "Zebrafish PDF sample"
    assert extracted.metadata["pages"] == "2"


def test_docx_headings_and_table() -> None:
    extracted = extract_path(FORMATS / "sample.docx")
    assert _headings(extracted) == [(1, "Zebrafish overview"), (2, "Measurements")]
    tables = [b.text for b in extracted.blocks if b.kind == "table"]
    assert tables == ["Tank\tLitres\nA\t40\nB\t60"]
    # Document order: the paragraph after the table comes after it.
    kinds = [b.kind for b in extracted.blocks]
    assert kinds.index("table") < len(kinds) - 1
    assert extracted.title == "Zebrafish DOCX sample"
    assert extracted.metadata["author"] == "Fixture Generator"


def test_pptx_one_page_per_slide_with_title_heading() -> None:
    extracted = extract_path(FORMATS / "sample.pptx")
    assert [(b.page, b.text) for b in extracted.blocks if b.kind == "heading"] == [
        (1, "Zebrafish introduction"),
        (2, "Results"),
    ]
    assert "Speaker notes for slide one." in _text(extracted)
    assert extracted.metadata["slides"] == "2"


def test_xlsx_one_page_per_sheet() -> None:
    extracted = extract_path(FORMATS / "sample.xlsx")
    assert [(b.page, b.text) for b in extracted.blocks if b.kind == "heading"] == [
        (1, "Fish"),
        (2, "Tanks"),
    ]
    first = next(b for b in extracted.blocks if b.kind == "table" and b.page == 1)
    assert first.text.splitlines()[1] == "zebrafishxlsx\t12\tstriped"
    assert "3.5" in first.text


def test_csv_table_blocks_repeat_the_header(tmp_path: Path) -> None:
    extracted = extract_path(FORMATS / "sample.csv")
    assert [b.kind for b in extracted.blocks] == ["table"]
    assert "guppy\t3\ttropical, freshwater" in extracted.blocks[0].text

    big = tmp_path / "big.csv"
    big.write_text("name;value\n" + "".join(f"row{i};{i}\n" for i in range(120)))
    blocks = extract_path(big).blocks
    assert len(blocks) == 3  # 120 rows in groups of 50
    assert all(b.text.startswith("name\tvalue\n") for b in blocks)


def test_odt_headings_paragraphs_and_table() -> None:
    extracted = extract_path(FORMATS / "sample.odt")
    assert _headings(extracted) == [(1, "Zebrafish notes"), (2, "Details")]
    text = _text(extracted)
    assert "zebrafishodt  appears here\twith a tab." in text  # text:s c="2" is two spaces
    assert "Some spanned text.\nSecond line." in text
    assert any(b.kind == "table" for b in extracted.blocks)
    assert extracted.title == "Zebrafish ODT sample"


def test_eml_subject_metadata_and_attachments() -> None:
    extracted = extract_path(FORMATS / "sample.eml")
    assert extracted.title == "Zebrafish tank schedule"
    assert extracted.blocks[0] == Block("Zebrafish tank schedule", "heading", 1)
    assert "alice@example.org" in extracted.metadata["from"]
    assert "bob@example.org" in extracted.metadata["to"]
    assert extracted.metadata["attachments"] == "schedule.pdf"
    assert "Friday" in _text(extracted)  # the text/plain part was preferred
    assert "%PDF" not in _text(extracted)  # attachments are listed, not extracted


def test_eml_html_only_body(tmp_path: Path) -> None:
    path = tmp_path / "html.eml"
    path.write_bytes(
        b"Subject: Hello\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><p>Only <b>html</b> here</p><script>x()</script></body></html>\r\n"
    )
    extracted = extract_path(path)
    assert "Only html here" in _text(extracted)
    assert "x()" not in _text(extracted)


def test_epub_chapters_in_spine_order() -> None:
    extracted = extract_path(FORMATS / "sample.epub")
    assert extracted.title == "Zebrafish EPUB sample"
    assert _headings(extracted) == [(1, "Chapter One"), (1, "Chapter Two")]
    assert "Chapter 1" not in _text(extracted)  # the navigation document is not content


# -- files that cannot be indexed --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("truncated.pdf", "corrupt", ("PDF", "damaged")),
        ("encrypted.pdf", "encrypted", ("password",)),
        ("binary.txt", "binary", ("binary",)),
        ("empty.txt", "empty", ("empty",)),
        ("scanned.pdf", "no_text", ("scanned", "OCR")),
        ("encrypted.docx", "encrypted", ("password",)),
        ("corrupt.docx", "corrupt", ("damaged",)),
    ],
)
def test_bad_files_raise_the_right_kind(name: str, kind: str, words: tuple[str, ...]) -> None:
    with pytest.raises(ExtractionError) as info:
        extract_path(BAD / name)
    assert info.value.kind == kind
    for word in words:
        assert word in info.value.reason
    _assert_readable_reason(info.value)


def test_ole_header_without_encrypted_stream_is_still_reported_encrypted(tmp_path: Path) -> None:
    for ext in (".docx", ".xlsx", ".pptx"):
        path = tmp_path / f"locked{ext}"
        path.write_bytes(bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 1024)
        with pytest.raises(ExtractionError) as info:
            extract_path(path)
        assert info.value.kind == "encrypted"
        assert ext in info.value.reason


def test_encrypted_odt_and_drm_epub(tmp_path: Path) -> None:
    odt = tmp_path / "locked.odt"
    with zipfile.ZipFile(odt, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("META-INF/manifest.xml", "<manifest><encryption-data/></manifest>")
        zf.writestr("content.xml", b"\x8a\x01 scrambled")
    epub = tmp_path / "drm.epub"
    with zipfile.ZipFile(FORMATS / "sample.epub") as src, zipfile.ZipFile(epub, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr(
            "META-INF/encryption.xml",
            '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<EncryptedData><EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            "</EncryptedData></encryption>",
        )
    for path in (odt, epub):
        with pytest.raises(ExtractionError) as info:
            extract_path(path)
        assert info.value.kind == "encrypted"
        _assert_readable_reason(info.value)


def test_unsupported_vanished_too_large_and_no_text(tmp_path: Path) -> None:
    odd = tmp_path / "archive.xyz"
    odd.write_text("data")
    cases = {
        "unsupported": lambda: extract_path(odd),
        "vanished": lambda: extract_path(tmp_path / "gone.txt"),
        "too_large": lambda: extract_path(FORMATS / "sample.txt", max_bytes=10),
    }
    blank = tmp_path / "blank.md"
    blank.write_text("\n   \n\t\n")
    cases["no_text"] = lambda: extract_path(blank)
    cases["unsupported "] = lambda: extract_path(tmp_path)  # a folder named like nothing
    for kind, call in cases.items():
        with pytest.raises(ExtractionError) as info:
            call()
        assert info.value.kind == kind.strip()
        _assert_readable_reason(info.value)


def test_parser_exceptions_become_corrupt_with_the_file_type_named(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.4 whatever")
    with pytest.raises(ExtractionError) as info:
        extract_path(path, plugins={".pdf": f"{HELPERS}:boom"})
    assert info.value.kind == "corrupt"
    assert info.value.reason.startswith("This PDF file appears to be damaged or truncated (")
    assert "ValueError: unexpected byte 0xff" in info.value.reason
    _assert_readable_reason(info.value)


@pytest.mark.parametrize(
    ("plugin", "kind"), [("deny", "unreadable"), ("vanish", "vanished"), ("io_error", "unreadable")]
)
def test_os_errors_inside_parsers(tmp_path: Path, plugin: str, kind: str) -> None:
    path = tmp_path / "file.txt"
    path.write_text("text")
    with pytest.raises(ExtractionError) as info:
        extract_path(path, plugins={".txt": f"{HELPERS}:{plugin}"})
    assert info.value.kind == kind
    _assert_readable_reason(info.value)


def test_plugins_override_builtins_and_bad_plugins_are_internal(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_text("plain words")
    extracted = extract_path(path, plugins={"TXT": f"{HELPERS}:ok"})
    assert extracted.title == "note"  # the plugin's answer, not the built-in's (None)
    with pytest.raises(ExtractionError) as info:
        extract_path(path, plugins={".txt": "no_such_module_xyz:extract"})
    assert info.value.kind == "internal"
    _assert_readable_reason(info.value)


# -- decoding and splitting details ------------------------------------------------------------


def test_text_decoding_fallbacks(tmp_path: Path) -> None:
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("\ufeffhéllo wörld".encode("utf-16-le"))
    assert _text(extract_path(utf16)) == "héllo wörld"
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Café crème à la française, déjà vu, très élégant.".encode("cp1252") * 5)
    assert "crème" in _text(extract_path(latin))
    noisy = tmp_path / "noisy.log"
    noisy.write_bytes(bytes(range(1, 32)) * 50)
    with pytest.raises(ExtractionError) as info:
        extract_path(noisy)
    assert info.value.kind == "binary"


def test_markdown_edge_cases() -> None:
    from app.core.extract.markup import markdown_blocks

    blocks, _ = markdown_blocks(
        "#hashtag is text\n\n## Closed ##\n\n~~~\n# inside\n```\n~~~\n\n***\n\nText\n===\n\n"
        "```\nunterminated # fence"
    )
    assert [(b.kind, b.level, b.text) for b in blocks] == [
        ("para", 0, "#hashtag is text"),
        ("heading", 2, "Closed"),
        ("code", 0, "# inside\n```"),
        ("heading", 1, "Text"),
        ("code", 0, "unterminated # fence"),
    ]


def test_long_markdown_stays_fast() -> None:
    import time

    from app.core.extract.markup import markdown_blocks, paragraph_blocks

    section = "# Title\n\nSome paragraph text here.\nMore of it.\n\n```\ncode\n```\n\n"
    text = section * 10_000  # ~600 KB, 90k lines: quadratic behaviour would take minutes
    start = time.perf_counter()
    blocks, _ = markdown_blocks(text)
    paragraph_blocks(text)
    assert len(blocks) == 30_000
    assert time.perf_counter() - start < 3.0


def test_html_fallbacks() -> None:
    from app.core.extract.html import html_to_blocks

    title, blocks = html_to_blocks(b"<body><form><h1>All in a form</h1><p>a<br>b</p></form></body>")
    assert title == "All in a form"  # no <title>: first h1; the form was not thrown away
    assert [b.text for b in blocks] == ["All in a form", "a b"]
    _, blocks = html_to_blocks(
        "<body><div role='navigation'>menu</div><article><header><h1>Post</h1></header>"
        "<aside>ad</aside><p>Body</p></article></body>"
    )
    assert [b.text for b in blocks] == ["Post", "Body"]


def test_xhtml_self_closed_elements_and_deep_nesting() -> None:
    from app.core.extract.html import html_to_blocks

    page = (
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title/></head>'
        '<body><p>One<a id="n1"/> two</p><br/><div class="x"/><p>Three</p></body></html>'
    )
    assert html_to_blocks(page, xhtml=True)[1] == [Block("One two"), Block("Three")]
    deep = "<div>" * 5000 + "deep text" + "</div>" * 5000
    assert [b.text for b in html_to_blocks(deep)[1]] == ["deep text"]


# -- registry ----------------------------------------------------------------------------------


def test_supported_extensions_and_patterns() -> None:
    assert ".pdf" in SUPPORTED_EXTENSIONS and ".md" in SUPPORTED_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in SUPPORTED_EXTENSIONS)
    assert set(DEFAULT_PATTERNS) == {f"*{ext}" for ext in SUPPORTED_EXTENSIONS}
    modules = {fmt.target.partition(":")[0] for fmt in BUILTIN_FORMATS.values()}
    for name in modules:
        module = importlib.import_module(name)
        mapped = {e for e, f in BUILTIN_FORMATS.items() if f.target.startswith(name + ":")}
        assert mapped == module.EXTENSIONS, name


def test_registry_import_is_lazy() -> None:
    heavy = ["pypdfium2", "selectolax", "docx", "pptx", "openpyxl", "charset_normalizer"]
    code = (
        "import sys, app.core.extract, app.core.extract.sandbox\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
