"""`Bucket`: the S3 plumbing every backup job shares — where things are, and the calls on them.

Layout under `S3_PREFIX`:

    devices/<device-id>/lease.json                 the writer lease (see lease.py)
    devices/<device-id>/snapshots/<snapshot>.json  one snapshot manifest each (written last)
    devices/<device-id>/index/<table>.lance/…      the index files, shared by all snapshots

`index/` is a LanceDB database as LanceDB itself lays it out, which is what lets a snapshot be
searched in place (remote.py); a snapshot records its folder (`root`), which is `index-<id>/`
instead when a table was dropped and created again (backup.py).

Why one object: every job lists pages, reads, writes and deletes objects under those keys, and
every failure must reach the person as a BackupError naming the permission or the problem
(s3.explain). The settings and the boto3 client are made on first use, so a job fails on what it
checks first, and building a BackupManager never touches S3. Streaming transfers (upload_file,
download_file, reading a body in blocks) use `client` directly: what their failures mean depends
on the job (a damaged snapshot, an index that changed under the backup).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from app.backup.errors import BackupError, BackupPermissionError
from app.backup.s3 import CredentialsProvider, S3Settings, explain, is_missing, make_client


class Bucket:
    def __init__(self, settings: Any,
                 credentials_provider: CredentialsProvider | None = None) -> None:
        self.settings = settings
        self.credentials_provider = credentials_provider
        self._cfg: S3Settings | None = None
        self._client: Any = None
        self._session: Any = None

    @property
    def cfg(self) -> S3Settings:
        if self._cfg is None:
            self._cfg = S3Settings.from_settings(self.settings)
        return self._cfg

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client, self._session = make_client(self.cfg, self.credentials_provider)
        return self._client

    @property
    def session(self) -> Any:
        """The boto3 session behind `client` (its credentials are what LanceDB reads with)."""
        _ = self.client
        return self._session

    # -- where things are -----------------------------------------------------------------------

    def device_prefix(self, device_id: str) -> str:
        return f"{self.cfg.prefix}devices/{device_id}/"

    def snapshot_key(self, device_id: str, snapshot_id: str) -> str:
        return f"{self.device_prefix(device_id)}snapshots/{snapshot_id}.json"

    def root_prefix(self, device_id: str, root: str) -> str:
        """Where the files of a snapshot folder (`root`) are: `<key prefix><file path>`."""
        return f"{self.device_prefix(device_id)}{root}/"

    # -- calls, their failures explained --------------------------------------------------------

    def explain(self, exc: BaseException, action: str, key: str = "") -> BackupError:
        return explain(exc, action, self.cfg, key)

    def call(self, action: str, key: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except BackupError:
            raise
        except Exception as exc:
            raise explain(exc, action, self.cfg, key) from exc

    def pages(self, prefix: str, delimiter: str | None = None) -> Iterable[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": self.cfg.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            yield from paginator.paginate(**kwargs)
        except Exception as exc:
            raise explain(exc, "list", self.cfg, prefix) from exc

    def objects(self, prefix: str) -> dict[str, int]:
        """Every object under `prefix`: its key without the prefix → its size."""
        out: dict[str, int] = {}
        for page in self.pages(prefix):
            for o in page.get("Contents", []):
                out[o["Key"][len(prefix):]] = int(o["Size"])
        return out

    def get(self, key: str) -> bytes:
        return self.call("get", key, lambda: self.client.get_object(
            Bucket=self.cfg.bucket, Key=key)["Body"].read())

    def get_if_exists(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such object."""
        try:
            return self.client.get_object(Bucket=self.cfg.bucket, Key=key)["Body"].read()
        except Exception as exc:
            if is_missing(exc):
                return None
            raise explain(exc, "get", self.cfg, key) from exc

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        """Write a small object, encrypted as configured."""
        self.call("put", key, lambda: self.client.put_object(
            Bucket=self.cfg.bucket, Key=key, Body=body, ContentType=content_type,
            **self.cfg.put_args()))

    def head(self, key: str) -> dict[str, Any]:
        return self.call("head", key, lambda: self.client.head_object(
            Bucket=self.cfg.bucket, Key=key))

    def delete(self, key: str) -> None:
        self.call("delete", key, lambda: self.client.delete_object(
            Bucket=self.cfg.bucket, Key=key))

    def delete_many(self, keys: list[str]) -> None:
        """Delete objects, a thousand per request (S3's limit); the first refusal is raised."""
        for i in range(0, len(keys), 1000):
            part = keys[i:i + 1000]
            resp = self.call("delete", part[0], lambda part=part: self.client.delete_objects(
                Bucket=self.cfg.bucket,
                Delete={"Objects": [{"Key": k} for k in part], "Quiet": True}))
            errors = resp.get("Errors", [])
            if errors:
                e = errors[0]
                if e.get("Code") == "AccessDenied":
                    raise BackupPermissionError(
                        f"Access denied: the credentials lack s3:DeleteObject on "
                        f"s3://{self.cfg.bucket}/{e.get('Key')}.", "s3:DeleteObject")
                raise BackupError(f"S3 could not delete {e.get('Key')}: {e.get('Code')} "
                                  f"{e.get('Message', '')}")

    def transfer_config(self, max_bandwidth: int | None = None) -> Any:
        """boto3's settings for one file's transfer: multipart above CHUNK_SIZE_MB, two parts at
        a time (the jobs already run BACKUP_CONCURRENCY files at once)."""
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=self.cfg.chunk_size,
                              multipart_chunksize=self.cfg.chunk_size, max_concurrency=2,
                              max_bandwidth=max_bandwidth)
