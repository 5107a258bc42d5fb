"""The LanceDB index: schema, the commit protocol, repair, maintenance and search.

Commit protocol, per batch of documents (see docs/data-model.md):
  1. chunks: one merge_insert on `chunk_id` that inserts the batch's new chunks, refreshes the
     ones it keeps, and deletes the stale chunks of exactly those documents
     (`when_not_matched_by_source_delete("doc_uid IN (…)")`) — one atomic version;
  2. documents: one merge_insert on `doc_uid`; the document row is the commit marker;
  3. chunks of documents that are gone are deleted last, after their rows.
A crash between steps leaves chunks whose document row is missing or names another content hash;
`repair()` finds those and makes the next pass redo exactly those documents.

Only one writer (one process, one thread) writes; readers never block it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import FTS, BTree, IvfPq

from app.core.errors import one_line
from app.core.integrity import IntegrityReport, inspect_index
from app.core.records import (  # noqa: F401  (re-exported)
    SCHEMA_VERSION,
    document_row,
    now_utc,
)

log = logging.getLogger(__name__)

META_SCHEMA = b"lancedb_sync.schema_version"
META_MODEL = b"lancedb_sync.embed_model"
META_DIM = b"lancedb_sync.embed_dim"

# Brute-force vector search stays under ~50 ms up to this many chunks on a laptop core.
VECTOR_INDEX_MIN_ROWS = 100_000
# Compaction thresholds: small fragments and versions accumulate with every batch commit.
COMPACT_FRAGMENTS = 64
MAX_VERSIONS = 200
UNINDEXED_MIN_ROWS = 2000
UNINDEXED_FRACTION = 0.05
# Old versions serve readers that opened the table before a commit; minutes are plenty.
KEEP_VERSIONS_FOR = timedelta(minutes=10)
PRUNE_ALL_KEEP = timedelta(minutes=1)


_CLUSTERS_FORMED = re.compile(r"could only form (\d+) non-empty clusters")


class StoreError(Exception):
    """The index could not be read or written."""


class StoreIntegrityError(StoreError):
    """A commit did not change the rows it should have (never silently accepted)."""


def documents_schema() -> pa.Schema:
    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field("doc_uid", pa.string(), nullable=False),
            pa.field("source_id", pa.string(), nullable=False),
            pa.field("source_type", pa.string(), nullable=False),
            pa.field("native_id", pa.string(), nullable=False),
            pa.field("uri", pa.string()),
            pa.field("title", pa.string()),
            pa.field("mime", pa.string()),
            pa.field("size", pa.int64()),
            pa.field("modified_at", ts),
            pa.field("version_token", pa.string()),
            pa.field("content_hash", pa.string()),
            pa.field("status", pa.string(), nullable=False),
            pa.field("error", pa.string()),
            pa.field("chunk_count", pa.int32()),
            pa.field("embed_model", pa.string()),
            pa.field("indexed_at", ts),
            pa.field("metadata", pa.string()),
        ],
        metadata={META_SCHEMA: str(SCHEMA_VERSION).encode()},
    )


def chunks_schema(dim: int, model_id: str) -> pa.Schema:
    return pa.schema(
        [
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("doc_uid", pa.string(), nullable=False),
            pa.field("source_id", pa.string(), nullable=False),
            pa.field("ordinal", pa.int32()),
            pa.field("text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
            pa.field("page", pa.int32()),
            pa.field("heading", pa.string()),
            pa.field("char_start", pa.int32()),
            pa.field("char_end", pa.int32()),
            pa.field("text_hash", pa.string()),
            pa.field("content_hash", pa.string()),
        ],
        metadata={
            META_SCHEMA: str(SCHEMA_VERSION).encode(),
            META_MODEL: model_id.encode(),
            META_DIM: str(dim).encode(),
        },
    )


def sql_in(values: Iterable[str]) -> str:
    return "(" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


@dataclass(slots=True)
class CommitResult:
    documents_version: int
    chunks_inserted: int = 0
    chunks_updated: int = 0
    chunks_deleted: int = 0
    documents_inserted: int = 0
    documents_updated: int = 0
    documents_deleted: int = 0


@dataclass(slots=True)
class RepairReport:
    orphan_chunks_deleted: int = 0
    duplicate_chunks_removed: int = 0
    documents_to_redo: list[str] = field(default_factory=list)
    found: IntegrityReport | None = None


class Store:
    def __init__(self, uri: str, documents_table: str, chunks_table: str, *, model_id: str,
                 dim: int, storage_options: Mapping[str, str] | None = None,
                 read_only: bool = False) -> None:
        self.uri = uri
        self.documents_name = documents_table
        self.chunks_name = chunks_table
        try:
            self.db = lancedb.connect(uri, storage_options=dict(storage_options or {}) or None)
            existing = set(self.db.list_tables().tables)
        except Exception as exc:
            raise StoreError(f"Cannot open the index at {uri}: {exc}") from exc
        if read_only and not {documents_table, chunks_table} <= existing:
            raise StoreError(f"There is no index at {uri} yet. Add a source and run a sync.")
        if documents_table in existing:
            self.documents = self.db.open_table(documents_table)
        else:
            self.documents = self.db.create_table(documents_table, schema=documents_schema())
        side = chunks_table + "__reembed"
        if chunks_table not in existing and side in existing and not read_only:
            # A re-embed died after dropping the old chunks: finish the swap from the side table.
            self.db.create_table(chunks_table, data=self.db.open_table(side).to_arrow())
            self.db.drop_table(side)
            existing.add(chunks_table)
        if chunks_table in existing:
            self.chunks = self.db.open_table(chunks_table)
        else:
            self.chunks = self.db.create_table(chunks_table, schema=chunks_schema(dim, model_id))
        self._check_schema_version()

    # -- identity -------------------------------------------------------------------------------

    def _check_schema_version(self) -> None:
        for table in (self.documents, self.chunks):
            meta = table.schema.metadata or {}
            version = int(meta.get(META_SCHEMA, b"1"))
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"The index was written by a newer LanceDB Sync (schema {version}; this one "
                    f"reads up to {SCHEMA_VERSION}). Update the app.")
            # Version 1 is the first schema: there is nothing to migrate yet. Later versions add
            # their forward migrations here, keyed on `version`.

    @property
    def index_model(self) -> tuple[str, int]:
        meta = self.chunks.schema.metadata or {}
        dim = self.chunks.schema.field("vector").type.list_size
        return meta.get(META_MODEL, b"").decode(), int(dim)

    @property
    def documents_version(self) -> int:
        return int(self.documents.version)

    # -- writes ---------------------------------------------------------------------------------

    def commit_batch(
        self,
        documents: Sequence[Mapping[str, Any]],
        chunks: pa.Table | None,
        *,
        replace_chunks_of: Sequence[str] = (),
        new_doc_uids: Sequence[str] = (),
        remove_doc_uids: Sequence[str] = (),
        fault: Callable[[str], None] = lambda point: None,
    ) -> CommitResult:
        """Commit one batch following the protocol in the module docstring.

        `replace_chunks_of`: documents whose chunk set is replaced by the rows in `chunks` (their
        rows not in `chunks` are deleted). `new_doc_uids`: documents never seen before — their
        chunks are appended without a merge (no old rows can exist once `repair()` has run).
        `remove_doc_uids`: documents that are gone; their rows and chunks are deleted.
        `fault` is called with "chunks" after the chunk write and "documents" between the
        document write and the deletion of removed documents' chunks (app/core/faults.py).
        """
        result = CommitResult(documents_version=self.documents_version)
        if chunks is not None and chunks.num_rows:
            new = set(new_doc_uids)
            if new:
                # Replaying a batch must be idempotent even if chunks of these "new" documents
                # are already there (a commit that failed after its chunks and before repair):
                # such documents go through the merge, never a blind append.
                present = self._doc_uids_with_chunks(sorted(new))
                if present:
                    new -= present
                    replace_chunks_of = [*replace_chunks_of, *sorted(present)]
            uids = chunks.column("doc_uid").to_pylist()
            flags = [u in new for u in uids]
            # A filter copies the table; a batch that is all new or all replaced (the usual
            # case, and the one with the biggest documents) is passed on as it is.
            if all(flags):
                appended, merged = chunks, chunks.slice(0, 0)
            elif not any(flags):
                appended, merged = chunks.slice(0, 0), chunks
            else:
                mask = pa.array(flags)
                appended = chunks.filter(mask)
                merged = chunks.filter(pc.invert(mask))
            if appended.num_rows:
                self.chunks.add(appended)
                result.chunks_inserted += appended.num_rows
            if merged.num_rows == 0 and replace_chunks_of:
                before = self.chunks.count_rows()
                self.chunks.delete(f"doc_uid IN {sql_in(replace_chunks_of)}")
                result.chunks_deleted += before - self.chunks.count_rows()
            elif merged.num_rows:
                result_m = self._merge_chunks(merged, replace_chunks_of)
                result.chunks_inserted += result_m.num_inserted_rows
                result.chunks_updated += result_m.num_updated_rows
                result.chunks_deleted += result_m.num_deleted_rows
                expected = merged.num_rows
                if result_m.num_inserted_rows + result_m.num_updated_rows != expected:
                    raise StoreIntegrityError(
                        f"chunk merge wrote {result_m.num_inserted_rows}+"
                        f"{result_m.num_updated_rows} rows, expected {expected}")
        elif replace_chunks_of:
            self.chunks.delete(f"doc_uid IN {sql_in(replace_chunks_of)}")
        fault("chunks")
        if documents or remove_doc_uids:
            table = pa.Table.from_pylist([dict(d) for d in documents], schema=documents_schema())
            builder = self.documents.merge_insert("doc_uid").when_matched_update_all() \
                .when_not_matched_insert_all()
            if remove_doc_uids:
                builder = builder.when_not_matched_by_source_delete(
                    f"doc_uid IN {sql_in(remove_doc_uids)}")
            res = builder.execute(table)
            if res.num_inserted_rows + res.num_updated_rows != table.num_rows:
                raise StoreIntegrityError(
                    f"document merge wrote {res.num_inserted_rows}+{res.num_updated_rows} rows, "
                    f"expected {table.num_rows}")
            result.documents_inserted = res.num_inserted_rows
            result.documents_updated = res.num_updated_rows
            result.documents_deleted = res.num_deleted_rows
            result.documents_version = int(res.version)
        if remove_doc_uids:
            fault("documents")
            before = self.chunks.count_rows()
            self.chunks.delete(f"doc_uid IN {sql_in(remove_doc_uids)}")
            result.chunks_deleted += before - self.chunks.count_rows()
        return result

    def _doc_uids_with_chunks(self, uids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(uids), 500):
            part = uids[i:i + 500]
            where = f"doc_uid IN {sql_in(part)}"
            if self.chunks.count_rows(where):
                rows = self.chunks.search().where(where).select(["doc_uid"]).limit(None) \
                    .to_arrow()
                found.update(rows.column("doc_uid").to_pylist())
        return found

    def _merge_chunks(self, rows: pa.Table, replace_chunks_of: Sequence[str]):
        builder = self.chunks.merge_insert("chunk_id").when_matched_update_all() \
            .when_not_matched_insert_all()
        if replace_chunks_of:
            builder = builder.when_not_matched_by_source_delete(
                f"doc_uid IN {sql_in(replace_chunks_of)}")
        return builder.execute(rows)

    def swap_chunks_from(self, side_name: str) -> None:
        """Replace the chunks table with a complete side table (see app/core/reembed.py)."""
        side = self.db.open_table(side_name)
        data = side.to_arrow()
        self.db.drop_table(self.chunks_name)
        self.chunks = self.db.create_table(self.chunks_name, data=data)
        self.db.drop_table(side_name)

    def update_documents(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Rewrite document rows only (e.g. a touched file's new token). Returns the new version."""
        if not rows:
            return self.documents_version
        table = pa.Table.from_pylist([dict(r) for r in rows], schema=documents_schema())
        res = self.documents.merge_insert("doc_uid").when_matched_update_all().execute(table)
        if res.num_updated_rows != table.num_rows:
            raise StoreIntegrityError(
                f"document update changed {res.num_updated_rows} rows, expected {table.num_rows}")
        return int(res.version)

    def delete_source(self, source_id: str,
                      fault: Callable[[str], None] = lambda point: None) -> int:
        """Delete a source's documents, then its chunks (so an interruption leaves orphans,
        which repair removes, never document rows without their chunks)."""
        cond = f"source_id = '{source_id.replace(chr(39), chr(39) * 2)}'"
        n = self.documents.count_rows(cond)
        self.documents.delete(cond)
        fault("purge-after-documents")
        self.chunks.delete(cond)
        return n

    # -- reads ----------------------------------------------------------------------------------

    def document_rows(self, columns: Sequence[str] | None = None,
                      where: str | None = None) -> pa.Table:
        q = self.documents.search()
        if where:
            q = q.where(where)
        if columns:
            q = q.select(list(columns))
        return q.limit(None).to_arrow()

    def chunks_of(self, doc_uid: str) -> pa.Table:
        q = self.chunks.search().where(f"doc_uid = '{doc_uid.replace(chr(39), chr(39) * 2)}'")
        return q.limit(None).to_arrow()

    def counts(self) -> dict[str, int]:
        return {"documents": self.documents.count_rows(), "chunks": self.chunks.count_rows()}

    # -- repair and maintenance ----------------------------------------------------------------

    def integrity_columns(self) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        """The columns `app.core.integrity.inspect_index` reads, from both tables."""
        docs = self.documents.search().select(
            ["doc_uid", "status", "content_hash", "chunk_count"]).limit(None).to_arrow()
        chunks = self.chunks.search().select(["chunk_id", "doc_uid", "content_hash"]) \
            .limit(None).to_arrow()
        return docs.to_pydict(), chunks.to_pydict()

    def inspect(self, mirror: Mapping[str, Mapping[str, Any]] | None = None) -> IntegrityReport:
        docs, chunks = self.integrity_columns()
        return inspect_index(docs, chunks, mirror)

    def repair(self, fault: Callable[[str], None] = lambda point: None) -> RepairReport:
        """Undo what an interrupted or failed operation can leave behind; never loses a
        committed document.

        - a document stored twice keeps its newest row, marked for redo;
        - a chunk id stored twice keeps one copy (the document is redone as well);
        - chunks with no document row, or of a document marked failed or skipped, are deleted
          (they belong to a batch whose commit marker was never written, or to a version that
          was replaced);
        - an indexed document whose chunks carry another content hash, or whose chunk count
          differs from its row, is returned so the caller redoes it, even if its bytes did not
          change; its chunks stay until then, so search never loses it.
        """
        found = self.inspect()
        report = RepairReport(found=found)
        if found.duplicate_documents:
            self._dedupe_documents(found.duplicate_documents)
        if found.duplicate_chunks:
            self._dedupe_chunks(list(found.duplicate_chunks), fault)
            report.duplicate_chunks_removed = sum(
                n - 1 for n in found.duplicate_chunks.values())
        stale = sorted(set(found.orphan_documents) | set(found.unindexed_documents))
        if stale:
            before = self.chunks.count_rows()
            for i in range(0, len(stale), 500):
                self.chunks.delete(f"doc_uid IN {sql_in(stale[i:i + 500])}")
            report.orphan_chunks_deleted = before - self.chunks.count_rows()
            fault("repair-after-orphans")
        report.documents_to_redo = sorted(found.redo)
        return report

    def _dedupe_documents(self, uids: Sequence[str]) -> None:
        rows = self.document_rows(where=f"doc_uid IN {sql_in(uids)}").to_pylist()
        newest: dict[str, dict[str, Any]] = {}
        for r in rows:
            key = r["indexed_at"] or now_utc().replace(year=1970)
            old = newest.get(r["doc_uid"])
            if old is None or key > (old["indexed_at"] or key):
                newest[r["doc_uid"]] = r
        self.documents.delete(f"doc_uid IN {sql_in(uids)}")
        self.documents.add(pa.Table.from_pylist(list(newest.values()),
                                                schema=documents_schema()))

    def _dedupe_chunks(self, ids: Sequence[str], fault: Callable[[str], None]) -> None:
        for i in range(0, len(ids), 500):
            part = list(ids[i:i + 500])
            rows = self.chunks.search().where(f"chunk_id IN {sql_in(part)}") \
                .limit(None).to_arrow()
            _, first = np.unique(np.asarray(rows.column("chunk_id").to_pylist(), dtype=object),
                                 return_index=True)
            keep = rows.take(pa.array(sorted(first.tolist())))
            self.chunks.delete(f"chunk_id IN {sql_in(part)}")
            fault("repair-after-duplicates")
            self.chunks.add(keep.select(self.chunks.schema.names))

    def maintain(self, *, force: bool = False, prune_all: bool = False,
                 vector_index: bool = True,
                 fault: Callable[[str], None] = lambda point: None) -> dict[str, Any]:
        """Keep indexes fresh and versions/fragments bounded. Cheap when nothing is due.

        Each step stands alone: one that fails (a vector index that cannot be trained, a full
        disk) is reported in `actions["errors"]` and the others still run, so compaction and
        pruning never stop because an index could not be built. Nothing here changes rows.
        `vector_index=False` skips building the vector index (the caller is backing off after
        it failed).
        """
        actions: dict[str, Any] = {}
        errors: dict[str, str] = {}

        def step(name: str, fn: Callable[[], Any]) -> None:
            try:
                fn()
            except Exception as exc:
                log.warning("maintenance step %s failed: %s", name, exc, exc_info=True)
                errors[name] = one_line(exc)

        fault("maintain-before")
        n_chunks = self.chunks.count_rows()
        indices = {tuple(i.columns): i for i in self.chunks.list_indices()}
        if n_chunks and ("text",) not in indices:
            step("fts_index", lambda: self.chunks.create_index(
                "text", config=FTS(with_position=False)))
            actions["fts_index"] = "created" if "fts_index" not in errors else "failed"
        if n_chunks and ("doc_uid",) not in indices:
            step("doc_uid_index", lambda: self.chunks.create_index("doc_uid", config=BTree()))
            actions["doc_uid_index"] = "created" if "doc_uid_index" not in errors else "failed"
        if vector_index and n_chunks >= VECTOR_INDEX_MIN_ROWS and ("vector",) not in indices:
            step("vector_index", self.create_vector_index)
            actions["vector_index"] = "created" if "vector_index" not in errors else "failed"
        doc_indices = {tuple(i.columns) for i in self.documents.list_indices()}
        if self.documents.count_rows() and ("doc_uid",) not in doc_indices:
            step("documents_index", lambda: self.documents.create_index(
                "doc_uid", config=BTree()))
        fault("maintain-after-indexes")
        due = force or prune_all or self._maintenance_due()
        if due:
            # Even a full prune leaves a minute for readers in other processes (an assistant
            # mid-query) that opened a version just before it.
            keep = PRUNE_ALL_KEEP if prune_all else KEEP_VERSIONS_FOR
            step("optimize_chunks", lambda: self.chunks.optimize(cleanup_older_than=keep))
            fault("maintain-between-tables")
            step("optimize_documents", lambda: self.documents.optimize(cleanup_older_than=keep))
            actions["optimized"] = True
        if errors:
            actions["errors"] = errors
        return actions

    def _maintenance_due(self) -> bool:
        """Optimize when it pays: many small fragments, many versions, or a real backlog of rows
        outside the indexes. Below that, searches still cover the new rows (LanceDB scans the
        unindexed tail), so a small edit does not pay for a full index refresh."""
        try:
            fragments = self.chunks.stats()["fragment_stats"]["num_fragments"]
            if fragments >= COMPACT_FRAGMENTS:
                return True
            if len(self.chunks.list_versions()) >= MAX_VERSIONS:
                return True
            rows = self.chunks.count_rows()
            backlog = max(UNINDEXED_MIN_ROWS, int(rows * UNINDEXED_FRACTION))
            return any(idx.num_unindexed_rows >= backlog for idx in self.chunks.list_indices())
        except Exception:
            return True

    def create_vector_index(self) -> None:
        n = self.chunks.count_rows()
        dim = self.index_model[1]
        partitions = max(1, min(4096, int(np.sqrt(n))))
        sub_vectors = max(1, dim // 8)
        try:
            self._create_ivf_pq(partitions, sub_vectors)
        except Exception as exc:
            # Many identical chunks (the same boilerplate in thousands of files) give k-means
            # fewer distinct clusters than partitions; Lance says how many it found. Train
            # with that many instead of failing on every pass.
            found = _CLUSTERS_FORMED.search(str(exc))
            if found is None or int(found.group(1)) >= partitions:
                raise
            fewer = max(1, int(found.group(1)))
            log.info("vector index: %d partitions requested, data supports %d", partitions,
                     fewer)
            self._create_ivf_pq(fewer, sub_vectors)

    def _create_ivf_pq(self, partitions: int, sub_vectors: int) -> None:
        self.chunks.create_index("vector", config=IvfPq(distance_type="cosine",
                                                         num_partitions=partitions,
                                                         num_sub_vectors=sub_vectors))

    def version_stats(self) -> dict[str, int]:
        return {
            "documents_versions": len(self.documents.list_versions()),
            "chunks_versions": len(self.chunks.list_versions()),
            "chunks_fragments": self.chunks.stats()["fragment_stats"]["num_fragments"],
        }
