"""The HTTP embedding providers against a local server speaking their wire formats."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from app.core.embedding import EmbeddingError, HttpEmbedder, make_embedder


class FakeEmbeddings(BaseHTTPRequestHandler):
    """POST /api/embed (Ollama) and /v1/embeddings (OpenAI): a vector from each text's length."""

    fail_next: ClassVar[list[int]] = []
    requests: ClassVar[list[dict]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body,
                                    "auth": self.headers.get("Authorization")})
        if type(self).fail_next:
            code = type(self).fail_next.pop(0)
            self.send_response(code)
            self.end_headers()
            return
        vectors = [[float(len(t)), 1.0, 0.0] for t in body["input"]]
        if self.path == "/api/embed":
            payload = {"model": body["model"], "embeddings": vectors}
        elif self.path == "/v1/embeddings":
            # Out of order on purpose: clients must sort by index.
            payload = {"object": "list", "data": [
                {"object": "embedding", "index": i, "embedding": v}
                for i, v in reversed(list(enumerate(vectors)))]}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    FakeEmbeddings.fail_next = []
    FakeEmbeddings.requests = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeEmbeddings)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.mark.parametrize("flavour", ["ollama", "openai"])
def test_wire_format_dimension_and_normalisation(server, flavour):
    emb = make_embedder(f"{flavour}:tiny", server)
    assert emb.model_id == f"{flavour}/tiny"
    assert emb.dim == 3
    vecs = emb.embed(["a", "abcd", "ab"])
    expected = np.array([[1, 1, 0], [4, 1, 0], [2, 1, 0]], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vecs, expected, rtol=1e-6)
    assert FakeEmbeddings.requests[-1]["body"]["model"] == "tiny"


def test_transient_errors_are_retried(server, monkeypatch):
    monkeypatch.setattr("app.core.embedding.time.sleep", lambda s: None)
    emb = HttpEmbedder("openai", "tiny", server, retries=3)
    FakeEmbeddings.fail_next = [503, 429]
    assert emb.embed(["x"]).shape == (1, 3)
    assert len(FakeEmbeddings.requests) == 3


def test_auth_failure_is_not_retried_and_key_never_shown(server, monkeypatch):
    monkeypatch.setattr("app.core.embedding.time.sleep", lambda s: None)
    emb = HttpEmbedder("openai", "tiny", server, api_key="sk-secret-123", retries=3)
    FakeEmbeddings.fail_next = [401]
    with pytest.raises(EmbeddingError) as err:
        emb.embed(["x"])
    assert len(FakeEmbeddings.requests) == 1
    assert FakeEmbeddings.requests[0]["auth"] == "Bearer sk-secret-123"
    assert "sk-secret" not in str(err.value) and server in str(err.value)


def test_unreachable_endpoint_says_so(monkeypatch):
    monkeypatch.setattr("app.core.embedding.time.sleep", lambda s: None)
    emb = HttpEmbedder("ollama", "tiny", "http://127.0.0.1:9", retries=1, timeout=2)
    with pytest.raises(EmbeddingError, match="did not answer"):
        emb.embed(["x"])
