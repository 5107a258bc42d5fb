import os

import numpy as np
import pytest

from app.core.embedding import (
    CachedEmbedder,
    EmbeddingCache,
    EmbeddingError,
    WordLlamaEmbedder,
    embedder_model_id,
    make_embedder,
)
from app.core.hashing import hash_text

TEXTS = ["The quick brown fox", "jumps over\n\nthe lazy dog " * 30, "", "x", "naïve café"]


@pytest.mark.parametrize("dim", [256, 128])
def test_same_vectors_as_wordllama_itself(dim):
    import wordllama
    from wordllama import WordLlama

    ours = WordLlamaEmbedder(dim).embed(TEXTS)
    wl = WordLlama.load(cache_dir=os.path.dirname(wordllama.__file__), disable_download=True,
                        trunc_dim=None if dim == 256 else dim)
    ref = wl.embed(TEXTS)
    norms = np.linalg.norm(ref, axis=1, keepdims=True)
    ref = np.divide(ref, norms, out=np.zeros_like(ref), where=norms > 0)
    assert ours.shape == (len(TEXTS), dim) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-5)


class CountingEmbedder:
    model_id = "test/count"
    dim = 4

    def __init__(self):
        self.seen = []

    def embed(self, texts):
        self.seen.extend(texts)
        return np.array([[len(t), 1, 0, 0] for t in texts], dtype=np.float32)


def test_cache_embeds_each_distinct_text_once_across_runs(tmp_path):
    inner = CountingEmbedder()
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    emb = CachedEmbedder(inner, cache)
    texts = ["a", "bb", "a", "ccc"]
    first = emb.embed(texts, [hash_text(t) for t in texts])
    assert inner.seen == ["a", "bb", "ccc"]
    again = CachedEmbedder(inner, EmbeddingCache(tmp_path / "c.sqlite3"))
    second = again.embed(texts, [hash_text(t) for t in texts])
    assert inner.seen == ["a", "bb", "ccc"] and again.embedded == 0
    np.testing.assert_array_equal(first, second)


def test_damaged_cache_is_replaced(tmp_path):
    path = tmp_path / "c.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    cache = EmbeddingCache(path)
    assert cache.count() == 0


def test_specs():
    assert embedder_model_id("wordllama") == "wordllama/l2_supercat-256"
    assert embedder_model_id("ollama:nomic") == "ollama/nomic"
    with pytest.raises(EmbeddingError, match="Unknown embedder"):
        make_embedder("bert")
    with pytest.raises(EmbeddingError, match="LANCEDB_SYNC_EMBED_URL"):
        make_embedder("openai:text-embedding-3-small")
