"""Checks that an index obeys the commit protocol: every document row's chunks are all there,
no chunk belongs to no document, no chunk is stored twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def read_index(index_dir: Path) -> tuple[list[dict], list[dict]]:
    import lancedb

    db = lancedb.connect(str(index_dir))
    names = {t for t in db.list_tables().tables}
    if "processed_documents" not in names:
        return [], []
    docs = db.open_table("processed_documents").to_arrow().to_pylist()
    chunks = db.open_table("document_chunks").search() \
        .select(["chunk_id", "doc_uid"]).limit(None).to_arrow().to_pylist()
    return docs, chunks


def assert_consistent(index_dir: Path) -> list[dict]:
    """Returns the document rows after checking them against the chunks."""
    docs, chunks = read_index(index_dir)
    ids = [c["chunk_id"] for c in chunks]
    assert len(ids) == len(set(ids)), "a chunk is stored twice"
    per_doc = Counter(c["doc_uid"] for c in chunks)
    uids = {d["doc_uid"] for d in docs}
    assert len(uids) == len(docs), "a document row is stored twice"
    orphans = set(per_doc) - uids
    assert not orphans, f"{len(orphans)} documents' chunks have no document row"
    for d in docs:
        if d["status"] == "indexed":
            assert per_doc.get(d["doc_uid"], 0) == d["chunk_count"], d["doc_uid"]
    return docs
