"""Search over the chunks table: vector, full-text, and hybrid (reciprocal-rank fusion).

Results are documents, not chunks: each document appears once, with its best chunk as the
snippet (query terms marked with «»), its page and heading. Filters by source, file type, path
prefix and modification date narrow the documents before ranking.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from app.core.store import Store, sql_in
from app.models import SearchFilters, SearchHit

if TYPE_CHECKING:
    from app.core.embedding import Embedder

Mode = Literal["hybrid", "vector", "fts"]
RRF_K = 60
# Beyond this many matching documents a filter is applied after ranking instead of before.
PREFILTER_MAX_DOCS = 5000


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Searcher:
    def __init__(self, store: Store, embedder: Embedder | None) -> None:
        self.store = store
        self.embedder = embedder

    def search(self, query: str, *, k: int = 10, mode: Mode = "hybrid",
               filters: SearchFilters | None = None) -> list[SearchHit]:
        query = query.strip()
        if not query:
            return []
        filters = filters or SearchFilters()
        where = self._where(filters)
        if where is None:
            return []  # the filters match no document at all
        fetch = max(k * 4, 20)
        while True:
            hits, exhausted = self._ranked(query, k, mode, where, fetch)
            # Too few visible documents among the candidates: look further down the lists.
            if len(hits) >= k or exhausted or fetch >= 4096:
                return hits
            fetch *= 4

    def _ranked(self, query: str, k: int, mode: Mode, where: str,
                fetch: int) -> tuple[list[SearchHit], bool]:
        ranked: dict[str, float] = {}
        rows: dict[str, dict[str, Any]] = {}
        exhausted = True
        if mode in ("vector", "hybrid"):
            found = self._vector(query, fetch, where)
            exhausted &= len(found) < fetch
            self._fuse(found, ranked, rows, mode == "vector")
        if mode in ("fts", "hybrid"):
            found = self._fts(query, fetch, where)
            exhausted &= len(found) < fetch
            self._fuse(found, ranked, rows, mode == "fts")
        best: dict[str, tuple[float, dict[str, Any]]] = {}
        for cid, score in ranked.items():
            row = rows[cid]
            uid = row["doc_uid"]
            if uid not in best or score > best[uid][0]:
                best[uid] = (score, row)
        order = sorted(best.values(), key=lambda t: t[0], reverse=True)
        docs = self._documents([row["doc_uid"] for _, row in order])
        terms = _terms(query)
        hits = []
        for score, row in order:
            doc = docs.get(row["doc_uid"])
            # The readers' rule of docs/data-model.md: a chunk is visible only while its
            # document row is indexed and names the chunk's version. Anything else is a batch
            # in flight or left by an interrupted one, and is not a result.
            if doc is None or doc["status"] != "indexed" or \
                    doc["content_hash"] != row["content_hash"]:
                continue
            hits.append(SearchHit(
                doc_uid=row["doc_uid"], source_id=row["source_id"],
                title=doc.get("title") or row["doc_uid"], uri=doc.get("uri") or "",
                snippet=make_snippet(row["text"], terms), page=row.get("page"),
                heading=row.get("heading") or "", score=round(float(score), 6),
                chunk_id=row["chunk_id"], mime=doc.get("mime") or ""))
            if len(hits) == k:
                break
        return hits, exhausted

    # -- ranking ------------------------------------------------------------------------------

    @staticmethod
    def _fuse(results: list[dict[str, Any]], ranked: dict[str, float],
              rows: dict[str, dict[str, Any]], raw: bool) -> None:
        for rank, row in enumerate(results):
            cid = row["chunk_id"]
            rows.setdefault(cid, row)
            if raw:
                # Single mode: keep the engine's own score so people can compare hits.
                if "_distance" in row:
                    score = 1.0 - float(row["_distance"])
                else:
                    score = float(row.get("_score", 0.0))
                ranked[cid] = score
            else:
                ranked[cid] = ranked.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)

    _COLUMNS = ("chunk_id", "doc_uid", "source_id", "text", "page", "heading", "content_hash")

    def _vector(self, query: str, limit: int, where: str) -> list[dict[str, Any]]:
        if self.embedder is None:
            return []
        vector = self.embedder.embed([query])[0]
        q = self.store.chunks.search(vector, vector_column_name="vector") \
            .distance_type("cosine").select([*self._COLUMNS, "_distance"]).limit(limit)
        if where:
            q = q.where(where, prefilter=True)
        return q.to_list()

    def _fts(self, query: str, limit: int, where: str) -> list[dict[str, Any]]:
        indices = {tuple(i.columns) for i in self.store.chunks.list_indices()}
        if ("text",) not in indices:
            return []  # no full-text index yet (empty index): vector search still answers
        q = self.store.chunks.search(query, query_type="fts", fts_columns="text") \
            .select([*self._COLUMNS, "_score"]).limit(limit)
        if where:
            q = q.where(where, prefilter=True)
        try:
            return q.to_list()
        except Exception:
            # Query syntax the FTS parser rejects (stray quotes, operators): search the words.
            words = " ".join(_terms(query))
            if not words:
                return []
            q = self.store.chunks.search(words, query_type="fts", fts_columns="text") \
                .select([*self._COLUMNS, "_score"]).limit(limit)
            if where:
                q = q.where(where, prefilter=True)
            return q.to_list()

    # -- filters and documents ------------------------------------------------------------------

    def _where(self, f: SearchFilters) -> str | None:
        clauses = []
        if f.source_id:
            clauses.append(f"source_id = {_quote(f.source_id)}")
        if f.needs_documents:
            doc_where = []
            if f.source_id:
                doc_where.append(f"source_id = {_quote(f.source_id)}")
            if f.file_type:
                ft = f.file_type.lower().lstrip(".")
                if "/" in ft:
                    doc_where.append(f"mime LIKE {_quote(ft + '%')}")
                else:
                    doc_where.append(f"lower(native_id) LIKE {_quote('%.' + ft)}")
            if f.path_prefix:
                doc_where.append(f"native_id LIKE {_quote(f.path_prefix + '%')}")
            if f.modified_after:
                doc_where.append(f"modified_at >= TIMESTAMP '{f.modified_after.isoformat(' ')}'")
            doc_where.append("status = 'indexed'")
            uids = self.store.document_rows(["doc_uid"], " AND ".join(doc_where)) \
                .column("doc_uid").to_pylist()
            if not uids:
                return None
            if len(uids) <= PREFILTER_MAX_DOCS:
                clauses.append(f"doc_uid IN {sql_in(uids)}")
        return " AND ".join(clauses)

    def _documents(self, uids: list[str]) -> dict[str, dict[str, Any]]:
        if not uids:
            return {}
        rows = self.store.document_rows(["doc_uid", "title", "uri", "mime", "status",
                                         "content_hash"], f"doc_uid IN {sql_in(uids)}").to_pylist()
        return {r["doc_uid"]: r for r in rows}


_WORD = re.compile(r"\w+", re.UNICODE)


def _terms(query: str) -> list[str]:
    return [w for w in _WORD.findall(query.lower()) if len(w) > 1]


def make_snippet(text: str, terms: list[str], width: int = 240) -> str:
    """A window of the chunk around the first query term, terms marked «like this»."""
    flat = " ".join(text.split())
    lower = flat.lower()
    pos = min((p for p in (lower.find(t) for t in terms) if p >= 0), default=0)
    start = max(0, pos - width // 3)
    if start:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < pos else start
    window = flat[start:start + width]
    if terms:
        pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)),
                             re.IGNORECASE)
        window = pattern.sub(lambda m: f"«{m.group(0)}»", window)
    return ("…" if start else "") + window + ("…" if start + width < len(flat) else "")
