"""Embedders and the embedding cache.

The default embedder is WordLlama's bundled 256-dim model, which ships inside its wheel and runs
offline. An HTTP provider (Ollama or any OpenAI-compatible endpoint) is the second choice. Vectors
are L2-normalised float32, so cosine and dot product agree.

The cache maps (model id, text hash) → vector in SQLite. A changed document re-embeds only its
changed chunks, and a rename or a restore re-embeds nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from app.core.model_switch import embedder_model_id  # noqa: F401  (re-exported)


class EmbeddingError(Exception):
    """The embedding model could not be loaded or did not answer."""


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), rows L2-normalised."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    vectors /= norms  # in place: a big document's vectors are not copied again
    return vectors


class WordLlamaEmbedder:
    """WordLlama's bundled `l2_supercat` model, truncated to `dim` (Matryoshka: 64–256).

    WordLlama's vector is the mean of the text's token embeddings. Its own `embed()` pads every
    batch to the longest text and multiplies a (batch, tokens, dim) mask, which costs more than the
    arithmetic needs; here each text's token rows are averaged directly, with the same tokenizer
    and matrix, so the vectors are the same (to float rounding) at about twice the speed.
    """

    def __init__(self, dim: int = 256) -> None:
        if dim not in (64, 128, 256):
            raise EmbeddingError("wordllama supports 64, 128 or 256 dimensions.")
        self.dim = dim
        self.model_id = f"wordllama/l2_supercat-{dim}"
        self._matrix: np.ndarray | None = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[np.ndarray, object]:
        with self._lock:
            if self._matrix is None:
                try:
                    import wordllama
                    from tokenizers import Tokenizer
                    from wordllama import WordLlama

                    # The bundled tokenizer sits in the package folder, not in the default cache.
                    pkg = os.path.dirname(wordllama.__file__)
                    model = WordLlama.load(
                        cache_dir=pkg, disable_download=True,
                        trunc_dim=None if self.dim == 256 else self.dim,
                    )
                    tokenizer = Tokenizer.from_str(model.tokenizer.to_str())
                    tokenizer.no_padding()
                    tokenizer.no_truncation()
                    self._tokenizer = tokenizer
                    self._matrix = np.ascontiguousarray(model.embedding[:, :self.dim],
                                                        dtype=np.float32)
                except Exception as exc:  # any failure here means "no model": say so plainly
                    raise EmbeddingError(
                        f"Could not load the bundled WordLlama model: {exc}") from exc
            return self._matrix, self._tokenizer

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        matrix, tokenizer = self._load()
        encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch
        # The tokenizer's ids index the matrix directly when its vocabulary fits it (it does for
        # the bundled model); clip only if a mismatched pair ever makes that untrue.
        safe = tokenizer.get_vocab_size(with_added_tokens=True) <= matrix.shape[0]
        last = matrix.shape[0] - 1
        take, add = matrix.take, np.add.reduce
        for start in range(0, len(texts), 1024):
            encodings = encode(list(texts[start:start + 1024]), add_special_tokens=False)
            for i, enc in enumerate(encodings, start):
                ids = enc.ids
                if ids:
                    if not safe:
                        ids = np.clip(np.asarray(ids), 0, last)
                    row = out[i]
                    add(take(ids, axis=0), axis=0, out=row)
                    row /= len(ids)
        return _normalise(out)


class HttpEmbedder:
    """Ollama (`/api/embed`) or OpenAI-compatible (`/v1/embeddings`) endpoint."""

    def __init__(self, flavour: str, model: str, base_url: str, api_key: str | None = None,
                 timeout: float = 60.0, retries: int = 3) -> None:
        if flavour not in ("ollama", "openai"):
            raise EmbeddingError(f"Unknown embedding provider {flavour!r}.")
        self.flavour = flavour
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.model_id = f"{flavour}/{model}"
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._request(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = [self._request(list(texts[i:i + 64])) for i in range(0, len(texts), 64)]
        return _normalise(np.vstack(out))

    def _request(self, batch: list[str]) -> np.ndarray:
        if self.flavour == "ollama":
            url, body = f"{self.base_url}/api/embed", {"model": self.model, "input": batch}
        else:
            url, body = f"{self.base_url}/v1/embeddings", {"model": self.model, "input": batch}
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = json.loads(resp.read())
                if self.flavour == "ollama":
                    vectors = payload["embeddings"]
                else:
                    vectors = [d["embedding"] for d in sorted(payload["data"],
                                                              key=lambda d: d["index"])]
                return np.asarray(vectors, dtype=np.float32)
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code not in (408, 429, 500, 502, 503, 504):
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = exc
            except (KeyError, ValueError, TypeError) as exc:
                raise EmbeddingError(f"{self.base_url} answered with an unexpected body.") from exc
            time.sleep(min(8.0, 0.5 * 2**attempt))
        # The URL is safe to show; the key is never part of it.
        raise EmbeddingError(f"The embedding endpoint {self.base_url} did not answer: {last}")


def make_embedder(spec: str, base_url: str | None = None) -> Embedder:
    """`wordllama`, `wordllama:128`, `ollama:nomic-embed-text`, `openai:text-embedding-3-small`."""
    name, _, arg = spec.partition(":")
    if name == "wordllama":
        return WordLlamaEmbedder(int(arg) if arg else 256)
    if name in ("ollama", "openai"):
        if not arg:
            raise EmbeddingError(f"Say which model: {name}:MODEL")
        default = "http://127.0.0.1:11434" if name == "ollama" else None
        url = base_url or default
        if not url:
            raise EmbeddingError("Set LANCEDB_SYNC_EMBED_URL to the endpoint's base URL.")
        return HttpEmbedder(name, arg, url, api_key=os.environ.get("LANCEDB_SYNC_EMBED_API_KEY"))
    raise EmbeddingError(
        f"Unknown embedder {spec!r}: expected wordllama, wordllama:DIM, ollama:MODEL or "
        "openai:MODEL.")


class EmbeddingCache:
    """(model id, text hash) → float32 vector, in SQLite. Safe to delete: it only saves work."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError:
            # A damaged cache only costs re-embedding: start a new one rather than fail.
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            self._db = self._open(path)
        self._lock = threading.Lock()

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # A cache may lose its last writes in a power cut; it must not slow every commit.
        db.execute("PRAGMA synchronous=OFF")
        # A rowid table: WITHOUT ROWID stores 1 KB vectors inside the key's B-tree pages and is
        # about five times slower to fill.
        db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, text_hash TEXT NOT NULL, "
            "vector BLOB NOT NULL, PRIMARY KEY (model, text_hash))")
        return db

    def get_many(self, model: str, hashes: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        with self._lock:
            for i in range(0, len(unique), 500):
                part = unique[i:i + 500]
                q = ",".join("?" * len(part))
                for h, blob in self._db.execute(
                    f"SELECT text_hash, vector FROM vectors WHERE model=? AND text_hash IN ({q})",
                    (model, *part)):
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.shape[0] == dim:
                        out[h] = vec
        return out

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors(model, text_hash, vector) VALUES (?, ?, ?)",
                [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()])
            self._db.execute("COMMIT")

    def count(self, model: str | None = None) -> int:
        with self._lock:
            if model:
                return self._db.execute("SELECT COUNT(*) FROM vectors WHERE model=?",
                                        (model,)).fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

    def close(self) -> None:
        self._db.close()


