"""`lancedb-sync self-check`: proves an installed (often frozen) build has every working part.

It imports each native piece, indexes three small files into a temporary home through the real
pipeline (a sandboxed parser worker, the bundled embedding model, a LanceDB table with its
full-text index), runs a vector and a hybrid search, names the keyring backend, and creates a
Qt application on the offscreen platform. The report is JSON on stdout; exit 0 only if every
check passed. Nothing is written outside a temporary folder, and no secret is stored.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

NATIVE_MODULES = (
    "lancedb", "pyarrow", "numpy", "wordllama", "blake3", "pypdfium2", "selectolax.lexbor",
    "docx", "pptx", "openpyxl", "watchdog.observers", "keyring", "psutil", "charset_normalizer",
    "boto3", "PySide6.QtWidgets", "PySide6.QtSvg", "qasync",
)

SAMPLE = {
    "river.md": "# Rivers\n\nThe river carries silt from the mountains to the delta.\n",
    "orbit.txt": "Satellites keep their orbit by balancing speed against gravity.\n",
    "bread.html": "<html><body><h1>Bread</h1><p>Knead the dough and let it rise.</p>"
                  "</body></html>",
}


class Report:
    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            detail = fn()
            ok = True
        except Exception as exc:  # the report names what failed; the others still run
            detail = f"{type(exc).__name__}: {exc}"
            ok = False
            if os.environ.get("LANCEDB_SYNC_SELFCHECK_TRACE"):
                traceback.print_exc()
        self.checks.append({"name": name, "ok": ok, "seconds": round(time.perf_counter() - t, 3),
                            "detail": detail if isinstance(detail, (str, int, float, dict, list))
                            else str(detail)})
        return detail if ok else None

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)


def check_imports() -> dict[str, str]:
    versions = {}
    missing = []
    for name in NATIVE_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            missing.append(f"{name} ({type(exc).__name__}: {exc})")
            continue
        top = sys.modules[name.split(".")[0]]
        versions[name] = str(getattr(module, "__version__", getattr(top, "__version__", "")))
    if missing:
        raise RuntimeError("cannot import " + "; ".join(missing))
    return versions


def check_index_and_search(home: Path) -> dict[str, Any]:
    """Index three sample files and search them three ways, through the Service, as the faces
    do."""
    import asyncio

    from app.config import load_settings, save_sources
    from app.models import SourceConfig, SourceType
    from app.service import Service

    folder = home / "sample"
    folder.mkdir(parents=True)
    for name, text in SAMPLE.items():
        (folder / name).write_text(text, encoding="utf-8")
    settings = load_settings(home=home, env={}, overrides={"max_concurrent_processing": 1})
    settings = save_sources(settings, (SourceConfig(SourceType.LOCAL_FILESYSTEM, "selfcheck",
                                                    {"watch_paths": [str(folder)]}),))
    service = Service(settings)
    report = asyncio.run(service.sync_once())[0]
    if report.added != len(SAMPLE) or report.failed:
        raise RuntimeError(f"indexed {report.added} of {len(SAMPLE)} files "
                           f"({report.failures or report.problems})")
    found = asyncio.run(service.check())["found"]
    if not found.clean:
        raise RuntimeError("the index is not consistent: " + "; ".join(found.problems()))
    for mode, query, want in (("vector", "satellite gravity", "orbit.txt"),
                              ("hybrid", "knead dough", "bread.html"),
                              ("fts", "silt", "river.md")):
        hits = service.search(query, k=1, mode=mode)
        if not hits or not hits[0].uri.endswith(want):
            raise RuntimeError(f"{mode} search did not find {want}: {hits[:1]}")
    indices, dim = service.index_indexes()
    if "text" not in indices:
        raise RuntimeError(f"no full-text index was built (indexes: {indices})")
    return {"documents": report.added, "chunks": report.chunks_written, "indexes": indices,
            "embed_model": service.index_model(), "dim": dim}


def check_parser_worker() -> str:
    from app.core.extract.sandbox import ExtractorPool

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.md"
        path.write_text("# Probe\n\nA parser worker read this.\n", encoding="utf-8")
        with ExtractorPool(workers=1, time_limit_s=60) as pool:
            extracted = pool.extract(path)
    if "parser worker" not in " ".join(b.text for b in extracted.blocks):
        raise RuntimeError("the worker returned the wrong text")
    return "started, extracted, stopped"


def check_backup_client() -> str:
    """boto3 finds botocore's service data (which a frozen build must bundle) and builds the S3
    client backups use, offline."""
    from app.backup.s3 import S3Settings, make_client

    cfg = S3Settings(bucket="self-check", prefix="", region="us-east-1",
                     endpoint_url="http://127.0.0.1:9", path_style=True, sse=None,
                     kms_key_id=None, retry_mode="standard", max_attempts=1,
                     chunk_size=8 << 20, concurrency=1, max_bandwidth=None)
    client, _ = make_client(cfg, lambda: {"aws_access_key_id": "self-check",
                                          "aws_secret_access_key": "self-check"})
    return str(client.meta.service_model.service_name)


def check_keyring() -> str:
    import keyring

    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    # Name what was found; whether it may hold secrets is the app's decision (app/secrets.py).
    return f"{name} (priority {getattr(backend, 'priority', '?')})"


def check_qt() -> str:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon, QPixmap
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0], "-platform", "offscreen"])
    icon = QIcon(QPixmap(16, 16))
    ticks: list[int] = []
    QTimer.singleShot(0, lambda: (ticks.append(1), app.quit()))
    app.exec()
    if not ticks or icon.isNull():
        raise RuntimeError("the Qt event loop did not run")
    return f"{app.platformName()} (Qt {__import__('PySide6').__version__})"


def run() -> dict[str, Any]:
    from app import __version__

    report = Report()
    t = time.perf_counter()
    report.run("imports", check_imports)
    with tempfile.TemporaryDirectory(prefix="lancedb-sync-selfcheck-") as tmp:
        report.run("index_and_search", lambda: check_index_and_search(Path(tmp)))
    report.run("parser_worker", check_parser_worker)
    report.run("backup_client", check_backup_client)
    report.run("keyring", check_keyring)
    report.run("qt_offscreen", check_qt)
    return {"ok": report.ok, "version": __version__, "frozen": bool(getattr(sys, "frozen", False)),
            "python": platform.python_version(), "platform": platform.platform(),
            "seconds": round(time.perf_counter() - t, 2), "checks": report.checks}


def main() -> int:
    result = run()
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1
