"""Test connection: can these settings and credentials list, put, read back and delete under the
prefix? Each step is reported with the permission it needs, so the Backup window and
`lancedb-sync backup test` can name what is missing before a backup fails half-way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.backup.errors import BackupPermissionError
from app.backup.s3 import PERMISSIONS, S3Settings, explain


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # list | put | get | delete
    permission: str
    ok: bool
    message: str = ""


def test_connection(client: Any, cfg: S3Settings) -> list[Check]:
    """List, put, read back and delete a small object under the prefix; report each step.

    The first failure that is not a permission problem (no network, bad credentials, no bucket)
    is raised; a missing permission is reported as a failed check naming it.
    """
    key = f"{cfg.prefix}.lancedb-sync-connection-test-{uuid.uuid4().hex[:8]}"
    checks: list[Check] = []

    def step(name: str, fn: Callable[[], Any], k: str = "") -> bool:
        try:
            fn()
        except Exception as exc:
            err = explain(exc, name, cfg, k)
            if isinstance(err, BackupPermissionError):
                checks.append(Check(name, err.permission, False, str(err)))
                return False
            raise err from exc
        checks.append(Check(name, PERMISSIONS[name], True))
        return True

    step("list", lambda: client.list_objects_v2(Bucket=cfg.bucket, Prefix=cfg.prefix,
                                                MaxKeys=1))
    wrote = step("put", lambda: client.put_object(Bucket=cfg.bucket, Key=key, Body=b"ok",
                                                  **cfg.put_args()), key)
    if wrote:
        step("get", lambda: client.get_object(Bucket=cfg.bucket, Key=key)["Body"].read(), key)
        step("delete", lambda: client.delete_object(Bucket=cfg.bucket, Key=key), key)
    return checks
