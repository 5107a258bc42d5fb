"""Checks that an index obeys the commit protocol, written independently of the app's own
`check`: every document row once, every chunk id once, no chunk without its document's current
version, every indexed document with exactly its counted chunks; and a comparison with the index
a clean run builds from the same files."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

DOCS, CHUNKS = "processed_documents", "document_chunks"


def read_index(index_dir: Path) -> tuple[list[dict], list[dict]]:
    import lancedb

    db = lancedb.connect(str(index_dir))
    names = set(db.list_tables().tables)
    if DOCS not in names:
        return [], []
    docs = db.open_table(DOCS).search().select(
        ["doc_uid", "status", "content_hash", "chunk_count", "version_token", "native_id", "uri"]) \
        .limit(None).to_arrow().to_pylist()
    chunks = db.open_table(CHUNKS).search() \
        .select(["chunk_id", "doc_uid", "content_hash"]).limit(None).to_arrow().to_pylist()
    return docs, chunks


def assert_consistent(index_dir: Path) -> list[dict]:
    """Returns the document rows after checking them against the chunks."""
    docs, chunks = read_index(index_dir)
    ids = [c["chunk_id"] for c in chunks]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"{len(dupes)} chunk ids are stored twice"
    uids = [d["doc_uid"] for d in docs]
    assert len(uids) == len(set(uids)), "a document row is stored twice"
    rows = {d["doc_uid"]: d for d in docs}
    per_doc: Counter[str] = Counter()
    for c in chunks:
        row = rows.get(c["doc_uid"])
        assert row is not None, f"chunk of {c['doc_uid']} has no document row"
        assert row["status"] == "indexed", f"chunk of {row['status']} document {c['doc_uid']}"
        assert c["content_hash"] == row["content_hash"], f"stale chunk of {c['doc_uid']}"
        per_doc[c["doc_uid"]] += 1
    for d in docs:
        if d["status"] == "indexed":
            assert per_doc.get(d["doc_uid"], 0) == d["chunk_count"] > 0, d["doc_uid"]
    return docs


def index_state(index_dir: Path) -> tuple[dict[str, tuple], set[str]]:
    """What two runs over the same files must agree on: per document its status, content hash
    and chunk count; and the set of chunk ids."""
    docs, chunks = read_index(index_dir)
    return ({d["doc_uid"]: (d["status"], d["content_hash"], d["chunk_count"]) for d in docs},
            {c["chunk_id"] for c in chunks})


def assert_same_index(index_dir: Path, truth_dir: Path) -> None:
    assert_consistent(index_dir)
    docs, chunk_ids = index_state(index_dir)
    t_docs, t_chunk_ids = index_state(truth_dir)
    assert set(docs) == set(t_docs), (sorted(set(docs) ^ set(t_docs)))[:5]
    differ = [u for u in docs if docs[u] != t_docs[u]]
    assert not differ, [(u, docs[u], t_docs[u]) for u in differ[:3]]
    assert chunk_ids == t_chunk_ids, "chunks differ from a clean run"


def assert_mirror_matches(home: Path) -> None:
    """The sync state's mirror holds exactly the documents table's rows."""
    docs, _ = read_index(home / "data" / "index")
    with sqlite3.connect(home / "data" / "state" / "sync-state.sqlite3") as db:
        mirror = {r[0]: r[1:] for r in db.execute(
            "SELECT doc_uid, status, content_hash, chunk_count FROM docs")}
    table = {d["doc_uid"]: (d["status"], d["content_hash"], d["chunk_count"]) for d in docs}
    assert mirror == table
