"""The pure parts of backups: upload and retention plans, manifests, settings. No S3 here."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.backup.errors import BackupConfigError, UnsafeSnapshotError
from app.backup.identity import load_device
from app.backup.s3 import S3Settings
from app.backup.snapshot import (
    FileEntry,
    RemoteObject,
    Snapshot,
    TableEntry,
    manifest_version,
    plan_retention,
    plan_upload,
    table_files,
    unreferenced,
)
from app.config import load_settings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def snap(sid, created, files=(), root="index"):
    return Snapshot(sid, "dev1", "laptop", "m", created.isoformat().replace("+00:00", "Z"),
                    "0.1", 1, root, "docs", "chunks", "model",
                    (TableEntry("docs", 3, 10, "docs.lance/_versions/x.manifest"),),
                    tuple(files))


def f(path, size=10, sha="a"):
    return FileEntry(path, size, sha)


def test_plan_uploads_only_what_the_bucket_lacks_manifests_last():
    local = [f("t.lance/_versions/9.manifest", 5, "m"), f("t.lance/data/a.lance", 10, "a"),
             f("t.lance/data/b.lance", 20, "b"), f("t.lance/data/c.lance", 30, "c")]
    remote = {"t.lance/data/a.lance": RemoteObject(10, "a"),  # present
              "t.lance/data/b.lance": RemoteObject(19, "b"),  # truncated: upload again
              "t.lance/data/c.lance": RemoteObject(30, None)}  # unknown checksum: upload
    plan = plan_upload(local, remote, {})
    assert [x.path for x in plan.present] == ["t.lance/data/a.lance"]
    assert [x.path for x in plan.upload] == ["t.lance/data/b.lance", "t.lance/data/c.lance",
                                             "t.lance/_versions/9.manifest"]
    assert plan.upload_bytes == 55 and plan.conflicts == ()


def test_plan_flags_a_path_a_snapshot_holds_with_other_contents():
    plan = plan_upload([f("t.lance/_versions/1.manifest", 5, "new")],
                       {"t.lance/_versions/1.manifest": RemoteObject(5, "old")},
                       {"t.lance/_versions/1.manifest": "old"})
    assert plan.conflicts == ("t.lance/_versions/1.manifest",)


def test_retention_keeps_last_n_and_last_days_and_never_less_than_one():
    snaps = [snap(f"s{i}", NOW - timedelta(days=10 - i)) for i in range(10)]
    plan = plan_retention(snaps, keep_last=2, keep_days=3, now=NOW)
    assert sorted(s.snapshot_id for s in plan.keep) == ["s7", "s8", "s9"]
    assert len(plan.drop) == 7
    plan = plan_retention(snaps, keep_last=0, keep_days=0, now=NOW)
    assert [s.snapshot_id for s in plan.keep] == ["s9"]


def test_unreferenced_spares_every_file_of_a_kept_snapshot():
    kept = [snap("s1", NOW, [f("t.lance/data/a.lance"), f("t.lance/data/b.lance")])]
    objects = ["index/t.lance/data/a.lance", "index/t.lance/data/b.lance",
               "index/t.lance/data/old.lance", "index-2/t.lance/data/a.lance"]
    assert unreferenced(objects, kept) == ["index-2/t.lance/data/a.lance",
                                           "index/t.lance/data/old.lance"]


SHA = "ab" * 32


def valid_snap(files=("docs.lance/data/a.lance",)):
    return replace(snap("20261130T120000Z-1a2b", NOW, [f(p, 3, SHA) for p in files]), tables=(
        TableEntry("docs", 3, 10, "docs.lance/_versions/3.manifest"),
        TableEntry("chunks", 5, 40, "chunks.lance/_versions/5.manifest")))


def test_manifest_round_trip_and_newer_format_refused():
    s = valid_snap()
    assert Snapshot.from_json(s.to_json()) == s
    assert s.total_bytes == 3 and s.created == NOW
    newer = s.to_json().replace(b'"format": 1', b'"format": 99')
    with pytest.raises(ValueError, match="newer"):
        Snapshot.from_json(newer)


@pytest.mark.parametrize("bad", [
    "/etc/cron.d/evil", "docs.lance/../../evil", "..", "docs.lance/./data/a.lance",
    "docs.lance\\..\\..\\evil", "C:/Windows/evil.dll", "c:evil", "docs.lance//data/a.lance",
    "docs.lance/data/", "", "other.lance/data/a.lance", "docs.lance", "data/a.lance",
    "docs.lance/data/a\x00.lance",
])
def test_manifest_with_an_unsafe_file_path_is_refused_naming_it(bad):
    raw = valid_snap(["chunks.lance/data/ok.lance", bad]).to_json()
    with pytest.raises(UnsafeSnapshotError) as info:
        Snapshot.from_json(raw, "The snapshot manifest s3://b/k.json")
    assert info.value.entry == bad
    assert repr(bad) in str(info.value) and "s3://b/k.json" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("field, value", [
    ("snapshot_id", "../../x"), ("device_id", "a/b"), ("root", ".."),
    ("documents_table", "../docs"), ("chunks_table", "docs"),
])
def test_manifest_with_an_unsafe_name_is_refused(field, value):
    data = json.loads(valid_snap().to_json())
    data[field] = value
    with pytest.raises(UnsafeSnapshotError) as info:
        Snapshot.from_json(json.dumps(data))
    assert info.value.entry == value


def test_manifest_with_an_unsafe_table_entry_or_file_record_is_refused():
    def refused(mutate):
        data = json.loads(valid_snap().to_json())
        mutate(data)
        with pytest.raises(UnsafeSnapshotError) as info:
            Snapshot.from_json(json.dumps(data))
        return info.value.entry

    assert refused(lambda d: d["tables"][0].update(manifest="/tmp/x.manifest")) == \
        "/tmp/x.manifest"
    assert refused(lambda d: d["tables"][0].update(manifest="docs.lance/data/a.lance")) == \
        "docs.lance/data/a.lance"
    assert refused(lambda d: d["tables"].pop()) == "['docs']"
    assert refused(lambda d: d["files"].append(dict(d["files"][0]))) == \
        "docs.lance/data/a.lance"
    assert refused(lambda d: d["files"][0].update(sha256="../x")) == "../x"
    assert refused(lambda d: d["files"][0].update(size=-1)) == "-1"


def test_manifest_names_and_table_files(tmp_path):
    assert manifest_version("18446744073709551612.manifest") == 3
    assert manifest_version("7.manifest") == 7
    assert manifest_version("latest_version_hint.json") is None
    t = tmp_path / "t.lance"
    for rel in ("data/a.lance", "data/b.lance#3", "_versions/18446744073709551612.manifest",
                "_versions/18446744073709551613.manifest", "_versions/latest_version_hint.json",
                "_indices/u1/part.lance", "_transactions/0-x.txn"):
        (t / rel).parent.mkdir(parents=True, exist_ok=True)
        (t / rel).write_text("x")
    got = [x.path for x in table_files(tmp_path, "t", "18446744073709551612.manifest")]
    assert got == ["t.lance/_indices/u1/part.lance", "t.lance/_transactions/0-x.txn",
                   "t.lance/_versions/18446744073709551612.manifest", "t.lance/data/a.lance"]


def test_s3_settings(tmp_path):
    with pytest.raises(BackupConfigError, match="S3_BUCKET"):
        S3Settings.from_settings(load_settings(home=tmp_path, env={}), env={})
    cfg = S3Settings.from_settings(load_settings(home=tmp_path, env={
        "S3_BUCKET": "b1", "S3_PREFIX": "/team/x/", "S3_SSE": "aws:kms",
        "S3_SSE_KMS_KEY_ID": "k1", "CHUNK_SIZE_MB": "16"}),
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert (cfg.prefix, cfg.endpoint_url, cfg.path_style) == ("team/x/", "http://127.0.0.1:9000",
                                                              True)
    assert cfg.put_args() == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k1"}
    assert cfg.chunk_size == 16 * 1024 * 1024
    aws = S3Settings.from_settings(load_settings(home=tmp_path, env={"S3_BUCKET": "b1"}), env={})
    assert not aws.path_style and aws.put_args() == {}


def test_device_id_is_made_once_and_kept(tmp_path):
    a = load_device(tmp_path)
    assert load_device(tmp_path) == a
    assert load_device(tmp_path, "renamed").device_id == a.device_id


def test_manifest_rows_match_lancedb_through_appends_and_deletes(tmp_path):
    import lancedb
    import pyarrow as pa

    from app.backup.snapshot import latest_manifest, manifest_rows

    db = lancedb.connect(str(tmp_path))
    t = db.create_table("t", data=pa.table({"a": list(range(10))}))
    t.add(pa.table({"a": list(range(10, 25))}))
    t.delete("a % 3 = 0")
    t.add(pa.table({"a": [100]}))
    t.delete("a = 11")
    version, name = latest_manifest(tmp_path / "t.lance")
    assert version == t.version
    assert manifest_rows(tmp_path / "t.lance" / "_versions" / name) == t.count_rows() == 16