EMBED_SLICE = 4096


class CachedEmbedder:
    """Looks each text up by hash first; embeds only the misses, each distinct text once."""

    def __init__(self, embedder: Embedder, cache: EmbeddingCache | None) -> None:
        self.embedder = embedder
        self.cache = cache
        self.embedded = 0  # texts actually sent to the model, for reports and tests

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def embed(self, texts: Sequence[str], hashes: Sequence[str]) -> np.ndarray:
        dim = self.embedder.dim
        out = np.empty((len(texts), dim), dtype=np.float32)
        # In slices, so a document of 100,000 chunks holds one slice's lookups and new vectors
        # at a time besides the result, not three copies of everything.
        done: dict[str, np.ndarray] = {}
        for start in range(0, len(texts), EMBED_SLICE):
            part = hashes[start:start + EMBED_SLICE]
            found = self.cache.get_many(self.model_id, part, dim) if self.cache else {}
            missing: dict[str, str] = {}
            for text, h in zip(texts[start:start + EMBED_SLICE], part, strict=True):
                if h not in found and h not in missing and h not in done:
                    missing[h] = text
            if missing:
                vectors = self.embedder.embed(list(missing.values()))
                fresh = dict(zip(missing.keys(), vectors, strict=True))
                self.embedded += len(fresh)
                if self.cache:
                    self.cache.put_many(self.model_id, fresh)
                found.update(fresh)
            for i, h in enumerate(part, start):
                vector = found.get(h)
                out[i] = vector if vector is not None else done[h]
            # Texts repeated across slices (boilerplate) are embedded once per document.
            if len(texts) > EMBED_SLICE:
                done.update((h, out[i]) for i, h in enumerate(part, start))
        return out
