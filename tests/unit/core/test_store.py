"""The store's commit protocol, merge counts, repair and maintenance on a real LanceDB."""

import numpy as np
import pyarrow as pa
import pytest

from app.core import store as store_mod
from app.core.hashing import chunk_id, hash_text
from app.core.store import Store, chunks_schema, document_row

DIM = 8


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "idx"), "docs", "chunks", model_id="test/m", dim=DIM)


def chunk_table(uid, texts, content_hash="h1"):
    rows = []
    for i, t in enumerate(texts):
        th = hash_text(t)
        rows.append({"chunk_id": chunk_id(uid, th, 0), "doc_uid": uid, "source_id": "s",
                     "ordinal": i, "text": t, "vector": np.full(DIM, i + 1, np.float32).tolist(),
                     "page": None, "heading": "", "char_start": 0, "char_end": len(t),
                     "text_hash": th, "content_hash": content_hash})
    return pa.Table.from_pylist(rows, schema=chunks_schema(DIM, "test/m"))


def doc(uid, n, content_hash="h1"):
    return document_row(doc_uid=uid, source_id="s", source_type="local", native_id=uid,
                        content_hash=content_hash, chunk_count=n)


def test_commit_counts_and_stale_chunks_replaced(store):
    res = store.commit_batch([doc("a", 3), doc("b", 1)],
                             pa.concat_tables([chunk_table("a", ["x", "y", "z"]),
                                               chunk_table("b", ["q"])]),
                             new_doc_uids=["a", "b"])
    assert (res.chunks_inserted, res.documents_inserted) == (4, 2)
    # "a" changes: keeps x, drops y and z, adds w. Unchanged b is untouched.
    res = store.commit_batch([doc("a", 2, "h2")], chunk_table("a", ["x", "w"], "h2"),
                             replace_chunks_of=["a"])
    assert (res.chunks_inserted, res.chunks_updated, res.chunks_deleted) == (1, 1, 2)
    assert res.documents_updated == 1
    texts = sorted(store.chunks.to_arrow().column("text").to_pylist())
    assert texts == ["q", "w", "x"]


def test_removed_documents_lose_rows_and_chunks(store):
    store.commit_batch([doc("a", 1), doc("b", 1)],
                       pa.concat_tables([chunk_table("a", ["x"]), chunk_table("b", ["y"])]),
                       new_doc_uids=["a", "b"])
    res = store.commit_batch([], None, remove_doc_uids=["a"])
    assert res.documents_deleted == 1 and res.chunks_deleted == 1
    assert store.documents.to_arrow().column("doc_uid").to_pylist() == ["b"]


def test_merge_count_mismatch_is_an_error(store, monkeypatch):
    class Lying:
        num_inserted_rows = num_updated_rows = num_deleted_rows = 0
        version = 1

    class Builder:
        def __getattr__(self, name):
            return lambda *a, **k: Lying() if name == "execute" else self

    store.commit_batch([doc("a", 1)], chunk_table("a", ["x"]), new_doc_uids=["a"])
    monkeypatch.setattr(store.documents, "merge_insert", lambda key: Builder())
    with pytest.raises(store_mod.StoreIntegrityError, match="expected 1"):
        store.commit_batch([doc("a", 1)], None)


def test_repair_removes_orphans_and_flags_mismatches(store):
    store.commit_batch([doc("a", 1)], chunk_table("a", ["x"]), new_doc_uids=["a"])
    # A crash after step 1: chunks of "b" with no row; chunks of "a" of a newer version.
    store.chunks.add(chunk_table("b", ["orphan"]))
    store.chunks.add(chunk_table("a", ["newer"], "h2"))
    report = store.repair()
    assert report.orphan_chunks_deleted == 1
    assert report.documents_to_redo == ["a"]
    assert "orphan" not in store.chunks.to_arrow().column("text").to_pylist()


def test_maintain_builds_indexes_only_on_data_and_vector_index_past_threshold(store,
                                                                              monkeypatch):
    assert store.maintain() == {}  # empty table: no index built
    texts = [f"text number {i}" for i in range(600)]
    rng = np.random.default_rng(0)
    table = chunk_table("a", texts)
    vec = pa.FixedSizeListArray.from_arrays(
        pa.array(rng.random(600 * DIM, dtype=np.float32)), DIM)
    table = table.set_column(table.schema.get_field_index("vector"), "vector", vec)
    store.commit_batch([doc("a", 600)], table, new_doc_uids=["a"])
    monkeypatch.setattr(store_mod, "VECTOR_INDEX_MIN_ROWS", 500)
    actions = store.maintain()
    assert actions["fts_index"] == "created" and actions["vector_index"] == "created"
    kinds = {tuple(i.columns): i.index_type for i in store.chunks.list_indices()}
    assert kinds[("vector",)] == "IvfPq" and kinds[("text",)] == "FTS"
    hits = store.chunks.search(rng.random(DIM, dtype=np.float32)).limit(3).to_list()
    assert len(hits) == 3


def test_newer_schema_refused(tmp_path):
    import lancedb

    db = lancedb.connect(str(tmp_path / "idx"))
    schema = store_mod.documents_schema().with_metadata({store_mod.META_SCHEMA: b"99"})
    db.create_table("docs", schema=schema)
    with pytest.raises(store_mod.StoreError, match="newer LanceDB Sync"):
        Store(str(tmp_path / "idx"), "docs", "chunks", model_id="m", dim=DIM)


@pytest.mark.filterwarnings("ignore:optimize\\(cleanup_older_than=0\\)")
def test_versions_and_fragments_stay_bounded(store, monkeypatch):
    from datetime import timedelta

    monkeypatch.setattr(store_mod, "MAX_VERSIONS", 12)
    monkeypatch.setattr(store_mod, "KEEP_VERSIONS_FOR", timedelta(0))
    for i in range(20):
        store.commit_batch([doc(f"d{i}", 1)], chunk_table(f"d{i}", [f"text {i}"]),
                           new_doc_uids=[f"d{i}"])
        store.maintain()
    stats = store.version_stats()
    assert stats["chunks_versions"] <= 12 and stats["documents_versions"] <= 12
    assert stats["chunks_fragments"] < 20
    assert store.chunks.count_rows() == 20
