"""The command line's grammar: every command, its options and their help."""

from __future__ import annotations

import argparse

from app import __version__


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
    rm = src_sub.add_parser("remove", help="remove a source and delete its documents from "
                            "the index")
    rm.add_argument("source_id", metavar="ID")
    rm.add_argument("--purge", action="store_true",
                    help="accepted for older scripts: removing always deletes the documents")

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
    failed = sub.add_parser("failed", help="every file that failed, and why (--all: skipped "
                                           "and unsupported files too)")
    failed.add_argument("--json", action="store_true")
    failed.add_argument("--all", action="store_true", dest="all",
                        help="also list files skipped by design and unsupported files")
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
    run.add_argument("--no-api", action="store_true",
                     help="do not serve the local REST API (on by default; docs/api.md)")
    api = sub.add_parser("api", help="serve the local REST API (and keep the index up to date, "
                                     "as 'run' does) until stopped",
                         description="Equivalent to 'run' with the REST API on, whatever the "
                                     "api_enabled setting says. The URL and token are written to "
                                     "api.json in the state folder; see docs/api.md.")
    api.add_argument("--host", help="address to listen on (default: the api_host setting, "
                                    "127.0.0.1)")
    api.add_argument("--port", type=int, help="port (default: the api_port setting, 8765; 0: any "
                                              "free port)")
    api.add_argument("--plain", action="store_true",
                     help="one log line per event, even on a terminal")
    api.add_argument("--no-watch", action="store_true",
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
