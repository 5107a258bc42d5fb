"""The REST API over real HTTP on loopback, against a running Service with a real index.

One Service and its ApiServer run for the whole module on a loop in a background thread
(tests/helpers/api.py); the tests call it as another program would, with httpx or a raw
http.client stream, and wait on conditions, never on fixed sleeps. Every answer is checked by
the client: errors have the one shape, no body holds the token, nothing answers 500. The last
tests run `lancedb-sync run` as a subprocess and stop it with SIGTERM.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.config import load_settings, save_sources
from app.models import SearchFilters, SourceConfig, SourceType
from tests.conftest import FIXTURES, REPO
from tests.helpers.api import (
    Client,
    LiveApi,
    SseReader,
    assert_error,
    assert_error_shape,
    wait_until,
)
from tests.helpers.s3server import start_moto

pytestmark = pytest.mark.slow

NOTES = {
    "quokka.md": "# Quokka\n\nThe quokka is a small marsupial that lives on Rottnest Island.\n",
    "kettle.txt": "Kettle descaling: use citric acid and rinse the kettle twice afterwards.\n",
    "lava/basalt.md": "# Basalt\n\nVolcanic basalt columns form when thick lava cools slowly.\n",
    "bees.md": "# Bees\n\nHoneybees dance to tell the hive where the clover meadow is.\n",
}
BAD = ("encrypted.pdf", "corrupt.docx")  # permanent failures: listed by /failed
BUCKET = "api-tests"


@pytest.fixture(scope="module")
def moto():
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, moto):
    """The module's running Service + API: one local source "docs" (four notes, two bad files),
    a moto bucket for backups (automatic backups off: only the tests start them)."""
    import boto3

    root = tmp_path_factory.mktemp("api")
    docs = root / "docs"
    for rel, text in NOTES.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text)
    for name in BAD:
        shutil.copy(FIXTURES / "bad" / name, docs / name)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                    "AWS_ENDPOINT_URL_S3"):
            mp.delenv(key, raising=False)
        boto3.client("s3", endpoint_url=moto, region_name="us-east-1",
                     aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        settings = load_settings(home=root / "home", env={
            "S3_BUCKET": BUCKET, "S3_ENDPOINT_URL": moto, "BACKUP_AUTO": "false"})
        settings = save_sources(settings, (SourceConfig(
            SourceType.LOCAL_FILESYSTEM, "docs", {"watch_paths": [str(docs)]},
            poll_interval=3600),))
        api = LiveApi(settings, watch=False).start()
        api.docs = docs
        api.root = root
        try:
            wait_until(lambda: finished(api, "docs"), timeout=180, what="the first pass")
            yield api
        finally:
            api.stop()


@pytest.fixture
def client(live):
    c = live.client()
    yield c
    c.close()


def finished(live, source_id):
    return [e for e in list(live.events)
            if e.kind == "sync_finished" and e.source_id == source_id]


def fts(client, word, **filters):
    params = {"q": word, "mode": "fts", "k": 20, **filters}
    return client.ok("GET", "/api/v1/search", params=params)["results"]


# -- health, status, auth, Host, CORS -------------------------------------------------------------

def test_health_needs_no_token(live):
    anon = Client(live.url, live.token, auth=False)
    body = anon.ok("GET", "/health")
    assert body["running"] is True and body["paused"] is False
    assert body["status"] in ("ok", "warning", "error")
    assert body["version"]


def test_status_and_sync_status(live, client):
    status = client.ok("GET", "/api/v1/status")
    assert status["running"] is True and status["pid"] == os.getpid()
    (docs,) = [s for s in status["sources"] if s["source_id"] == "docs"]
    assert docs["documents"] >= len(NOTES) and docs["failed"] + docs["skipped"] >= len(BAD)
    assert status["sources"][0].keys() == live.service.get_status().as_dict()["sources"][0].keys()
    sync = client.ok("GET", "/api/v1/sync/status")
    assert set(sync) == {"paused", "paused_until", "held", "current", "queue", "sources"}
    (docs,) = [s for s in sync["sources"] if s["source_id"] == "docs"]
    assert docs["last_sync"]["outcome"] == "ok"


ROUTES = [("GET", "/api/v1/status"), ("GET", "/api/v1/sync/status"), ("GET", "/api/v1/sources"),
          ("POST", "/api/v1/sources"), ("DELETE", "/api/v1/sources/local/docs"),
          ("POST", "/api/v1/sources/local/docs/scan"), ("POST", "/api/v1/sync/cleanup"),
          ("POST", "/api/v1/sync/manual"), ("GET", "/api/v1/jobs"),
          ("GET", "/api/v1/jobs/cleanup-1"), ("POST", "/api/v1/pipeline/stop"),
          ("POST", "/api/v1/pipeline/start"), ("GET", "/api/v1/search?q=x"),
          ("POST", "/api/v1/search"), ("GET", "/api/v1/failed"),
          ("POST", "/api/v1/failed/retry"), ("GET", "/api/v1/backups"),
          ("POST", "/api/v1/backups"), ("GET", "/api/v1/events"), ("GET", "/api/v1/nowhere")]


def test_every_route_but_health_wants_the_token(live, client):
    anon = Client(live.url, live.token, auth=False)
    for method, path in ROUTES:
        missing = assert_error(anon.request(method, path), 401, "unauthorized")
        assert "Missing token" in missing["message"]
        wrong = anon.request(method, path, headers={"Authorization": "Bearer " + "x" * 43})
        assert "Wrong token" in assert_error(wrong, 401, "unauthorized")["message"]
        assert wrong.headers["www-authenticate"] == "Bearer"
        for bad in (live.token, f"Basic {live.token}", f"Bearer {live.token[:-1]}", "Bearer",
                    f"Bearer {live.token}x"):
            assert_error(anon.request(method, path, headers={"Authorization": bad}), 401,
                         "unauthorized")
    assert not live.service.paused[0]  # nothing refused ran
    assert client.ok("GET", "/api/v1/status")["running"]


@pytest.mark.parametrize("path", ["/health", "/api/v1/status", "/docs", "/openapi.json"])
def test_a_foreign_host_header_is_refused(live, client, path):
    port = live.url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.nip.io:{port}",
                 f"localhost.evil.example:{port}", "192.168.1.10", ""):
        r = client.get(path, headers={"Host": host})
        assert_error(r, 403, "forbidden_host")
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
        assert client.get(path, headers={"Host": host}).status_code == 200, host


def test_cors_is_off_by_default(client):
    origin = {"Origin": "https://evil.example"}
    r = client.get("/api/v1/status", headers=origin)
    assert r.status_code == 200
    assert not any(h.startswith("access-control-") for h in r.headers)
    pre = client.request("OPTIONS", "/api/v1/status", headers={
        **origin, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert not any(h.startswith("access-control-") for h in pre.headers)


def test_cors_on_for_the_configured_origins(live, tmp_path):
    from app.api.server import ApiServer

    allowed = "https://app.example"
    settings = load_settings(home=tmp_path / "cors", env={
        "LANCEDB_SYNC_API_CORS_ORIGINS": f"{allowed}, http://localhost:3000"})
    server = ApiServer(live.service, settings, port=0)
    live.call(server.start())
    c = Client(server.url, server._token)
    try:
        r = c.get("/api/v1/status", headers={"Origin": allowed})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == allowed
        r = c.get("/api/v1/status", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        pre = c.request("OPTIONS", "/api/v1/search", headers={
            "Origin": allowed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert pre.status_code == 200, pre.text
        assert pre.headers["access-control-allow-origin"] == allowed
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        # Starlette's CORS middleware refuses this preflight itself (400, text/plain): the
        # browser sees no allowed origin, which is what matters.
        pre = c.http.request("OPTIONS", "/api/v1/search", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 400 and live.token not in pre.text
        assert "access-control-allow-origin" not in pre.headers
    finally:
        c.close()
        live.call(server.stop())
    assert "url" not in json.loads((settings.state_dir / "api.json").read_text())


def test_docs_are_served_from_bundled_files(live):
    anon = Client(live.url, live.token, auth=False)
    page = anon.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    assert anon.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert_error(anon.get("/docs/assets/openapi.py"), 404, "not_found")
    assert_error(anon.get("/docs/assets/..%2F..%2Fapp.py"), 404, "not_found")
    spec = anon.ok("GET", "/openapi.json")
    assert {"/health", "/api/v1/search", "/api/v1/events"} <= set(spec["paths"])


def test_api_json_names_the_server_privately(live):
    path = live.settings.state_dir / "api.json"
    info = json.loads(path.read_text())
    assert info["url"] == live.url and info["token"] == live.token and info["pid"] == os.getpid()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- sources --------------------------------------------------------------------------------------

def test_add_list_scan_and_remove_a_source_with_purge(live, client, tmp_path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "axolotl.md").write_text("# Axolotl\n\nThe axolotl regrows its gills overnight.\n")
    n_finished = len(finished(live, "extra"))
    added = client.ok("POST", "/api/v1/sources", 201, json={
        "source_type": "local", "source_id": "extra", "poll_interval": 3600,
        "config": {"watch_paths": [str(folder)], "file_patterns": ["*.md"]}})
    assert added["source_id"] == "extra" and added["source_type"] == "local"
    assert added["config"]["watch_paths"] == [str(folder.resolve())]
    ids = [s["source_id"] for s in client.ok("GET", "/api/v1/sources")]
    assert ids == ["docs", "extra"]
    assert_error(client.post("/api/v1/sources", json={
        "source_type": "local", "source_id": "extra",
        "config": {"watch_paths": [str(folder)]}}), 409, "source_exists", "source_id")

    # It is synced at once; a scan queues another pass.
    wait_until(lambda: fts(client, "axolotl"), what="the new source's document")
    assert_error(client.post("/api/v1/sources/notion/extra/scan"), 404, "unknown_source")
    assert_error(client.post("/api/v1/sources/local/nope/scan"), 404, "unknown_source")
    (folder / "narwhal.md").write_text("# Narwhal\n\nThe narwhal tusk is a tooth.\n")
    assert client.ok("POST", "/api/v1/sources/local/extra/scan", 202) == {"queued": ["extra"]}
    wait_until(lambda: fts(client, "narwhal"), what="the scanned file")
    wait_until(lambda: len(finished(live, "extra")) >= n_finished + 2)
    (src,) = [s for s in client.ok("GET", "/api/v1/sources") if s["source_id"] == "extra"]
    assert src["documents"] == 2

    assert_error(client.delete("/api/v1/sources/notion/extra?purge=true"), 404,
                 "unknown_source")
    assert_error(client.delete("/api/v1/sources/local/nope"), 404, "unknown_source")
    # A removed source's documents cannot be kept (they would be managed nowhere).
    refused = assert_error(client.delete("/api/v1/sources/local/extra?purge=false"), 422,
                           "invalid_value", "purge")
    assert "disable the source" in refused["message"]
    assert client.ok("DELETE", "/api/v1/sources/local/extra") == {
        "removed": "extra", "purged": True, "documents": 2}
    assert [s["source_id"] for s in client.ok("GET", "/api/v1/sources")] == ["docs"]
    assert fts(client, "axolotl") == [] and fts(client, "narwhal") == []
    assert fts(client, "quokka")  # the other source's documents stay


def test_bad_source_requests_are_refused_with_a_field(client, tmp_path):
    def add(body):
        return client.post("/api/v1/sources", json=body)

    folder = str(tmp_path)
    ok = {"source_type": "local", "source_id": "x", "config": {"watch_paths": [folder]}}
    assert_error(add({**ok, "source_type": "ftp"}), 422, "invalid_value", "source_type")
    assert_error(add({**ok, "source_type": "notion"}), 400, "not_supported", "source_type")
    assert_error(add({**ok, "source_id": "a/b"}), 422, "invalid_value", "source_id")
    assert_error(add({**ok, "source_id": ""}), 422, "invalid_value", "source_id")
    assert_error(add({"source_type": "local", "config": {}}), 422, "missing_field", "source_id")
    assert_error(add({**ok, "config": {}}), 422, "missing_field", "config.watch_paths")
    assert_error(add({**ok, "config": {"watch_paths": ["relative/dir"]}}), 422,
                 "invalid_value", "config.watch_paths")
    assert_error(add({**ok, "config": {"watch_paths": [folder + "/missing"]}}), 422,
                 "invalid_value", "config.watch_paths")
    assert_error(add({**ok, "config": {"watch_paths": [folder], "colour": "red"}}), 422,
                 "invalid_value", "config.colour")
    assert_error(add({**ok, "config": {"watch_paths": [folder], "file_patterns": "*.md"}}),
                 422, "invalid_value", "config.file_patterns")
    assert_error(add({**ok, "poll_interval": 1}), 422, "invalid_value", "poll_interval")
    assert_error(add({**ok, "surprise": 1}), 422, "invalid_value", "surprise")
    # A folder inside, around or equal to another source's would index files twice.
    docs = client.ok("GET", "/api/v1/sources")[0]["config"]["watch_paths"][0]
    for inside in (docs, docs + "/lava", str(Path(docs).parent)):
        Path(inside).mkdir(exist_ok=True)
        err = assert_error(add({**ok, "config": {"watch_paths": [inside]}}), 422,
                           "invalid_value", "config.watch_paths")
        assert "'docs'" in err["message"] and "twice" in err["message"], err
    assert_error(client.post("/api/v1/sources", content=b"{not json",
                             headers={"Content-Type": "application/json"}), 400, "bad_json")
    assert_error(client.post("/api/v1/sources", json=[1, 2]), 422, "invalid_value")
    assert [s["source_id"] for s in client.ok("GET", "/api/v1/sources")] == ["docs"]


def test_unknown_routes_and_methods_answer_in_the_error_shape(client):
    assert_error(client.get("/api/v1/nowhere"), 404, "not_found")
    assert_error(client.get("/api/v2/status"), 404, "not_found")
    r = client.request("PUT", "/api/v1/status")
    assert r.status_code in (404, 405)
    assert_error_shape(r)
    assert_error(client.get("/api/v1/jobs/no-such-job"), 404, "unknown_job")
    assert_error(client.delete("/api/v1/jobs/no-such-job"), 404, "unknown_job")


# -- sync: jobs, manual passes, pause -------------------------------------------------------------

def test_cleanup_runs_as_a_job(live, client):
    job = client.job("/api/v1/sync/cleanup")
    assert job["kind"] == "cleanup" and job["state"] == "done", job
    assert job["error"] is None and job["finished_at"] >= job["created_at"]
    assert isinstance(job["result"], dict)
    assert job["id"] in [j["id"] for j in client.ok("GET", "/api/v1/jobs")]
    kinds = [e for e in live.server.context.events.since(0)[0] if e[1] == "job"
             and e[2]["id"] == job["id"]]
    assert kinds[0][2]["state"] == "running" and kinds[-1][2]["state"] == "done"
    assert fts(client, "quokka")  # the index still answers


def test_manual_sync_of_all_one_source_and_paths(live, client):
    docs = live.docs
    (docs / "manual_all.md").write_text("# Manual\n\nA pangolin rolls into a scaly ball.\n")
    job = client.job("/api/v1/sync/manual")  # no body: every enabled source
    assert job["state"] == "done", job
    (report,) = job["result"]
    assert report["source_id"] == "docs" and report["added"] == 1
    assert fts(client, "pangolin")

    (docs / "manual_one.md").write_text("# One\n\nThe okapi is a forest giraffe.\n")
    job = client.job("/api/v1/sync/manual", json={"source_id": "docs"})
    assert [r["added"] for r in job["result"]] == [1] and fts(client, "okapi")

    (docs / "lava" / "manual_path.md").write_text("# Path\n\nObsidian is volcanic glass.\n")
    (docs / "not_this_time.md").write_text("# Later\n\nA tardigrade survives vacuum.\n")
    job = client.job("/api/v1/sync/manual", json={"paths": [str(docs / "lava")]})
    assert [r["source_id"] for r in job["result"]] == ["docs"] and fts(client, "obsidian")

    assert_error(client.post("/api/v1/sync/manual", json={"source_id": "nope"}), 404,
                 "unknown_source", "source_id")
    assert_error(client.post("/api/v1/sync/manual", json={"paths": ["/elsewhere/x.md"]}), 422,
                 "invalid_value", "paths")
    assert_error(client.post("/api/v1/sync/manual", json={"source": "docs"}), 422,
                 "invalid_value", "source")
    assert_error(client.post("/api/v1/sync/manual", content=b"{",
                             headers={"Content-Type": "application/json"}), 400, "bad_json")


def test_pause_holds_ingestion_until_resumed(live, client):
    docs = live.docs
    body = client.ok("POST", "/api/v1/pipeline/stop")
    try:
        assert body == {"paused": True, "paused_until": None}
        assert client.ok("GET", "/api/v1/status")["paused"] is True
        assert client.ok("GET", "/health")["paused"] is True
        (docs / "while_paused.md").write_text("# Paused\n\nA wombat's droppings are cubes.\n")
        n = len(finished(live, "docs"))
        assert client.ok("POST", "/api/v1/sources/local/docs/scan", 202)

        def held():
            s = client.ok("GET", "/api/v1/sync/status")
            (src,) = [x for x in s["sources"] if x["source_id"] == "docs"]
            return s["paused"] and src["state"] == "paused" and src["waiting"].startswith(
                "Paused") and src["queued"]

        wait_until(held, what="the source queued but held by the pause")
        assert fts(client, "wombat") == [] and len(finished(live, "docs")) == n
    finally:
        resumed = client.ok("POST", "/api/v1/pipeline/start")
    assert resumed == {"paused": False, "paused_until": None}
    assert client.ok("GET", "/api/v1/status")["paused"] is False
    wait_until(lambda: fts(client, "wombat"), what="the held file indexed after resume")
    kinds = [e.kind for e in live.events]
    assert "paused" in kinds and "resumed" in kinds

    timed = client.ok("POST", "/api/v1/pipeline/stop", json={"minutes": 30})
    client.ok("POST", "/api/v1/pipeline/start")
    assert timed["paused"] is True and timed["paused_until"] > 0
    assert_error(client.post("/api/v1/pipeline/stop", json={"minutes": 0}), 422,
                 "invalid_value", "minutes")
    assert_error(client.post("/api/v1/pipeline/stop", json={"hours": 1}), 422,
                 "invalid_value", "hours")
    assert live.service.paused == (False, None)


# -- search ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["hybrid", "vector", "fts"])
def test_search_gives_the_same_results_as_the_service(live, client, mode):
    query = "marsupial on an island" if mode != "fts" else "kettle"
    expected = [h.as_dict() for h in live.service.search(query, k=5, mode=mode)]
    got = client.ok("GET", "/api/v1/search", params={"q": query, "k": 5, "mode": mode})
    posted = client.ok("POST", "/api/v1/search", json={"query": query, "k": 5, "mode": mode})
    assert got == posted == {"query": query, "mode": mode, "results": expected}
    assert expected and len(expected) <= 5
    best = expected[0]["uri"]
    assert best.endswith("quokka.md" if mode != "fts" else "kettle.txt")


def test_search_filters_match_the_service(live, client):
    filters = SearchFilters(source_id="docs", path_prefix=str(live.docs / "lava"))
    expected = [h.as_dict() for h in live.service.search("volcanic", k=10, filters=filters)]
    got = client.ok("POST", "/api/v1/search", json={
        "query": "volcanic", "k": 10, "source_id": "docs",
        "path_prefix": str(live.docs / "lava")})["results"]
    assert got == expected and got and all("/lava/" in h["uri"] for h in got)
    assert fts(client, "kettle", source_id="other") == []
    assert client.ok("GET", "/api/v1/search", params={
        "q": "kettle", "mode": "fts", "modified_after": "2999-01-01"})["results"] == []


def test_bad_search_requests(client):
    for k in ("0", "1000", "x", "-1", "2.5"):
        assert_error(client.get("/api/v1/search", params={"q": "kettle", "k": k}), 422,
                     "invalid_value", "k")
    for k in (0, 1000, "x", None):
        assert_error(client.post("/api/v1/search", json={"query": "kettle", "k": k}), 422,
                     "invalid_value", "k")
    assert_error(client.get("/api/v1/search", params={"q": "kettle", "mode": "magic"}), 422,
                 "invalid_value", "mode")
    assert_error(client.post("/api/v1/search", json={"query": "kettle", "mode": "magic"}), 422,
                 "invalid_value", "mode")
    assert_error(client.get("/api/v1/search"), 422, "missing_field", "q")
    assert_error(client.get("/api/v1/search", params={"q": ""}), 422, "invalid_value", "q")
    assert_error(client.post("/api/v1/search", json={}), 422, "missing_field", "query")
    assert_error(client.post("/api/v1/search", json={"query": "x", "colour": 1}), 422,
                 "invalid_value", "colour")
    assert_error(client.get("/api/v1/search", params={"q": "x", "modified_after": "soon"}),
                 422, "invalid_value", "modified_after")
    for raw in (b"{\"query\": ", b"not json at all", b"\xff\xfe"):
        assert_error(client.post("/api/v1/search", content=raw,
                                 headers={"Content-Type": "application/json"}), 400,
                     "bad_json")


# -- failed files ---------------------------------------------------------------------------------

def test_failed_files_are_listed_and_retried(live, client):
    rows = client.ok("GET", "/api/v1/failed")
    names = {Path(r["uri"]).name: r for r in rows}
    assert set(BAD) <= set(names), rows
    for name in BAD:
        assert names[name]["status"] in ("failed", "skipped") and names[name]["error"]
    assert client.ok("GET", "/api/v1/failed", params={"source_id": "docs"}) == rows
    assert_error(client.get("/api/v1/failed", params={"source_id": "nope"}), 404,
                 "unknown_source", "source_id")
    assert_error(client.post("/api/v1/failed/retry", json={"source_id": "nope"}), 404,
                 "unknown_source", "source_id")
    assert_error(client.post("/api/v1/failed/retry", json={"doc_uids": "abc"}), 422,
                 "invalid_value", "doc_uids")

    n = len(finished(live, "docs"))
    one = names["encrypted.pdf"]["doc_uid"]
    assert client.ok("POST", "/api/v1/failed/retry", json={"doc_uids": [one]}) == {
        "retrying": 1}
    retried = client.ok("POST", "/api/v1/failed/retry", json={"source_id": "docs"})
    assert retried["retrying"] >= len(BAD)
    # The retry queues a pass; it fails the same files again, with the same reasons.
    wait_until(lambda: len(finished(live, "docs")) > n, what="the retry pass")
    wait_until(lambda: set(BAD) <= {Path(r["uri"]).name
                                    for r in client.ok("GET", "/api/v1/failed")},
               what="the bad files listed again")
    again = {Path(r["uri"]).name: r for r in client.ok("GET", "/api/v1/failed")}
    assert {again[b]["error"] for b in BAD} == {names[b]["error"] for b in BAD}


# -- backups --------------------------------------------------------------------------------------

def test_backup_as_a_job_then_listed(live, client, moto):
    before = client.ok("GET", "/api/v1/backups")
    assert before["snapshots"] == [] and before["this_device"]
    job = client.job("/api/v1/backups", timeout=180)
    assert job["kind"] == "backup" and job["state"] == "done", job
    snapshot_id = job["result"]["snapshot_id"]
    listed = client.ok("GET", "/api/v1/backups")
    assert [s["snapshot_id"] for s in listed["snapshots"]] == [snapshot_id]
    assert listed["snapshots"][0]["device_id"] == listed["this_device"]
    assert listed["last_backup"]["last_snapshot"].endswith(snapshot_id)
    assert client.ok("GET", "/api/v1/backups", params={
        "device": listed["this_device"]})["snapshots"] == listed["snapshots"]
    assert_error(client.get("/api/v1/backups", params={"device": "no-such-device"}), 409,
                 "failed")
    kinds = {e.kind for e in live.events}
    assert {"backup_started", "backup_finished"} <= kinds
    text = json.dumps([listed, job])
    assert "testing" not in text  # no credential in any answer


# -- the event stream -----------------------------------------------------------------------------

def test_event_stream_delivers_a_sync_and_resumes_after_a_reconnect(live, client):
    docs = live.docs
    stream = SseReader(live.url, live.token)
    try:
        assert stream.status == 200 and stream.retry_ms == 2000
        assert stream.headers["content-type"].startswith("text/event-stream")
        (docs / "streamed.md").write_text("# Streamed\n\nA capybara naps in warm water.\n")
        client.ok("POST", "/api/v1/sources/local/docs/scan", 202)
        seen = stream.wait_for(lambda evs: [e for e in evs if e.event == "sync_finished"
                                            and e.data["source_id"] == "docs"],
                               what="the scan's sync_finished")
        events = list(stream.events)
        ids = [e.id for e in events]
        assert ids == sorted(set(ids)) and None not in ids, ids
        progress = [e for e in events if e.event == "progress" and e.id < seen[0].id]
        assert progress and progress[-1].data["source_id"] == "docs"
        assert seen[0].data["report"]["added"] == 1
        last = events[-1].id
    finally:
        stream.close()

    # Missed while disconnected: a second scan; its events wait in the ring.
    (docs / "missed.md").write_text("# Missed\n\nA lyrebird mimics chainsaws.\n")
    n = len(finished(live, "docs"))
    client.ok("POST", "/api/v1/sources/local/docs/scan", 202)
    wait_until(lambda: len(finished(live, "docs")) > n, what="the second scan")
    log_ids = [e[0] for e in live.server.context.events.since(last)[0]]
    assert log_ids and log_ids[0] == last + 1

    resumed = SseReader(live.url, live.token, last_event_id=last)
    try:
        resumed.wait_for(lambda evs: [e for e in evs if e.event == "sync_finished"
                                      and e.data["report"]["added"] == 1],
                         what="the missed sync_finished")
        # Live events keep coming on the same stream, after the missed ones.
        client.ok("POST", "/api/v1/pipeline/stop")
        client.ok("POST", "/api/v1/pipeline/start")
        resumed.wait_for(lambda evs: [e for e in evs if e.event == "resumed"], what="resumed")
        ids = [e.id for e in resumed.events]
        assert ids[0] == last + 1, ids
        assert ids == list(range(last + 1, ids[-1] + 1)), ids  # every id once, in order
        assert not [e for e in resumed.events if e.event == "reset"]
    finally:
        resumed.close()

    only = SseReader(live.url, live.token, last_event_id=0, query="?kinds=sync_finished")
    try:
        got = only.wait_for(lambda evs: len(evs) >= len(finished(live, "docs")) and evs,
                            what="the replayed sync_finished events")
        assert {e.event for e in got} == {"sync_finished"}
        assert [e.id for e in got] == sorted({e.id for e in got})
    finally:
        only.close()

    bad = SseReader(live.url, live.token, last_event_id="yesterday")
    try:
        assert bad.status == 400 and json.loads(bad.body)["error"]["code"] == "bad_request"
    finally:
        bad.close()


def test_a_stream_from_a_restarted_server_resumes_from_its_start(live):
    """A client keeps its Last-Event-ID across a restart of the app, whose ids start again at
    1: it gets a reset and then the new events, not silence."""
    log = live.server.context.events
    ahead = log.last_id + 1000
    stream = SseReader(live.url, live.token, last_event_id=ahead)
    try:
        eid = log.add("test", {"n": 1})
        got = stream.wait_for(lambda evs: [e for e in evs if e.event == "test"],
                              what="the event after the reset")
        kinds = [e.event for e in stream.events]
        assert kinds[0] == "reset" and got[0].id == eid
    finally:
        stream.close()


# -- under load, and the end of the server --------------------------------------------------------

def test_requests_keep_answering_while_a_sync_runs(live, client):
    bulk = live.docs / "bulk"
    bulk.mkdir()
    for i in range(300):
        (bulk / f"b{i}.md").write_text(f"# Bulk {i}\n\n" + "\n\n".join(
            f"Paragraph {j} of bulk note {i} about topic {i % 17}." for j in range(6)))
    answers: list[int] = []
    errors: list[BaseException] = []
    job = client.ok("POST", "/api/v1/sync/manual", 202, json={"source_id": "docs"})
    running_seen = threading.Event()

    def hammer():
        c = live.client()
        try:
            while True:
                state = c.ok("GET", f"/api/v1/jobs/{job['id']}")["state"]
                if state != "running":
                    return
                running_seen.set()
                for method, path, kw in (
                        ("GET", "/health", {}), ("GET", "/api/v1/status", {}),
                        ("GET", "/api/v1/sync/status", {}), ("GET", "/api/v1/sources", {}),
                        ("GET", "/api/v1/failed", {}),
                        ("GET", "/api/v1/search", {"params": {"q": "topic 3", "k": 5}}),
                        ("POST", "/api/v1/search", {"json": {"query": "bulk", "k": 3}})):
                    answers.append(c.request(method, path, **kw).status_code)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert running_seen.is_set() and answers and set(answers) == {200}, set(answers)
    done = client.ok("GET", f"/api/v1/jobs/{job['id']}")
    assert done["state"] == "done" and done["result"][0]["added"] == 300, done
    assert done["progress"]["source_id"] == "docs" and done["progress"]["total"] == 300, done


def test_stopping_the_server_ends_open_streams(live, tmp_path):
    from app.api.server import ApiServer

    settings = load_settings(home=tmp_path / "second")
    server = ApiServer(live.service, settings, port=0)
    live.call(server.start())
    stream = SseReader(server.url, server._token)
    port = int(server.url.rsplit(":", 1)[1])
    try:
        live.call(server.stop(), timeout=60)  # returns only once the stream is closed
        wait_until(lambda: stream.ended, timeout=30, what="the end of the stream")
    finally:
        stream.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=10):
        pass
    assert "url" not in json.loads((settings.state_dir / "api.json").read_text())


# -- the daemon -----------------------------------------------------------------------------------

def _log_text(home: Path) -> str:
    log_dir = load_settings(home=home).paths.log_dir
    return "\n".join(p.read_text(errors="replace") for p in Path(log_dir).glob("*.log*"))


def test_the_daemon_serves_the_api_and_stops_once_on_sigterm(cli, home, docs, tmp_path):
    for rel, text in NOTES.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text)
    cli.ok("sources", "add", "local", str(docs), "--id", "docs")
    env = {**os.environ, "PYTHONPATH": str(REPO), "LANCEDB_SYNC_LOG_LEVEL": "debug"}
    app = [sys.executable, "-m", "app", "--home", str(home)]
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    settings = load_settings(home=home)
    api_json = settings.state_dir / "api.json"
    with out.open("w") as fout, err.open("w") as ferr:
        daemon = subprocess.Popen([*app, "run", "--plain", "--no-watch"], env=env, cwd=REPO,
                                  stdout=fout, stderr=ferr, text=True)
    try:
        def served():
            assert daemon.poll() is None, f"the daemon exited {daemon.returncode}: " \
                                          f"{err.read_text()}"
            try:
                info = json.loads(api_json.read_text())
            except (OSError, ValueError):
                return None
            return info if info.get("url") else None

        info = wait_until(served, timeout=240, step=0.1, what="api.json to name a URL")
        assert info["pid"] == daemon.pid and stat.S_IMODE(api_json.stat().st_mode) == 0o600
        c = Client(info["url"], info["token"])
        try:
            assert c.ok("GET", "/health")["running"] is True
            wait_until(lambda: [s for s in c.ok("GET", "/api/v1/sources")
                                if s["documents"] == len(NOTES)], timeout=180,
                       what="the first pass")
            hits = c.ok("GET", "/api/v1/search", params={"q": "marsupial", "k": 3})["results"]
            assert hits and hits[0]["uri"].endswith("quokka.md")
            assert_error(c.get("/api/v1/backups"), 409, "no_bucket")
            assert_error(c.post("/api/v1/backups"), 409, "no_bucket")
            assert_error(Client(info["url"], "wrong" * 9).get("/api/v1/status"), 401,
                         "unauthorized")
            assert_error(c.get("/health", headers={"Host": "evil.example"}), 403,
                         "forbidden_host")
        finally:
            c.close()

        # A second process on the same home cannot serve the index: exit 3, naming the URL.
        second = subprocess.run([*app, "api", "--plain", "--no-watch"], env=env, cwd=REPO,
                                capture_output=True, text=True, timeout=240)
        assert second.returncode == 3, second.stderr
        assert info["url"] in second.stderr
        assert json.loads(api_json.read_text())["url"] == info["url"]  # left alone

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=120) == 0, err.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(30)
    stderr = err.read_text()
    assert stderr.count("stopped") == 1, stderr
    assert f"REST API at {info['url']}" in stderr
    after = json.loads(api_json.read_text())
    assert "url" not in after and after["token"] == info["token"]
    port = int(info["url"].rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=10):
        pass
    logged = _log_text(home)
    assert "REST API at" in logged  # the log was written...
    assert info["token"] not in logged and info["token"] not in stderr  # ...without the token
    assert info["token"] not in out.read_text()




def test_a_cancelled_sync_job_says_what_happened(live, client):
    """The job is cancelled at a batch boundary, or, when the cancel came too late to stop
    the pass, it is done; never 'cancelled' with every file synced."""
    bulk = live.docs / "bulk_cancel"
    bulk.mkdir()
    for i in range(300):
        (bulk / f"c{i}.md").write_text(f"# C {i}\n\n" + "\n\n".join(
            f"Paragraph {j} of cancel note {i}." for j in range(6)))
    job = client.ok("POST", "/api/v1/sync/manual", 202, json={"source_id": "docs"})
    wait_until(lambda: client.ok("GET", f"/api/v1/jobs/{job['id']}")["progress"],
               what="the job's progress")
    assert client.ok("DELETE", f"/api/v1/jobs/{job['id']}")["id"] == job["id"]
    done = wait_until(lambda: client._finished(job["id"]), what="the job's end")
    (report,) = done["result"]
    assert done["state"] == ("cancelled" if report["cancelled"] else "done"), done
