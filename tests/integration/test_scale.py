"""Maintenance on a big index of near-identical chunks (the same boilerplate in thousands of
files): the vector index must not fail every pass, and a failure must never fail the pass or
stop compaction."""

from __future__ import annotations

import json
import sqlite3

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from app.core import store as store_module
from app.core.records import document_row
from app.core.store import chunks_schema, documents_schema

N_DOCS, PER_DOC = 2400, 50  # 120,000 chunks


def plant_identical_chunks(index_dir, source_id="bulk"):
    """2,400 committed documents of 50 chunks each, every chunk the same text and vector."""
    db = lancedb.connect(str(index_dir))
    chunks = db.open_table("document_chunks")
    model = chunks.schema.metadata[b"lancedb_sync.embed_model"].decode()
    dim = chunks.schema.field("vector").type.list_size
    schema = chunks_schema(dim, model)
    vector = np.full(dim, 1 / np.sqrt(dim), dtype=np.float32)
    n = N_DOCS * PER_DOC
    uids = [f"{source_id}:/generated/doc{i}.md" for i in range(N_DOCS)]
    cols = {
        "chunk_id": [f"{i:032x}" for i in range(n)],
        "doc_uid": [uids[i // PER_DOC] for i in range(n)],
        "source_id": [source_id] * n, "ordinal": [i % PER_DOC for i in range(n)],
        "text": ["Terms and conditions apply. All rights reserved."] * n, "page": [None] * n,
        "heading": [""] * n, "char_start": [0] * n, "char_end": [48] * n,
        "text_hash": ["0" * 32] * n, "content_hash": ["c" * 64] * n,
    }
    arrays = {k: pa.array(v, schema.field(k).type) for k, v in cols.items()}
    arrays["vector"] = pa.FixedSizeListArray.from_arrays(
        pa.array(np.tile(vector, n), pa.float32()), dim)
    chunks.add(pa.table([arrays[k] for k in schema.names], schema=schema))
    rows = [document_row(doc_uid=u, source_id=source_id, source_type="local",
                         native_id=u.split(":", 1)[1], content_hash="c" * 64,
                         chunk_count=PER_DOC, version_token="t", embed_model=model)
            for u in uids]
    db.open_table("processed_documents").add(pa.Table.from_pylist(rows,
                                                                  schema=documents_schema()))


def vector_indexed(home) -> bool:
    chunks = lancedb.connect(str(home / "data" / "index")).open_table("document_chunks")
    return any(i.columns == ["vector"] for i in chunks.list_indices())


@pytest.mark.slow
def test_120k_identical_chunks_never_break_a_pass(cli, home, docs, monkeypatch):
    (docs / "real.md").write_text("# Real\n\nA note about kittiwakes.\n")
    cli.ok("sources", "add", "local", str(docs), "--id", "d")
    cli.ok("sync")
    plant_identical_chunks(home / "data" / "index")

    # First, a vector index that cannot be built at all: the pass still succeeds, says so,
    # and compaction still runs.
    calls = []

    def cannot_train(self, partitions, sub_vectors):
        calls.append(partitions)
        raise RuntimeError("k-means could only form 0 non-empty clusters (simulated)")

    real_create = store_module.Store._create_ivf_pq
    monkeypatch.setattr(store_module.Store, "_create_ivf_pq", cannot_train)
    (docs / "second.md").write_text("# Second\n\nA note about fulmars.\n")
    r = cli("sync", "--json")
    assert r.code == 0, r.err
    rep = json.loads(r.out)[0]
    assert rep["added"] == 1 and any("vector_index" in e for e in rep["maintenance_errors"])
    assert calls
    chunks = lancedb.connect(str(home / "data" / "index")).open_table("document_chunks")
    fts = next(i for i in chunks.list_indices() if i.columns == ["text"])
    assert chunks.index_stats(fts.name).num_unindexed_rows == 0  # optimize ran regardless
    assert "Index upkeep failed" in cli.ok("status").out
    assert cli("check").code == 0

    # Not retried on every pass: it waits (an hour, or 10% more chunks).
    calls.clear()
    (docs / "third.md").write_text("# Third\n\nA note about skuas.\n")
    assert json.loads(cli.ok("sync", "--json").out)[0]["added"] == 1
    assert calls == []

    # The real thing: the same chunks, once the back-off has passed. Lance finds fewer
    # distinct clusters than partitions; the index is built with as many as the data has.
    monkeypatch.setattr(store_module.Store, "_create_ivf_pq", real_create)

    with sqlite3.connect(home / "data" / "state" / "sync-state.sqlite3") as db:
        record = json.loads(db.execute("SELECT value FROM meta WHERE key='maintenance'")
                            .fetchone()[0])
        record["vector_retry_at"] = 0
        db.execute("UPDATE meta SET value=? WHERE key='maintenance'", (json.dumps(record),))
    r = cli("sync", "--json")
    assert r.code == 0, r.err
    assert vector_indexed(home)
    assert "Index upkeep failed" not in cli.ok("status").out
    hits = json.loads(cli.ok("search", "kittiwakes", "--json").out)
    assert hits and hits[0]["uri"].endswith("real.md")
    assert cli("check").code == 0
