"""The `lancedb-sync` command line.

Heavy modules (LanceDB, pyarrow, the embedding model) are imported inside the commands that need
them, so `--help`, `status`, `failed` and a sync that finds nothing changed answer at once.

Exit status: 0 success; 1 the operation failed; 2 bad usage or configuration; 3 the index is
busy (another process is writing to it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app import __version__

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 3


class UserError(Exception):
    """Something the person can fix; printed without a traceback."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lancedb-sync",
        description="Keep a LanceDB index of your documents up to date, and search it. "
                    "Without a command, starts the tray application.",
        epilog="Run 'lancedb-sync COMMAND --help' for a command's options. "
               "Settings: config.toml in the config folder, or environment variables "
               "(see docs/configuration.md).",
    )
    p.add_argument("--home", metavar="DIR",
                   help="keep all state (config, index, logs, cache) under DIR (portable mode; "
                        "also LANCEDB_SYNC_HOME)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    tray = sub.add_parser("tray", help="start the tray application (the default without a "
                                       "command); a second launch shows the running one")
    tray.add_argument("--window", choices=("progress", "sources", "search", "backup",
                                           "settings"),
                      help="also open this window (or bring it forward in the running tray)")

    src = sub.add_parser("sources", help="add, list or remove sources")
    src_sub = src.add_subparsers(dest="sources_command", metavar="ACTION", required=True)
    add = src_sub.add_parser("add", help="add a source")
    add_sub = add.add_subparsers(dest="source_type", metavar="TYPE", required=True)
    local = add_sub.add_parser("local", help="a local folder")
    local.add_argument("path", metavar="PATH", nargs="+", help="folder(s) to index")
    local.add_argument("--id", dest="source_id", help="source id (default: the folder's name)")
    local.add_argument("--pattern", action="append", default=[], metavar="GLOB",
                       help="only files matching GLOB (repeatable; default: every supported "
                            "format)")
    local.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                       help=".gitignore-style pattern to leave out (repeatable)")
    ls = src_sub.add_parser("list", help="list sources")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    rm = src_sub.add_parser("remove", help="remove a source")
    rm.add_argument("source_id", metavar="ID")
    rm.add_argument("--purge", action="store_true",
                    help="also delete its documents from the index")

    sync = sub.add_parser("sync", help="run one sync pass")
    sync.add_argument("--source", dest="source_id", metavar="ID", help="only this source")
    sync.add_argument("--json", action="store_true", help="print the report as JSON")

    search = sub.add_parser("search", help="search the index")
    search.add_argument("query", metavar="QUERY", nargs="+")
    search.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    search.add_argument("--mode", choices=("hybrid", "vector", "fts"), default="hybrid")
    search.add_argument("--source", dest="source_id", metavar="ID")
    search.add_argument("--type", dest="file_type", metavar="EXT",
                        help="file type: an extension (pdf) or a mime prefix (text/)")
    search.add_argument("--path", dest="path_prefix", metavar="PREFIX",
                        help="only documents under this path")
    search.add_argument("--after", dest="modified_after", metavar="DATE",
                        help="only documents modified on or after DATE (YYYY-MM-DD)")
    search.add_argument("--snapshot", metavar="DEVICE[/ID]",
                        help="search a backup snapshot on S3 in place (read-only) instead of "
                             "the local index")
    search.add_argument("--json", action="store_true")

    status = sub.add_parser("status", help="what is indexed, what failed, when it last synced")
    status.add_argument("--json", action="store_true")
    failed = sub.add_parser("failed", help="every file that failed or was skipped, and why")
    failed.add_argument("--json", action="store_true")
    failed.add_argument("--source", dest="source_id", metavar="ID")
    retry = sub.add_parser("retry", help="retry failed files on the next sync (and run it)")
    retry.add_argument("--source", dest="source_id", metavar="ID")
    retry.add_argument("--no-sync", action="store_true", help="only mark them for retry")
    run = sub.add_parser("run", help="run the sync service in the foreground (headless daemon): "
                                     "watch sources, keep the index up to date")
    run.add_argument("--plain", action="store_true",
                     help="one log line per event, even on a terminal")
    run.add_argument("--no-watch", action="store_true",
                     help="do not watch folders; only periodic scans")
    sub.add_parser("cleanup", help="repair after a failed sync, compact, prune old versions")
    check = sub.add_parser(
        "check", help="check the index for damage (exit 0 only when it is consistent)",
        description="Reads both tables and the sync state and reports duplicate chunk ids, "
                    "chunks that belong to no document, documents whose chunks disagree with "
                    "their row, indexed documents without chunks, and differences between the "
                    "sync state and the index. Exit status 0 only when all is consistent.")
    check.add_argument("--repair", action="store_true",
                       help="fix what was found and index the affected documents again")
    check.add_argument("--json", action="store_true", help="machine-readable report")
    backup = sub.add_parser("backup", help="back the index up to S3 (a snapshot); see "
                                           "docs/backup.md",
                            description="With no action: take a snapshot of the index, upload "
                                        "what the bucket lacks, then prune by retention.")
    backup.add_argument("--json", action="store_true", help="print the result as JSON")
    backup.add_argument("--no-prune", action="store_true",
                        help="do not prune old snapshots afterwards")
    backup_sub = backup.add_subparsers(dest="backup_command", metavar="ACTION")
    prune = backup_sub.add_parser("prune", help="delete snapshots (and files) retention drops")
    prune.add_argument("--keep-last", type=int, metavar="N", help="override BACKUP_KEEP_LAST")
    prune.add_argument("--keep-days", type=int, metavar="D", help="override BACKUP_KEEP_DAYS")
    prune.add_argument("--json", action="store_true")
    verify = backup_sub.add_parser("verify", help="check a snapshot's files in the bucket")
    verify.add_argument("snapshot", metavar="SNAPSHOT", nargs="?",
                        help="DEVICE[/ID] (default: this device's latest)")
    verify.add_argument("--download", action="store_true",
                        help="read every object back and hash it (slower, complete)")
    verify.add_argument("--json", action="store_true")
    test = backup_sub.add_parser("test", help="test the connection: list, put, get and delete")
    test.add_argument("--json", action="store_true")
    snaps = sub.add_parser("snapshots", help="list the devices and snapshots in the bucket")
    snaps.add_argument("device", metavar="DEVICE", nargs="?", help="only this device")
    snaps.add_argument("--json", action="store_true")
    restore = sub.add_parser("restore", help="restore the index from a snapshot")
    restore.add_argument("snapshot", metavar="DEVICE[/SNAPSHOT]", nargs="?",
                         help="default: the latest snapshot, if the bucket holds one device")
    restore.add_argument("--to", metavar="DIR", help="restore into DIR instead of this home's "
                                                     "index (nothing else is changed)")
    restore.add_argument("--force", action="store_true",
                         help="replace a non-empty index")
    restore.add_argument("--json", action="store_true")
    sub.add_parser("self-check", help="check that every part of this installation works "
                                      "(JSON report; exit 0 only if all passed)")
    reembed = sub.add_parser("reembed", help="re-embed the index with the configured model")
    reembed.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args.command, args.window = "tray", None
    from app.config import ConfigError, load_settings

    _enable_stack_dumps()

    settings = None
    try:
        settings = load_settings(home=args.home)
        from app.logsetup import setup_logging

        setup_logging(settings)
        handler = _COMMANDS[args.command]
        code = handler(args, settings)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `lancedb-sync sync | head`: the reader left; end quietly, as other tools do.
        _silence_stdout()
        return EXIT_OK
    except ConfigError as exc:
        print(f"lancedb-sync: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as exc:
        print(f"lancedb-sync: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("lancedb-sync: interrupted; nothing half-written was kept.", file=sys.stderr)
        return 130
    except Exception as exc:  # anything else is a bug or an environment problem: say where logs are
        import logging

        from app.core.errors import disk_full_message, is_disk_full, one_line

        logging.getLogger("app.cli").error("%s failed", args.command, exc_info=True)
        if is_disk_full(exc):
            where = settings.index_uri if settings is not None else "the index"
            print(f"lancedb-sync: {disk_full_message(where)}", file=sys.stderr)
            return EXIT_FAIL
        known = _known_error(exc)
        if known is not None:
            print(f"lancedb-sync: {known[0]}", file=sys.stderr)
            return known[1]
        log_file = (settings.paths.log_dir / "lancedb-sync.log") if settings else None
        where = f"; the details are in {log_file}" if log_file else ""
        print(f"lancedb-sync: {args.command} failed: {one_line(exc)}{where}. Run it again; if "
              "it keeps failing, please report it with that log.", file=sys.stderr)
        return EXIT_FAIL


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush does not
    raise again (the recipe in Python's signal documentation)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _enable_stack_dumps() -> None:
    """`kill -USR1 <pid>` prints every thread's stack to stderr: how to report a hang."""
    import contextlib
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):
        # Not possible when stderr is no real file (embedded, captured): then just skip it.
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            faulthandler.register(signal.SIGUSR1, all_threads=True)


def _known_error(exc: Exception) -> tuple[str, int] | None:
    from app.backup.errors import (
        BackupBusyError,
        BackupConfigError,
        BackupError,
        LeaseHeldError,
        RestoreRefusedError,
    )
    from app.core.embedding import EmbeddingError
    from app.core.lock import IndexLockedError
    from app.core.model_switch import ModelChangeError
    from app.sources.base import SourceError

    if isinstance(exc, (IndexLockedError, LeaseHeldError, BackupBusyError)):
        return str(exc), EXIT_BUSY
    if isinstance(exc, (BackupConfigError, RestoreRefusedError)):
        return str(exc), EXIT_USAGE
    if isinstance(exc, BackupError):
        return str(exc), EXIT_FAIL
    if isinstance(exc, (ModelChangeError, SourceError, EmbeddingError)):
        return str(exc), EXIT_FAIL
    # By name: importing app.core.store would load LanceDB just to print an error.
    if type(exc).__name__ in ("StoreError", "StoreIntegrityError"):
        return str(exc), EXIT_FAIL
    return None


# -- sources ----------------------------------------------------------------------------------


def cmd_sources(args: argparse.Namespace, settings: Any) -> int:
    from app.config import save_sources
    from app.models import SourceConfig, SourceType

    if args.sources_command == "list":
        counts = _state_counts(settings)
        rows = []
        for s in settings.sources:
            c = counts.get(s.source_id, {})
            rows.append({"source_id": s.source_id, "source_type": s.source_type.value,
                         "enabled": s.enabled, "config": dict(s.config),
                         "documents": c.get("indexed", 0), "failed": c.get("failed", 0),
                         "skipped": c.get("skipped", 0)})
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("No sources yet. Add one with: lancedb-sync sources add local ~/Documents")
        else:
            for r in rows:
                where = ", ".join(r["config"].get("watch_paths", []))
                print(f"{r['source_id']:<20} {r['source_type']:<6} {r['documents']:>7} docs "
                      f"{r['failed']:>4} failed  {where}")
        return EXIT_OK
    if args.sources_command == "add":
        paths = [Path(p).expanduser().resolve() for p in args.path]
        for p in paths:
            if not p.is_dir():
                raise UserError(f"{p} is not a folder.", EXIT_USAGE)
        source_id = args.source_id or paths[0].name or "root"
        if settings.source(source_id):
            raise UserError(f"A source named {source_id!r} exists already; choose another "
                            "with --id.", EXIT_USAGE)
        if ":" in source_id or not source_id.strip():
            raise UserError("A source id cannot be empty or contain ':'.", EXIT_USAGE)
        config: dict[str, Any] = {"watch_paths": [str(p) for p in paths]}
        if args.pattern:
            config["file_patterns"] = args.pattern
        if args.exclude:
            config["exclude_patterns"] = args.exclude
        new = SourceConfig(SourceType.LOCAL_FILESYSTEM, source_id, config)
        save_sources(settings, (*settings.sources, new))
        print(f"Added source {source_id!r} ({', '.join(config['watch_paths'])}). "
              "Run 'lancedb-sync sync' to index it.")
        return EXIT_OK
    if args.sources_command == "remove":
        if not settings.source(args.source_id):
            raise UserError(f"No source named {args.source_id!r}. See 'lancedb-sync sources "
                            "list'.", EXIT_USAGE)
        purged = 0
        if args.purge:
            from app.core.sync import Indexer

            with Indexer(settings) as indexer:
                purged = indexer.purge_source(args.source_id)
        save_sources(settings, tuple(s for s in settings.sources
                                     if s.source_id != args.source_id))
        extra = f"; {purged} documents deleted from the index" if args.purge else \
            "; its documents stay in the index (use --purge to delete them)"
        print(f"Removed source {args.source_id!r}{extra}.")
        return EXIT_OK
    raise AssertionError(args.sources_command)


def _state_counts(settings: Any) -> dict[str, dict[str, int]]:
    from app.core.state import SyncState

    if not settings.state_db_path.exists():
        return {}
    state = SyncState.open(settings.state_dir)
    try:
        return state.counts()
    finally:
        state.close()


# -- sync -------------------------------------------------------------------------------------


class _StatusLine:
    """One live line on stderr, rewritten in place (a TTY only); cleared by finish()."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._shown = False

    def show(self, line: str) -> None:
        cols = 100
        with contextlib.suppress(OSError):
            cols = os.get_terminal_size(sys.stderr.fileno()).columns
        sys.stderr.write("\r" + line[:cols - 1].ljust(cols - 1))
        sys.stderr.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()


class _ProgressLine(_StatusLine):
    """A sync pass: counts, rate and ETA."""

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if p.phase == "indexing" and now - self._last < 0.1 and p.done != p.total:
            return
        self._last = now
        if p.phase == "indexing" and p.total:
            width = 24
            filled = int(width * p.done / p.total)
            eta = f"ETA {int(p.eta_s)}s" if p.eta_s is not None else ""
            where = _tail(p.current.removeprefix("file://"), 40)
            line = (f"{p.source_id}: [{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total}"
                    f" indexed ({p.parsed} read) {p.rate:.0f}/s {eta} {p.failed} failed  {where}")
        else:
            line = f"{p.source_id}: {p.phase}…"
        self.show(line)


def _tail(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1):]


def cmd_sync(args: argparse.Namespace, settings: Any) -> int:
    import signal
    import threading

    from app.core.sync import Indexer

    sources = [s for s in settings.sources if not args.source_id or s.source_id == args.source_id]
    if args.source_id and not sources:
        raise UserError(f"No source named {args.source_id!r}.", EXIT_USAGE)
    if not sources:
        raise UserError("No sources configured. Add one with: lancedb-sync sources add local "
                        "FOLDER", EXIT_USAGE)
    _require_free_disk(settings)
    progress = _ProgressLine()
    cancel = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        # The first Ctrl-C asks the pass to stop at the next batch boundary (nothing
        # half-written); a second one interrupts at once.
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\nlancedb-sync: stopping after the current batch (Ctrl-C again to force)…",
              file=sys.stderr, flush=True)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if in_main else None
    try:
        with Indexer(settings, on_progress=progress, cancel=cancel) as indexer:
            try:
                reports = indexer.sync(sources)
            finally:
                progress.finish()
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    if cancel.is_set():
        done = sum(r.added + r.modified for r in reports)
        print(f"lancedb-sync: interrupted; {done} documents were indexed before stopping and "
              "nothing half-written was kept. Run 'lancedb-sync sync' to continue.",
              file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        for r in reports:
            print(f"{r.source_id}: added {r.added}, modified {r.modified}, deleted {r.deleted}, "
                  f"moved {r.moved}, unchanged {r.unchanged + r.touched}, failed {r.failed}, "
                  f"skipped {r.skipped} ({r.seconds:.2f} s)")
            for problem in r.problems:
                print(f"  ! {problem}")
            if r.retrying:
                print(f"  {r.retrying} of the failed files may succeed later; they are tried "
                      "again on the next sync")
            if r.failed:
                print("  see 'lancedb-sync failed' for the reasons")
            for problem in r.maintenance_errors:
                print(f"  ! index upkeep failed ({problem}); your documents are indexed and "
                      "searchable, and it is tried again later")
    return EXIT_OK


def _require_free_disk(settings: Any) -> None:
    """Refuse to start a write on a nearly full disk: say so in one line, with the remedy."""
    from app.service.health import ERROR, check_disk

    with contextlib.suppress(OSError):
        check = check_disk(settings.index_uri, settings.min_free_disk_mb)
        if check.status == ERROR:
            raise UserError(check.detail.replace("syncing is held until space is freed",
                                                 "free some space there (or lower "
                                                 "min_free_disk_mb), then sync again"))


# -- search -----------------------------------------------------------------------------------


def cmd_search(args: argparse.Namespace, settings: Any) -> int:
    from datetime import UTC, datetime

    from app.core.search import Searcher, SearchFilters
    from app.core.store import Store, StoreError

    after = None
    if args.modified_after:
        try:
            after = datetime.fromisoformat(args.modified_after).replace(tzinfo=UTC)
        except ValueError:
            raise UserError(f"--after expects a date like 2024-05-31, not "
                            f"{args.modified_after!r}.", EXIT_USAGE) from None
    if args.k < 1:
        raise UserError("-k must be at least 1.", EXIT_USAGE)
    if args.snapshot:
        from app.backup.credentials import keyring_provider
        from app.backup.manager import BackupManager

        manager = BackupManager(settings, credentials_provider=keyring_provider(settings))
        store = manager.open_remote(manager.resolve(args.snapshot))
    else:
        if settings.index_dir is not None and not settings.index_dir.exists():
            raise UserError("The index is empty. Add a source and run 'lancedb-sync sync' "
                            "first.")
        try:
            store = Store(settings.index_uri, settings.documents_table, settings.chunks_table,
                          model_id="", dim=256, read_only=True)
        except StoreError as exc:
            raise UserError(str(exc)) from None
    embedder = None
    if args.mode != "fts":
        from app.core.embedding import embedder_model_id, make_embedder

        model, _ = store.index_model
        if model and model != embedder_model_id(settings.embedder):
            raise UserError(f"The index was built with {model} but the settings ask for "
                            f"{embedder_model_id(settings.embedder)}; run 'lancedb-sync reembed' "
                            "or use --mode fts.")
        embedder = make_embedder(settings.embedder, settings.embed_url)
    filters = SearchFilters(args.source_id, args.file_type, args.path_prefix, after)
    hits = Searcher(store, embedder).search(" ".join(args.query), k=args.k, mode=args.mode,
                                            filters=filters)
    if args.json:
        print(json.dumps([h.as_dict() for h in hits], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not hits:
        print("No results.")
        return EXIT_OK
    for i, h in enumerate(hits, 1):
        where = h.uri.removeprefix("file://")
        page = f" (page {h.page})" if h.page else ""
        print(f"{i:>2}. {h.title}{page}  [{h.score:.3f}]")
        print(f"    {where}")
        print(f"    {h.snippet}")
    return EXIT_OK


# -- status, failed, retry, cleanup, reembed -----------------------------------------------------


def cmd_status(args: argparse.Namespace, settings: Any) -> int:
    from app.core.state import SyncState

    state = SyncState.open(settings.state_dir)
    try:
        counts = state.counts()
        runs = state.last_runs()
        model = state.get_meta("index_model") or ""
    finally:
        state.close()
    sources = []
    for s in settings.sources:
        c = counts.get(s.source_id, {})
        run = runs.get(s.source_id, {})
        sources.append({
            "source_id": s.source_id, "source_type": s.source_type.value,
            "enabled": s.enabled, "documents": c.get("indexed", 0),
            "failed": c.get("failed", 0), "skipped": c.get("skipped", 0),
            "chunks": c.get("chunks", 0), "last_sync": run.get("finished_at"),
            "last_outcome": run.get("outcome"), "problems": run.get("problems", []),
        })
    service = _service_status(settings)
    live = {s["source_id"]: s for s in service.get("sources", [])}
    for s in sources:
        s.update({k: live.get(s["source_id"], {}).get(k) for k in (
            "state", "waiting", "watcher", "watcher_reason", "progress", "queued_paths")})
    info = {"version": __version__, "index": settings.index_uri,
            "documents_table": settings.documents_table, "chunks_table": settings.chunks_table,
            "embed_model": model or None, "sources": sources,
            "documents": sum(s["documents"] for s in sources),
            "failed": sum(s["failed"] for s in sources),
            "chunks": sum(s["chunks"] for s in sources),
            "service": {k: service.get(k) for k in (
                "running", "pid", "paused", "paused_until", "held", "on_battery", "queue",
                "health", "updated_at")}}
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"Index: {info['index']}  ({info['documents']:,} documents, {info['chunks']:,} chunks"
          f"{', model ' + model if model else ''})")
    health = service.get("health") or {}
    if service.get("running"):
        q = service.get("queue") or {}
        mode = "paused" if service.get("paused") else "running"
        print(f"Service: {mode} (pid {service['pid']}), health {health.get('status', '?')}, "
              f"queue: {q.get('sources', 0)} source(s), {q.get('paths', 0)} path(s)")
    else:
        print(f"Service: not running (start it with 'lancedb-sync run' or the tray app); "
              f"health {health.get('status', '?')}")
    for check in health.get("checks", []):
        if check["status"] != "ok":
            who = f"{check['source_id']}: " if check.get("source_id") else ""
            print(f"  {check['status'].upper()}: {who}{check['detail']}")
    if not sources:
        print("No sources yet. Add one with: lancedb-sync sources add local ~/Documents")
    for s in sources:
        from app.wording import ago

        when = ago(s["last_sync"]) if s["last_sync"] else "never synced"
        state = f"  [{s['state']}]" if s.get("state") else ""
        print(f"  {s['source_id']:<20} {s['documents']:>7,} docs  {s['failed']:>4} failed  "
              f"{s['skipped']:>4} skipped  last sync: {when} ({s['last_outcome'] or '-'}){state}")
        if s.get("waiting"):
            print(f"    waiting: {s['waiting']}")
        for problem in s["problems"]:
            print(f"    ! {problem}")
    return EXIT_OK


def _service_status(settings: Any) -> dict[str, Any]:
    """The running service's own account (its status file, if it is alive and fresh), or a
    quick health check made here when no service runs."""
    from app.service import health
    from app.service.orchestrator import STATUS_FILE

    try:
        data = json.loads((settings.state_dir / STATUS_FILE).read_text())
        fresh = time.time() - data["updated_at"] < 3 * data["health_check_interval"] + 30
        if fresh and _pid_alive(int(data["pid"])):
            return {**data, "running": True}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    checks = health.check_index(settings.index_uri, (settings.documents_table,
                                                     settings.chunks_table))
    checks.append(health.check_disk(settings.index_uri, settings.min_free_disk_mb))
    checks.extend(health.check_source(s) for s in settings.sources if s.enabled)
    checks.extend(health.check_sync_state(settings.state_dir,
                                          [s.source_id for s in settings.sources]))
    return {"running": False, "health": health.summarize(checks, {})}


def _pid_alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


def cmd_failed(args: argparse.Namespace, settings: Any) -> int:
    from app.core.state import SyncState

    state = SyncState.open(settings.state_dir)
    try:
        rows = state.failed(args.source_id)
    finally:
        state.close()
    if args.json:
        print(json.dumps([{"source_id": r.source_id, "uri": r.uri, "status": r.status,
                           "reason": r.error, "at": r.indexed_at} for r in rows], indent=2,
                         ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("No failed or skipped files.")
        return EXIT_OK
    for r in rows:
        print(f"{r.status:<8} {r.uri.removeprefix('file://')}\n         {r.error}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace, settings: Any) -> int:
    from app.core.sync import Indexer

    with Indexer(settings) as indexer:
        n = indexer.retry_failed(args.source_id)
    print(f"{n} failed or skipped files will be tried again.")
    if args.no_sync or n == 0:
        return EXIT_OK
    return cmd_sync(argparse.Namespace(source_id=args.source_id, json=False), settings)


def cmd_tray(args: argparse.Namespace, settings: Any) -> int:
    # Checked before Qt is imported: a headless machine gets one line, not a Qt abort.
    from app.ui.display import display_problem

    problem = display_problem()
    if problem:
        raise UserError(f"{problem}; the tray needs a desktop session. To keep the index up to "
                        "date without one, run 'lancedb-sync run'.")
    from app.ui.app import run_tray

    return run_tray(settings, home=args.home, window=args.window)


def cmd_run(args: argparse.Namespace, settings: Any) -> int:
    from app import daemon

    if not settings.sources:
        raise UserError("No sources configured. Add one with: lancedb-sync sources add local "
                        "FOLDER", EXIT_USAGE)
    return daemon.main(settings, watch=False if args.no_watch else None, plain=args.plain)


def cmd_cleanup(args: argparse.Namespace, settings: Any) -> int:
    from app.core.sync import Indexer

    with Indexer(settings) as indexer:
        result = indexer.cleanup()
    before, after = result["before"], result["after"]
    dupes = result["duplicate_chunks_removed"]
    print(f"Removed {result['orphan_chunks_deleted']} orphan chunks"
          f"{f' and {dupes} duplicate chunks' if dupes else ''}; "
          f"{len(result['documents_to_redo'])} documents will be re-indexed on the next sync; "
          f"versions {before['chunks_versions']}→{after['chunks_versions']}, "
          f"fragments {before['chunks_fragments']}→{after['chunks_fragments']}.")
    for step, why in result["maintenance_errors"].items():
        print(f"  ! {step} failed: {why}; it is tried again later.")
    return EXIT_OK


def cmd_check(args: argparse.Namespace, settings: Any) -> int:
    from app.core.sync import Indexer

    index = settings.index_uri
    if settings.index_dir is not None and not settings.index_dir.exists():
        raise UserError("There is no index yet. Add a source and run 'lancedb-sync sync'.")
    progress = _ProgressLine()
    try:
        with Indexer(settings, on_progress=progress) as indexer:
            result = indexer.check(repair=args.repair)
    finally:
        progress.finish()
    found, after, fixed = result["found"], result["after"], result["repaired"]
    if args.json:
        out: dict[str, Any] = {"index": index, "clean": after.clean, "found": found.as_dict()}
        if fixed is not None:
            out["repaired"] = {"orphan_chunks_deleted": fixed.orphan_chunks_deleted,
                               "duplicate_chunks_removed": fixed.duplicate_chunks_removed,
                               "documents_reindexed": len(fixed.documents_to_redo)}
            out["after"] = after.as_dict()
        print(json.dumps(out, indent=2))
        return EXIT_OK if after.clean else EXIT_FAIL
    print(f"Index: {index} ({found.documents:,} documents, {found.chunks:,} chunks)")
    if found.clean:
        print("OK: every chunk id is unique, every chunk belongs to its document's current "
              "version, every document has the chunks its row counts, and the sync state "
              "matches the index.")
        return EXIT_OK
    for line in found.problems():
        print(f"  ! {line}")
    if fixed is None:
        print("Run 'lancedb-sync check --repair' to fix this; the affected documents are "
              "indexed again.")
        return EXIT_FAIL
    print(f"Repaired: removed {fixed.orphan_chunks_deleted} orphan and "
          f"{fixed.duplicate_chunks_removed} duplicate chunks; indexed "
          f"{len(fixed.documents_to_redo)} documents again.")
    if after.clean:
        print("OK: the index is consistent now.")
        return EXIT_OK
    for line in after.problems():
        print(f"  ! still: {line}")
    print("Some problems remain (documents of a source that is no longer configured are not "
          "indexed again); see 'lancedb-sync check --json'.")
    return EXIT_FAIL


def cmd_self_check(args: argparse.Namespace, settings: Any) -> int:
    from app import selfcheck

    return selfcheck.main()


def cmd_reembed(args: argparse.Namespace, settings: Any) -> int:
    from app.core.reembed import reembed_index

    return reembed_index(settings, assume_yes=args.yes)


# -- backup, snapshots, restore -----------------------------------------------------------------


class _TransferLine(_StatusLine):
    """Backup/restore progress: files and bytes."""

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        if p.bytes_total:
            line = (f"{p.phase}: {p.files_done}/{p.files_total} files, "
                    f"{_size(p.bytes_done)} of {_size(p.bytes_total)}")
        elif p.files_total:
            line = f"{p.phase}: {p.files_done}/{p.files_total} files"
        else:
            line = f"{p.phase}…"
        self.show(line)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _cancellable(fn: Any) -> Any:
    """Run fn(cancel) with Ctrl-C setting `cancel` (the first time) instead of raising."""
    import signal
    import threading

    cancel = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\nlancedb-sync: stopping (Ctrl-C again to force)…", file=sys.stderr, flush=True)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if in_main else None
    try:
        return fn(cancel)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)


def cmd_backup(args: argparse.Namespace, settings: Any) -> int:
    from app.backup.credentials import keyring_provider
    from app.backup.manager import BackupManager

    manager = BackupManager(settings, credentials_provider=keyring_provider(settings))
    action = getattr(args, "backup_command", None)
    if action == "test":
        checks = manager.test_connection()
        if args.json:
            print(json.dumps([{"check": c.name, "permission": c.permission, "ok": c.ok,
                               "message": c.message} for c in checks], indent=2))
        else:
            for c in checks:
                print(f"{'ok ' if c.ok else 'NO '} {c.name:<7} {c.permission}"
                      + (f"  {c.message}" if c.message else ""))
        return EXIT_OK if all(c.ok for c in checks) else EXIT_FAIL
    if action == "prune":
        result = manager.prune(keep_last=args.keep_last, keep_days=args.keep_days)
        if args.json:
            print(json.dumps(result.as_dict(), indent=2))
        else:
            print(f"Kept {len(result.kept)} snapshots, dropped {len(result.dropped)}; deleted "
                  f"{result.deleted_objects} objects ({_size(result.deleted_bytes)}).")
        return EXIT_OK
    if action == "verify":
        spec = args.snapshot or f"{manager.device.device_id}/latest"
        snapshot = manager.resolve(spec)
        progress = _TransferLine()
        try:
            res = _cancellable(lambda cancel: manager.verify(
                snapshot, download=args.download, on_progress=progress, cancel=cancel))
        finally:
            progress.finish()
        if args.json:
            print(json.dumps({"snapshot": snapshot.ref, "checked": res.checked,
                              "problems": res.problems}, indent=2))
        elif res.ok:
            print(f"Snapshot {snapshot.ref}: all {res.checked} files present and intact.")
        else:
            print(f"Snapshot {snapshot.ref}: {len(res.problems)} of {res.checked} files are "
                  "damaged or missing:")
            for problem in res.problems:
                print(f"  ! {problem}")
        return EXIT_OK if res.ok else EXIT_FAIL
    progress = _TransferLine()
    try:
        result = _cancellable(lambda cancel: manager.backup(
            on_progress=progress, cancel=cancel, prune=not args.no_prune))
    finally:
        progress.finish()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        snap = result.snapshot
        print(f"Snapshot {snap.ref}: {len(snap.files)} files, {_size(snap.total_bytes)}; "
              f"uploaded {result.uploaded_files} files ({_size(result.uploaded_bytes)}), "
              f"{result.reused_files} already in the bucket ({result.seconds:.1f} s).")
        if result.pruned and result.pruned.dropped:
            print(f"Pruned {len(result.pruned.dropped)} old snapshots "
                  f"({result.pruned.deleted_objects} objects).")
    return EXIT_OK


def cmd_snapshots(args: argparse.Namespace, settings: Any) -> int:
    from app.backup.credentials import keyring_provider
    from app.backup.manager import BackupManager

    manager = BackupManager(settings, credentials_provider=keyring_provider(settings))
    device = None
    if args.device:
        device = manager.resolve(args.device).device_id
    snaps = manager.snapshots(device)
    if args.json:
        print(json.dumps([s.summary() for s in snaps], indent=2))
        return EXIT_OK
    if not snaps:
        print(f"No snapshots in {manager.cfg.where} yet. Run 'lancedb-sync backup'.")
        return EXIT_OK
    mine = manager.device.device_id
    by_device: dict[str, list[Any]] = {}
    for s in snaps:
        by_device.setdefault(s.device_id, []).append(s)
    for dev, items in by_device.items():
        tag = "  (this device)" if dev == mine else ""
        print(f"{dev}  {items[-1].device_name}{tag}")
        for s in reversed(items):
            docs = s.table(s.documents_table).rows
            print(f"  {s.snapshot_id}  {s.created_at}  {docs:>7,} docs  {_size(s.total_bytes)}")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace, settings: Any) -> int:
    from app.backup.catalog import ChooseSnapshotError
    from app.backup.credentials import keyring_provider
    from app.backup.manager import BackupManager

    manager = BackupManager(settings, credentials_provider=keyring_provider(settings))
    try:
        snapshot = manager.resolve(args.snapshot)
    except ChooseSnapshotError as exc:
        lines = "\n".join(f"  {d}  {name}  ({n} snapshots)" for d, name, n in exc.devices)
        raise UserError("The bucket holds snapshots of several devices; say which one, e.g. "
                        f"'lancedb-sync restore {exc.devices[0][0]}':\n{lines}",
                        EXIT_USAGE) from None
    target = Path(args.to).expanduser() if args.to else None
    progress = _TransferLine()
    try:
        result = _cancellable(lambda cancel: manager.restore(
            snapshot, target=target, force=args.force, on_progress=progress, cancel=cancel))
    finally:
        progress.finish()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return EXIT_OK
    print(f"Restored snapshot {snapshot.ref} ({snapshot.created_at}, "
          f"{snapshot.table(snapshot.documents_table).rows:,} documents, "
          f"{_size(snapshot.total_bytes)}) into {result.target} in {result.seconds:.1f} s; "
          "every checksum verified.")
    if result.sources_restored:
        print(f"Added the snapshot's {result.sources_restored} sources to the settings; "
              "'lancedb-sync sync' re-indexes only files that differ.")
    if result.documents_to_redo:
        print(f"{result.documents_to_redo} documents were mid-sync in the snapshot and will be "
              "indexed again by the next sync.")
    from app.core.model_switch import embedder_model_id

    wanted = embedder_model_id(settings.embedder)
    if snapshot.embed_model and snapshot.embed_model != wanted:
        print(f"Note: the snapshot was embedded with {snapshot.embed_model}, but the settings "
              f"ask for {wanted}. Set the embedder to {snapshot.embed_model} to use it as it "
              "is, or run 'lancedb-sync reembed'.")
    return EXIT_OK


_COMMANDS = {
    "tray": cmd_tray,
    "sources": cmd_sources,
    "sync": cmd_sync,
    "search": cmd_search,
    "status": cmd_status,
    "failed": cmd_failed,
    "retry": cmd_retry,
    "cleanup": cmd_cleanup,
    "check": cmd_check,
    "run": cmd_run,
    "reembed": cmd_reembed,
    "backup": cmd_backup,
    "snapshots": cmd_snapshots,
    "restore": cmd_restore,
    "self-check": cmd_self_check,
}


if __name__ == "__main__":
    sys.exit(main())
