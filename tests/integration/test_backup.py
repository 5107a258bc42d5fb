"""Backups against a real S3 endpoint (moto's server on loopback), through the CLI and the API."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import uuid
from pathlib import Path

import boto3
import lancedb
import pytest

from app.backup.auto import AutoBackup
from app.backup.errors import BackupAuthError, BackupConnectionError, IntegrityError
from app.backup.manager import BackupManager
from app.config import load_settings
from tests.helpers.s3server import TcpProxy, start_moto

pytestmark = pytest.mark.slow

WORDS = {
    "alpha.md": "# Alpha\n\nThe quokka is a small marsupial that lives on Rottnest Island.\n",
    "beta.txt": "Kettle descaling: use citric acid and rinse the kettle twice afterwards.\n",
    "nested/gamma.md": "# Gamma\n\nVolcanic basalt columns form when thick lava cools slowly.\n",
}
QUERIES = ("marsupial on an island", "citric acid", "cooling lava", "kettle")


@pytest.fixture(scope="module")
def moto():
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture
def bucket(moto, monkeypatch):
    name = f"bk-{uuid.uuid4().hex[:10]}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "S3_BUCKET": name,
                       "S3_ENDPOINT_URL": moto, "MAX_RETRIES": "1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    s3(moto).create_bucket(Bucket=name)
    return name


def s3(url):
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def objects(url, bucket, prefix=""):
    out = {}
    for page in s3(url).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["Size"]
    return out


def make_docs(root, words=WORDS):
    for rel, text in words.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def sync(cli):
    return json.loads(cli.ok("sync", "--json").out)[0]


def hits(cli, *args):
    return [(h["doc_uid"], h["chunk_id"]) for h in json.loads(cli.ok("search", *args,
                                                                      "--json").out)]


@pytest.fixture
def indexed(cli, docs, bucket):
    make_docs(docs)
    cli.ok("sources", "add", "local", str(docs), "--id", "docs")
    assert sync(cli)["added"] == 3
    return docs


def manager(home, **kw):
    return BackupManager(load_settings(home=home), **kw)


def test_backup_restore_search_and_incremental_resync(cli, home, indexed, tmp_path, capsys,
                                                      moto, bucket):
    out = json.loads(cli.ok("backup", "--json").out)
    assert out["uploaded_files"] == out["files"] > 0 and out["reused_files"] == 0
    listing = json.loads(cli.ok("snapshots", "--json").out)
    assert [s["snapshot_id"] for s in listing] == [out["snapshot_id"]]
    assert listing[0]["tables"]["processed_documents"]["rows"] == 3
    expected = {q: hits(cli, q) for q in QUERIES}

    # Search the snapshot in place on S3, read-only, without downloading it.
    device = out["device_id"]
    for q in QUERIES:
        assert hits(cli, "--snapshot", device, q) == expected[q]
    assert hits(cli, "--snapshot", f"{device}/{out['snapshot_id']}", "quokka", "--mode",
                "fts") == hits(cli, "quokka", "--mode", "fts")

    # A fresh home on "another machine": restore, then search with no re-embedding.
    from tests.conftest import Cli

    other = Cli(tmp_path / "home2", capsys)
    restored = json.loads(other.ok("restore", "--json").out)
    assert restored["snapshot_id"] == out["snapshot_id"]
    assert restored["sources_restored"] == 1
    assert not (tmp_path / "home2" / "cache" / "embeddings.sqlite3").exists()
    for q in QUERIES:
        assert hits(other, q) == expected[q]
    status = json.loads(other.ok("status", "--json").out)
    assert status["documents"] == 3 and status["chunks"] == out["tables"][
        "document_chunks"]["rows"]

    # The same folders synced on the new machine: new inodes and mtimes, same contents → no
    # document is re-extracted or re-embedded.
    for p in indexed.rglob("*.*"):
        p.write_bytes(p.read_bytes())
    rep = sync(other)
    assert (rep["added"], rep["modified"], rep["deleted"], rep["chunks_embedded"]) == \
        (0, 0, 0, 0)
    assert rep["touched"] + rep["unchanged"] == 3
    # One real edit is the only thing indexed again.
    (indexed / "beta.txt").write_text("Kettle descaling: vinegar works too.\n")
    rep = sync(other)
    assert (rep["added"], rep["modified"], rep["chunks_embedded"]) == (0, 1, 1)

    # A non-empty index is not overwritten without --force; with it, it is.
    r = other("restore")
    assert r.code == 2 and "--force" in r.err
    other.ok("restore", "--force")
    assert hits(other, "citric acid") == expected["citric acid"]


def test_second_backup_uploads_only_new_files(cli, home, indexed, moto, bucket, monkeypatch):
    monkeypatch.setenv("S3_SSE", "aes256")
    monkeypatch.setenv("BACKUP_MAX_BANDWIDTH_MB", "50")
    first = json.loads(cli.ok("backup", "--json").out)
    before = objects(moto, bucket)
    (indexed / "beta.txt").write_text("Kettle descaling: vinegar works too.\n")
    assert sync(cli)["modified"] == 1
    second = json.loads(cli.ok("backup", "--json").out)
    after = objects(moto, bucket)
    m = manager(home)
    s1, s2 = (m.resolve(f"{first['device_id']}/{x['snapshot_id']}") for x in (first, second))
    new = {(f.path, f.sha256): f.size for f in s2.files} .keys() - \
        {(f.path, f.sha256) for f in s1.files}
    new_bytes = sum(f.size for f in s2.files if (f.path, f.sha256) in new)
    assert 0 < second["uploaded_files"] == len(new) < second["files"]
    assert second["uploaded_bytes"] == new_bytes
    assert second["reused_files"] == second["files"] - len(new)
    data_keys = lambda objs: {k for k in objs if "/snapshots/" not in k}  # noqa: E731
    assert len(data_keys(after)) == len(data_keys(before)) + len(new)
    assert sum(after[k] for k in data_keys(after) - data_keys(before)) == new_bytes
    for key in after:
        assert s3(moto).head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"
    # Nothing changed: nothing to upload, one more (tiny) snapshot manifest.
    third = json.loads(cli.ok("backup", "--json").out)
    assert third["uploaded_files"] == 0 and third["uploaded_bytes"] == 0


def test_backup_while_a_sync_commits(home, docs, bucket, tmp_path):
    from app.config import save_sources
    from app.core.sync import Indexer
    from app.models import SourceConfig, SourceType
    from app.sources.registry import make_source

    make_docs(docs, {f"f{i:03}.txt": f"Note {i}: " + " ".join(f"word{i * j}" for j in range(60))
                     for i in range(150)})
    settings = load_settings(home=home)
    src = SourceConfig(SourceType.LOCAL_FILESYSTEM, "docs", {"watch_paths": [str(docs)]})
    settings = save_sources(settings, (src,))
    make_docs(docs, {"first.txt": "the very first note"})
    with Indexer(settings, sources=make_source) as ix:  # an index to begin with
        ix.sync([SourceConfig(SourceType.LOCAL_FILESYSTEM, "docs",
                              {"watch_paths": [str(docs)], "file_patterns": ["first.txt"]})])

    import app.core.pipeline as core_sync

    done = threading.Event()
    errors = []

    def run_sync():
        try:
            with Indexer(settings, sources=make_source) as ix:
                ix.sync([src])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    old_batch = core_sync.BATCH_DOCS
    core_sync.BATCH_DOCS = 10  # many small commits, so the backups land between them
    try:
        t = threading.Thread(target=run_sync)
        t.start()
        m = manager(home)
        snaps = []
        while not done.is_set():  # as many as fit while the sync commits (at least one)…
            snaps.append(m.backup(prune=False).snapshot)
        t.join()
        snaps.append(m.backup(prune=False).snapshot)  # …and one of the finished index
    finally:
        core_sync.BATCH_DOCS = old_batch
    assert not errors
    # Every snapshot restores (each table opens at its pinned version with the recorded rows)
    # and, after the crash-style repair, is consistent: no chunk without its document.
    for i, snap in enumerate(snaps):
        dest = tmp_path / f"r{i}"
        m.restore(snap, target=dest)
        db = lancedb.connect(str(dest))
        for t in snap.tables:
            table = db.open_table(t.name)
            assert (table.version, table.count_rows()) == (t.version, t.rows)
    rows = [s.table("processed_documents").rows for s in snaps]
    print("snapshot rows during the sync:", rows)
    assert len(set(rows)) >= 2, rows  # some snapshots were taken mid-sync


def test_endpoint_gone_mid_upload_then_retry(home, cli, docs, monkeypatch, moto, bucket,
                                             tmp_path):
    upstream = moto.removeprefix("http://").split(":")
    proxy = TcpProxy((upstream[0], int(upstream[1])))
    monkeypatch.setenv("S3_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("BACKUP_CONCURRENCY", "1")
    make_docs(docs)
    cli.ok("sources", "add", "local", str(docs), "--id", "docs")
    sync(cli)
    first = manager(home).backup()
    make_docs(docs, {f"more/n{i}.md": f"# Note {i}\n\nfresh words number {i}\n"
                     for i in range(20)})
    sync(cli)

    def cut_after_two(p):
        if p.phase == "uploading" and p.files_done >= 2:
            proxy.cut()

    with pytest.raises(BackupConnectionError, match="Cannot reach"):
        manager(home).backup(on_progress=cut_after_two)
    proxy.resume()
    present = {k.split("/index/", 1)[1] for k in objects(moto, bucket) if "/index/" in k}
    m = manager(home)
    assert [s.snapshot_id for s in m.snapshots()] == [first.snapshot.snapshot_id]
    m.restore(m.resolve(None), target=tmp_path / "previous")
    retry = m.backup()
    needed = {f.path for f in retry.snapshot.files}
    cut_run_uploads = present - {f.path for f in first.snapshot.files}
    assert len(cut_run_uploads) >= 2  # what the cut run uploaded is kept, not uploaded again
    assert retry.uploaded_files == len(needed - present) > 0
    assert retry.reused_files == len(needed & present)
    assert cut_run_uploads <= needed
    proxy.cut()


def test_cancel_mid_upload_publishes_nothing(home, indexed, moto, bucket):
    from app.backup.errors import BackupCancelled

    cancel = threading.Event()

    def cancel_after_one(p):
        if p.phase == "uploading" and p.files_done >= 1:
            cancel.set()

    with pytest.raises(BackupCancelled):
        manager(home).backup(on_progress=cancel_after_one, cancel=cancel)
    assert manager(home).snapshots() == []
    assert not any("lease.json" in k for k in objects(moto, bucket))
    assert manager(home).backup().uploaded_files > 0


def test_cleanup_of_old_versions_during_an_upload_cannot_break_it(home, indexed, bucket,
                                                                  monkeypatch, tmp_path):
    monkeypatch.setenv("BACKUP_CONCURRENCY", "1")
    index = home / "data" / "index"
    removed = []

    def clean_up_everything(p):  # what the writer's cleanup could do to an old version's files
        if p.phase == "uploading" and not removed:
            for f in index.rglob("*.lance"):
                if f.is_file():
                    f.unlink()
                    removed.append(f)

    m = manager(home)
    snap = m.backup(on_progress=clean_up_everything).snapshot
    assert removed
    m.restore(snap, target=tmp_path / "restored")
    assert lancedb.connect(str(tmp_path / "restored")).open_table(
        "processed_documents").count_rows() == 3
    assert not (home / "data" / ".index.backup-pin").exists()


def test_corrupted_object_is_named_and_refused(cli, home, indexed, moto, bucket, tmp_path,
                                               capsys):
    out = json.loads(cli.ok("backup", "--json").out)
    snap = manager(home).resolve(out["device_id"])
    victim = next(f for f in snap.files if "/data/" in f.path)
    key = f"lancedb-sync/devices/{out['device_id']}/index/{victim.path}"
    s3(moto).put_object(Bucket=bucket, Key=key, Body=b"x" * victim.size)  # same size, bad bytes
    from tests.conftest import Cli

    other = Cli(tmp_path / "home2", capsys)
    r = other("restore")
    assert r.code == 1 and victim.path in r.err and "checksum" in r.err
    assert not (tmp_path / "home2" / "data" / "index").exists()
    with pytest.raises(IntegrityError) as info:
        manager(tmp_path / "home2").restore(snap, target=tmp_path / "elsewhere")
    assert info.value.path == victim.path
    for extra in ((), ("--download",)):
        r = cli("backup", "verify", *extra)
        assert r.code == 1 and victim.path in r.out


def tree(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_manifest_with_unsafe_paths_is_refused_and_nothing_is_written(cli, home, indexed, moto,
                                                                         bucket, tmp_path):
    out = json.loads(cli.ok("backup", "--json").out)
    device = out["device_id"]
    prefix = f"lancedb-sync/devices/{device}/"
    key = f"{prefix}snapshots/{out['snapshot_id']}.json"
    original = json.loads(s3(moto).get_object(Bucket=bucket, Key=key)["Body"].read())
    index = home / "data" / "index"
    before = tree(index)
    elsewhere = tmp_path / "elsewhere"
    body = b"planted by someone who can write to the bucket\n"
    planted = {"path": "", "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    def plant_file(path):
        def mutate(m):
            m["files"].append({**planted, "path": path})
            # The object exists too, so a restore that trusted the path would write it.
            s3(moto).put_object(Bucket=bucket, Key=f"{prefix}{m['root']}/{path}", Body=body)
        return mutate

    cases = [(path, plant_file(path)) for path in (
        str(tmp_path / "planted-absolute.txt"),
        "processed_documents.lance/../../../../planted-dotdot.txt",
        "processed_documents.lance\\..\\..\\planted-backslash.txt",
        "C:/planted-drive.txt",
        "processed_documents.lance//data/planted-empty.lance",
        "other.lance/data/planted-other.lance",
    )] + [
        ("../../../planted-id", lambda m: m.update(snapshot_id="../../../planted-id")),
        ("/tmp/planted.manifest", lambda m: m["tables"][0].update(
            manifest="/tmp/planted.manifest")),
    ]
    restores = (("restore", "--force"), ("restore", "--to", str(elsewhere)))
    # Every command that reads manifests refuses the first case; the restores, every case.
    others = (("backup", "verify"), ("search", "--snapshot", device, "quokka"), ("snapshots",),
              ("backup",))
    for i, (entry, mutate) in enumerate(cases):
        manifest = copy.deepcopy(original)
        mutate(manifest)
        s3(moto).put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
        for args in restores + (others if i == 0 else ()):
            r = cli(*args)
            assert r.code == 1, (entry, args, r)
            assert repr(entry) in r.err and key in r.err, (entry, args, r.err)
            assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
        assert not [p for p in tmp_path.rglob("*") if "planted" in p.name], entry
        assert not [p for p in tmp_path.rglob("*") if ".restoring-" in p.name], entry
        assert not elsewhere.exists()
        assert tree(index) == before, entry
    # The untouched manifest restores: what failed above was the planted entries alone.
    s3(moto).put_object(Bucket=bucket, Key=key, Body=json.dumps(original).encode())
    cli.ok("restore", "--to", str(elsewhere))
    assert tree(elsewhere).items() <= before.items()  # a snapshot leaves old manifests out


def test_restore_refuses_to_follow_a_link_out_of_its_staging_folder(cli, home, indexed, bucket,
                                                                    tmp_path):
    out = json.loads(cli.ok("backup", "--json").out)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    staging = tmp_path / f".elsewhere.restoring-{out['snapshot_id']}"
    staging.mkdir()
    (staging / "processed_documents.lance").symlink_to(outside, target_is_directory=True)
    r = cli("restore", "--to", str(tmp_path / "elsewhere"))
    assert r.code == 1 and "outside the staging folder" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1
    assert [p.name for p in outside.iterdir()] == ["keep.txt"]
    assert not staging.exists() and not (tmp_path / "elsewhere").exists()
    cli.ok("restore", "--to", str(tmp_path / "elsewhere"))  # a fresh attempt is not hindered


def test_prune_keeps_every_file_a_kept_snapshot_needs(cli, home, indexed, moto, bucket,
                                                      tmp_path):
    refs = []
    for i in range(4):
        (indexed / f"extra{i}.md").write_text(f"# Extra {i}\n\nmore words about topic {i}\n")
        sync(cli)
        refs.append(json.loads(cli.ok("backup", "--json", "--no-prune").out)["snapshot_id"])
    before = objects(moto, bucket)
    out = json.loads(cli.ok("backup", "prune", "--keep-last", "2", "--keep-days", "0",
                            "--json").out)
    # Two snapshots can share a second, and ids sort by the second only: compare as a set.
    assert out["kept"] == refs[:1:-1] and set(out["dropped"]) == set(refs[:2])
    after = objects(moto, bucket)
    assert out["deleted_objects"] > 0
    assert len(before) - len(after) == out["deleted_objects"] + 2  # + two snapshot manifests
    m = manager(home)
    kept = m.snapshots()
    assert [s.snapshot_id for s in kept] == refs[2:]
    for s in kept:
        assert m.verify(s).ok
        m.restore(s, target=tmp_path / s.snapshot_id)
        rows = lancedb.connect(str(tmp_path / s.snapshot_id)).open_table(
            "processed_documents").count_rows()
        assert rows == s.table("processed_documents").rows


def test_wrong_secret_and_missing_permission_are_named(home, indexed, moto, bucket,
                                                       monkeypatch):
    from moto import settings as moto_settings
    from moto.core.authorization import ActionAuthenticatorMixin

    iam = boto3.client("iam", endpoint_url=moto, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    user = f"u{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
        "s3:ListBucket", "s3:GetObject", "s3:PutObject"], "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    old = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count
    moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = 0, 0
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        with pytest.raises(BackupAuthError, match="secret access key") as info:
            manager(home).backup()
        assert "not-the-secret" not in str(info.value)
        # A credentials provider (the keyring's hook) wins over the environment.
        good = {"aws_access_key_id": key["AccessKeyId"],
                "aws_secret_access_key": key["SecretAccessKey"]}
        assert manager(home, credentials_provider=lambda: good).test_connection()[0].ok
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        checks = {c.name: c for c in manager(home).test_connection()}
        assert checks["list"].ok and checks["put"].ok and checks["get"].ok
        assert not checks["delete"].ok and checks["delete"].permission == "s3:DeleteObject"
        assert "s3:DeleteObject" in checks["delete"].message
    finally:
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = old


def test_debug_log_holds_no_credentials_and_is_private(cli, home, indexed, bucket,
                                                        monkeypatch):
    key_id = "ASIA" + uuid.uuid4().hex[:16].upper()
    secret = f"{uuid.uuid4().hex}/{uuid.uuid4().hex[:8]}+Sec"
    token = f"FwoGZXIvYXdzE{uuid.uuid4().hex}/{uuid.uuid4().hex}+{uuid.uuid4().hex}=="
    for name, value in (("AWS_ACCESS_KEY_ID", key_id), ("AWS_SECRET_ACCESS_KEY", secret),
                        ("AWS_SESSION_TOKEN", token), ("LANCEDB_SYNC_LOG_LEVEL", "debug")):
        monkeypatch.setenv(name, value)
    log = home / "logs" / "lancedb-sync.log"

    # With the libraries' debug output let through, every request is logged in full: the
    # places the credentials travel (headers, the canonical request, the signature) are there,
    # their values are not. No time limit: a loaded machine may be slow.
    r = cli.subprocess("backup", env={"LANCEDB_SYNC_DEBUG_LIBRARIES": "1"}, timeout=None)
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    assert re.search(r" DEBUG botocore\.\S+: .*Authorization", text)
    assert re.search(r"(?i)x-amz-security-token", text)
    from urllib.parse import quote

    for value in (key_id, secret, token, quote(secret, safe=""), quote(token, safe="")):
        assert value not in text
    assert "[REDACTED]" in text
    assert log.stat().st_mode & 0o777 == 0o600
    assert log.parent.stat().st_mode & 0o777 == 0o700

    # Level debug alone keeps those libraries at INFO.
    size = log.stat().st_size
    r = cli.subprocess("backup", timeout=None)
    assert r.returncode == 0, r.stderr
    with log.open() as fh:
        fh.seek(size)
        tail = fh.read()
    assert "backup " in tail  # this run's own lines are there…
    assert not re.search(r" DEBUG (botocore|boto3|s3transfer|urllib3)\b", tail)  # …not theirs
    assert all(v not in tail for v in (key_id, secret, token))


def test_lease_held_by_another_machine(cli, home, indexed, moto, bucket):
    import time

    device = json.loads((home / "data" / "device.json").read_text())["device_id"] \
        if (home / "data" / "device.json").exists() else manager(home).device.device_id
    key = f"lancedb-sync/devices/{device}/lease.json"
    lease = {"device_id": device, "machine": "0ther0machine000", "host": "laptop-b",
             "acquired_at": time.time(), "expires_at": time.time() + 600}
    s3(moto).put_object(Bucket=bucket, Key=key, Body=json.dumps(lease).encode())
    r = cli("backup")
    assert r.code == 3
    assert "laptop-b" in r.err and "device.json" in r.err and device in r.err
    lease["expires_at"] = time.time() - 1  # that machine is gone and its lease ran out
    s3(moto).put_object(Bucket=bucket, Key=key, Body=json.dumps(lease).encode())
    cli.ok("backup")
    assert key not in objects(moto, bucket)  # released after the backup
    r = cli.ok("backup", "test")
    assert [line.split()[:2] for line in r.out.splitlines()] == [
        ["ok", "list"], ["ok", "put"], ["ok", "get"], ["ok", "delete"]]


def test_scheduler_backs_up_after_changes_at_most_every_interval(home, indexed, bucket):
    now = [1_000_000.0]
    sched = AutoBackup(load_settings(home=home), clock=lambda: now[0])
    assert sched.run_if_due(changed=False) is None  # nothing changed yet
    first = sched.run_if_due(changed=True)
    assert first is not None
    now[0] += 60
    assert sched.run_if_due(changed=True) is None  # within the interval: stays pending
    assert sched.status()["pending"]
    now[0] += 3600
    seen = []
    second = sched.run_if_due(changed=False, on_progress=seen.append)
    assert second is not None and second.uploaded_files == 0
    assert seen[-1].phase == "done"
    assert not sched.status()["pending"]
    assert sched.status()["last_snapshot"] == second.snapshot.ref
    cancel = threading.Event()
    cancel.set()
    now[0] += 3600
    sched.note_change()
    from app.backup.errors import BackupCancelled

    with pytest.raises(BackupCancelled):
        sched.run_if_due(changed=True, cancel=cancel)
    assert sched.status()["pending"] and "cancelled" in sched.status()["last_error"]


def test_restore_lists_devices_when_the_bucket_holds_several(cli, home, indexed, tmp_path,
                                                             capsys, bucket):
    from tests.conftest import Cli

    cli.ok("backup")
    second = Cli(tmp_path / "home2", capsys)
    second.ok("sources", "add", "local", str(indexed), "--id", "docs")
    sync(second)
    second.ok("backup")
    third = Cli(tmp_path / "home3", capsys)
    r = third("restore")
    assert r.code == 2 and "several devices" in r.err
    dev = manager(home).device.device_id
    third.ok("restore", dev)
    assert Path(tmp_path / "home3" / "data" / "index").is_dir()


def test_the_service_backs_up_after_a_changing_pass_and_on_request(home, docs, bucket):
    import asyncio

    from app.config import save_sources
    from app.models import SourceConfig, SourceType
    from app.service.orchestrator import Service

    make_docs(docs)
    settings = save_sources(load_settings(home=home), (SourceConfig(
        SourceType.LOCAL_FILESYSTEM, "docs", {"watch_paths": [str(docs)]},
        poll_interval=3600),))

    async def wait(predicate, timeout=60.0):
        for _ in range(int(timeout / 0.05)):
            if predicate():
                return True
            await asyncio.sleep(0.05)
        return False

    async def scenario():
        service = Service(settings, watch=False)
        events = []
        service.events.subscribe(events.append)
        await service.start()
        try:
            # The first pass added three documents: a backup is due and runs by itself.
            assert await wait(lambda: any(e.kind == "backup_finished" for e in events))
            first = next(e for e in events if e.kind == "backup_finished").result
            assert first["tables"]["processed_documents"]["rows"] == 3
            status = service.get_status().backup
            assert status["last_snapshot"].endswith(first["snapshot_id"])
            assert not status["pending"]
            # A change within the interval (an hour) stays pending; "Back up now" takes it.
            (docs / "delta.md").write_text("# Delta\n\nRiver deltas spread silt widely.\n")
            service.sync_now("docs")
            assert await wait(lambda: len([e for e in events if e.kind == "sync_finished"]) == 2)
            assert await wait(lambda: service.get_status().backup["pending"])
            assert len([e for e in events if e.kind == "backup_finished"]) == 1
            second = await service.backup_now()
            assert second["tables"]["processed_documents"]["rows"] == 4
            assert 0 < second["uploaded_files"] < second["files"]
            assert not service.get_status().backup["pending"]
        finally:
            await service.stop()
        assert any(e.kind == "backup_progress" for e in events)

    asyncio.run(scenario())
