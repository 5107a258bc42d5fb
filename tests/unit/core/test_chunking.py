from app.core.chunking import Chunker
from app.core.extract.types import Block


def doc_text(blocks):
    return "\n\n".join(b.text.strip() for b in blocks if b.text.strip())


def test_offsets_point_into_document_text():
    blocks = [Block("Title", "heading", 1), Block("alpha " * 50), Block("Part", "heading", 2),
              Block("beta gamma. " * 300), Block("tail")]
    text = doc_text(blocks)
    chunks = Chunker(500, 50).chunk(blocks)
    assert len(chunks) > 3
    for c in chunks:
        assert text[c.char_start:c.char_end] == c.text
        assert len(c.text) <= 500
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_headings_kept_as_path_and_sections_start_chunks():
    blocks = [Block("Guide", "heading", 1), Block("x" * 300), Block("Install", "heading", 2),
              Block("y" * 300), Block("Use", "heading", 2), Block("z" * 300)]
    chunks = Chunker(1000, 100).chunk(blocks)
    assert [c.heading for c in chunks] == ["Guide", "Guide › Install", "Guide › Use"]
    assert chunks[1].text.startswith("Install")


def test_chunk_never_spans_pages():
    blocks = [Block("one", page=1), Block("two", page=2), Block("three", page=2)]
    chunks = Chunker(1000, 100).chunk(blocks)
    assert [(c.page, c.text) for c in chunks] == [(1, "one"), (2, "two\n\nthree")]


def test_long_block_overlaps_and_loses_nothing():
    words = [f"w{i}" for i in range(2000)]
    chunks = Chunker(400, 80).chunk([Block(" ".join(words))])
    seen = set()
    for c in chunks:
        seen.update(c.text.split())
    assert seen == set(words)
    # Neighbours share some words (the overlap) but not whole chunks.
    assert set(chunks[0].text.split()) & set(chunks[1].text.split())


def test_empty_blocks_give_no_chunks():
    assert Chunker().chunk([Block("   "), Block("")]) == []
