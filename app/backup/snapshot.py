"""The local side of a backup, and the pure plans: no S3 calls in this module.

What a snapshot is. A Lance table folder holds immutable files — data files (`data/*.lance`),
index files (`_indices/<uuid>/…`), deletion files (`_deletions/`), transaction files
(`_transactions/`) and one manifest per version (`_versions/<n>.manifest`, never rewritten once
written). Only `_versions/latest_version_hint.json` changes in place. A writer writes a version's
files first and its manifest last, and files are written under a staging name and renamed into
place, so once manifest N exists every file it references exists, complete, under its final name.

So a snapshot pins one version per table (its newest manifest at the moment of the backup) and
takes every finished file of the table folder except the other manifests and the hint: the pinned
manifest's files are among them; anything extra (files of an older version not yet cleaned up, or
of a commit that began after the pin) is unreferenced and harmless. Restored, each table has
exactly one manifest — the pinned one — so it opens at that version.

The documents table is pinned before the chunks table, which is the order of the commit protocol
(chunks first, documents last): a snapshot taken during a sync looks exactly like an index after a
crash between those two steps, which `Store.repair()` handles on restore.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.backup.errors import BackupConfigError, UnsafeSnapshotError
from app.fsutil import write_atomic

FORMAT = 1
DEFAULT_ROOT = "index"
HINT = "latest_version_hint.json"
_U64 = 2**64 - 1


# -- the snapshot manifest --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str  # relative to the index folder, "/"-separated
    size: int
    sha256: str

    @property
    def is_table_manifest(self) -> bool:
        return "/_versions/" in self.path


@dataclass(frozen=True, slots=True)
class TableEntry:
    name: str
    version: int
    rows: int
    manifest: str  # path of the pinned manifest, relative to the index folder


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    device_id: str
    device_name: str
    machine: str
    created_at: str  # ISO 8601, UTC
    app_version: str
    schema_version: int
    root: str  # folder under devices/<id>/ that holds the files (see bucket.py)
    documents_table: str
    chunks_table: str
    embed_model: str
    tables: tuple[TableEntry, ...]
    files: tuple[FileEntry, ...]
    sources: tuple[Mapping[str, Any], ...] = ()
    format: int = FORMAT
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at.replace("Z", "+00:00"))

    @property
    def ref(self) -> str:
        return f"{self.device_id}/{self.snapshot_id}"

    def table(self, name: str) -> TableEntry:
        return next(t for t in self.tables if t.name == name)

    def to_json(self) -> bytes:
        data = asdict(self)
        data["tables"] = [asdict(t) for t in self.tables]
        data["files"] = [asdict(f) for f in self.files]
        data["sources"] = [dict(s) for s in self.sources]
        data["extra"] = dict(self.extra)
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str, where: str = "The snapshot manifest") -> Snapshot:
        """Parse a manifest and check every entry (see `check_snapshot`). Raises ValueError,
        KeyError or TypeError for a manifest that does not parse, UnsafeSnapshotError (naming
        `where` and the entry) for one that parses but names paths it must not."""
        data = json.loads(raw)
        if int(data.get("format", 0)) > FORMAT:
            raise ValueError(f"snapshot format {data.get('format')} is newer than this app "
                             f"reads ({FORMAT}); update the app")
        data["tables"] = tuple(TableEntry(**t) for t in data["tables"])
        data["files"] = tuple(FileEntry(**f) for f in data["files"])
        data["sources"] = tuple(data.get("sources", ()))
        known = set(cls.__dataclass_fields__)
        snapshot = cls(**{k: v for k, v in data.items() if k in known})
        check_snapshot(snapshot, where)
        return snapshot

    def summary(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "device_name": self.device_name,
                "snapshot_id": self.snapshot_id, "created_at": self.created_at,
                "files": len(self.files), "bytes": self.total_bytes,
                "tables": {t.name: {"version": t.version, "rows": t.rows} for t in self.tables},
                "app_version": self.app_version, "schema_version": self.schema_version,
                "embed_model": self.embed_model}


# -- checking a manifest read from the bucket ---------------------------------------------------
#
# Restore, verify and remote search turn a manifest's strings into local paths and bucket keys,
# and anyone who can write to the bucket can write a manifest. So a manifest is checked as a
# whole when it is read, before anything is downloaded: every name must be one plain path
# component and every file path must lie inside one of the snapshot's two table folders.

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # one path component, not "." or ".."
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def path_problem(path: object, folders: Iterable[str]) -> str | None:
    """Why `path` (a manifest's "/"-separated, index-relative file path) is unsafe, or None.

    The rules are those of every platform the app runs on at once, so a manifest written on one
    cannot do on another what it could not do here (a backslash or a drive letter is harmless
    on Linux but a path on Windows)."""
    if not isinstance(path, str):
        return "is not a text path"
    if not path:
        return "is empty"
    if any(ord(c) < 32 or c == "\x7f" for c in path):
        return "contains a control character"
    if "\\" in path:
        return "contains a backslash (a Windows path)"
    if ":" in path:
        return "contains a colon (a drive letter or a Windows stream name)"
    if path.startswith("/"):
        return "is absolute"
    parts = path.split("/")
    if "" in parts:
        return "has an empty component"
    if any(p in (".", "..") for p in parts):
        return "has a '.' or '..' component"
    folders = sorted(folders)
    if parts[0] not in folders:
        return f"is outside the snapshot's table folders ({', '.join(folders)})"
    if len(parts) < 2:
        return "names a table folder instead of a file in it"
    return None


def check_snapshot(snapshot: Snapshot, where: str = "The snapshot manifest") -> None:
    """Raise UnsafeSnapshotError naming the first entry that is not safe to use (see above)."""

    def refuse(what: str, value: object, why: str) -> UnsafeSnapshotError:
        return UnsafeSnapshotError(
            f"{where} was refused: its {what} {value!r} {why}. A snapshot may only name files "
            "inside its own table folders, so nothing was downloaded or changed. Someone with "
            "write access to the bucket may have altered this manifest: check who can write "
            "to the bucket, then delete the manifest from it.", str(value))

    s = snapshot
    for what, value in (("snapshot id", s.snapshot_id), ("device id", s.device_id),
                        ("folder (root)", s.root), ("documents table", s.documents_table),
                        ("chunks table", s.chunks_table)):
        if not isinstance(value, str) or not _NAME.match(value):
            raise refuse(what, value, "is not a plain name (letters, digits, '_', '-', '.')")
    if s.documents_table == s.chunks_table:
        raise refuse("chunks table", s.chunks_table, "is also its documents table")
    folders = {f"{s.documents_table}.lance", f"{s.chunks_table}.lance"}
    names = [t.name for t in s.tables]
    if sorted(names) != sorted((s.documents_table, s.chunks_table)):
        raise refuse("table list", names, f"is not {s.documents_table} and {s.chunks_table}")
    for t in s.tables:
        why = path_problem(t.manifest, {f"{t.name}.lance"})
        if why is None and not t.manifest.startswith(f"{t.name}.lance/_versions/"):
            why = f"is not in {t.name}.lance/_versions/"
        if why is not None:
            raise refuse(f"table manifest path of {t.name}", t.manifest, why)
    seen: set[str] = set()
    for f in s.files:
        why = path_problem(f.path, folders)
        if why is not None:
            raise refuse("file path", f.path, why)
        if f.path in seen:
            raise refuse("file path", f.path, "is listed twice")
        seen.add(f.path)
        if not isinstance(f.size, int) or isinstance(f.size, bool) or f.size < 0:
            raise refuse(f"size of {f.path}", f.size, "is not a byte count")
        if not isinstance(f.sha256, str) or not _SHA256.match(f.sha256):
            raise refuse(f"checksum of {f.path}", f.sha256, "is not a SHA-256 in hex")


def new_snapshot_id(now: datetime) -> str:
    """Sortable by time: 20261130T012345Z-1a2b."""
    return f"{now:%Y%m%dT%H%M%S}Z-{os.urandom(2).hex()}"


# -- pinning and listing local tables -----------------------------------------------------------


def local_index_dir(settings: Any) -> Path:
    """The index folder backup reads and restore writes: a snapshot is a copy of its files, so
    an index on object storage (LANCEDB_URI s3://…) cannot be backed up or restored here."""
    folder = settings.index_dir
    if folder is None:
        raise BackupConfigError(f"Backups need a local index folder; LANCEDB_URI is "
                                f"{settings.index_uri}.")
    return folder


def manifest_version(name: str) -> int | None:
    """Version of a `_versions/*.manifest` file name (plain `N` or v2 `u64::MAX - N`)."""
    if not name.endswith(".manifest"):
        return None
    stem = name[: -len(".manifest")]
    if not stem.isdigit():
        return None
    n = int(stem)
    return _U64 - n if len(stem) == 20 and n > 2**63 else n


def latest_manifest(table_dir: Path) -> tuple[int, str] | None:
    try:
        names = os.listdir(table_dir / "_versions")
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for name in names:
        v = manifest_version(name)
        if v is not None and (best is None or v > best[0]):
            best = (v, name)
    return best


def manifest_rows(path: Path) -> int:
    """Live rows of the table version a Lance manifest describes, read from the manifest itself.

    The backup would otherwise import LanceDB (seconds of imports) just to count rows. A
    manifest ends with `[u64 position][u16 major][u16 minor]b"LANC"`; at the position, a u32
    length and the `Manifest` protobuf: fragments are field 2, a fragment's `physical_rows` its
    field 4 and its deletion file its field 3, whose `num_deleted_rows` is field 4. Raises
    ValueError on anything unexpected (the caller then asks LanceDB)."""
    import struct

    data = Path(path).read_bytes()
    if len(data) < 16 or data[-4:] != b"LANC":
        raise ValueError(f"{path} is not a Lance manifest")
    pos = struct.unpack("<Q", data[-16:-8])[0]
    (length,) = struct.unpack("<I", data[pos:pos + 4])
    message = data[pos + 4:pos + 4 + length]
    if len(message) != length:
        raise ValueError(f"{path}: truncated manifest")
    total = 0
    for num, kind, value in _protobuf_fields(message):
        if num == 2 and kind == 2:
            physical = deleted = 0
            for fnum, fkind, fvalue in _protobuf_fields(value):
                if fnum == 4 and fkind == 0:
                    physical = fvalue
                elif fnum == 3 and fkind == 2:
                    for dnum, dkind, dvalue in _protobuf_fields(fvalue):
                        if dnum == 4 and dkind == 0:
                            deleted = dvalue
            total += physical - deleted
    return total


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _protobuf_fields(buf: bytes) -> Iterable[tuple[int, int, Any]]:
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, kind = key >> 3, key & 7
        value: Any
        if kind == 0:
            value, i = _varint(buf, i)
        elif kind == 1:
            value, i = buf[i:i + 8], i + 8
        elif kind == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif kind == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unexpected protobuf wire type {kind}")
        yield num, kind, value


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: str
    size: int
    mtime_ns: int


def table_files(index_dir: Path, table: str, manifest_name: str) -> list[LocalFile]:
    """The finished files of one table folder as of its pinned manifest (see module docstring)."""
    base = index_dir / f"{table}.lance"
    out: list[LocalFile] = []
    for root, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel_root = Path(root).relative_to(index_dir).as_posix()
        in_versions = Path(root) == base / "_versions"
        for name in files:
            if name.startswith(".") or "#" in name or name.endswith((".tmp", ".lock")):
                continue  # staging files of a write in progress
            if in_versions and name != manifest_name:
                continue
            try:
                st = os.stat(os.path.join(root, name))
            except FileNotFoundError:
                continue  # cleaned up by the writer since the listing: not needed by the pin
            out.append(LocalFile(f"{rel_root}/{name}", st.st_size, st.st_mtime_ns))
    return sorted(out, key=lambda f: f.path)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class HashCache:
    """SHA-256 of index files keyed by (path, size, mtime): the files are immutable, so a backup
    hashes each one once, not on every run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._data: dict[str, list[Any]] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._data = {}

    def digest(self, index_dir: Path, f: LocalFile) -> str:
        hit = self._data.get(f.path)
        if hit and hit[0] == f.size and hit[1] == f.mtime_ns:
            return str(hit[2])
        digest = sha256_file(index_dir / f.path)
        self._data[f.path] = [f.size, f.mtime_ns, digest]
        return digest

    def save(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        data = {k: v for k, v in self._data.items() if k in keep}
        write_atomic(self.path, json.dumps(data))


# -- pure plans ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteObject:
    size: int
    sha256: str | None  # from a snapshot that lists it, or the object's metadata; None: unknown


@dataclass(frozen=True)
class UploadPlan:
    upload: tuple[FileEntry, ...]  # data and index files first, table manifests last
    present: tuple[FileEntry, ...]
    conflicts: tuple[str, ...]  # paths a kept snapshot holds with other contents

    @property
    def upload_bytes(self) -> int:
        return sum(f.size for f in self.upload)


def plan_upload(local: Iterable[FileEntry], remote: Mapping[str, RemoteObject],
                referenced: Mapping[str, str]) -> UploadPlan:
    """What to upload: every file the bucket lacks, or holds with another size or checksum.

    `remote` maps paths (relative to the snapshot root) to what the bucket holds; `referenced`
    maps paths to the checksum existing snapshots record for them. A file a snapshot records with
    other contents is a conflict (a table that was dropped and created again reuses manifest
    names): the caller must then back up under a new root rather than overwrite it.
    """
    upload: list[FileEntry] = []
    present: list[FileEntry] = []
    conflicts: list[str] = []
    for f in local:
        r = remote.get(f.path)
        if r is not None and r.size == f.size and r.sha256 == f.sha256:
            present.append(f)
            continue
        old = referenced.get(f.path)
        if old is not None and old != f.sha256:
            conflicts.append(f.path)
        upload.append(f)
    upload.sort(key=lambda f: (f.is_table_manifest, f.path))
    return UploadPlan(tuple(upload), tuple(present), tuple(conflicts))


@dataclass(frozen=True)
class RetentionPlan:
    keep: tuple[Snapshot, ...]
    drop: tuple[Snapshot, ...]


def plan_retention(snapshots: Sequence[Snapshot], keep_last: int, keep_days: int,
                   now: datetime | None = None) -> RetentionPlan:
    """Keep the newest `keep_last` snapshots and every one younger than `keep_days` days."""
    now = now or datetime.now(UTC)
    ordered = sorted(snapshots, key=lambda s: (s.created_at, s.snapshot_id), reverse=True)
    cutoff = now - timedelta(days=keep_days)
    keep, drop = [], []
    for i, s in enumerate(ordered):
        (keep if i < max(1, keep_last) or s.created >= cutoff else drop).append(s)
    return RetentionPlan(tuple(keep), tuple(drop))


def unreferenced(objects: Iterable[str], kept: Iterable[Snapshot]) -> list[str]:
    """Object paths ("<root>/<path>") that no kept snapshot lists: safe to delete."""
    needed = {f"{s.root}/{f.path}" for s in kept for f in s.files}
    return sorted(o for o in objects if o not in needed)
