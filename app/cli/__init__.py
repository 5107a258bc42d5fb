"""The `lancedb-sync` command line: a thin face over the `Service` (app/service).

Heavy modules (LanceDB, pyarrow, the embedding model) are imported only by the commands that
need them, so `--help`, `status`, `failed` and a sync that finds nothing changed answer at once.
One module per group of commands; `errors.py` holds the exit codes, shared with `run`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from app.cli.errors import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UserError, known_error
from app.cli.parser import build_parser

__all__ = ["EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "UserError", "build_parser", "main"]


_COMMANDS = {
    "tray": "tray:cmd_tray", "sources": "sources:cmd_sources", "sync": "sync:cmd_sync",
    "retry": "sync:cmd_retry", "run": "sync:cmd_run", "api": "sync:cmd_api",
    "search": "search:cmd_search",
    "status": "status:cmd_status", "failed": "status:cmd_failed",
    "cleanup": "maintenance:cmd_cleanup", "check": "maintenance:cmd_check",
    "reembed": "maintenance:cmd_reembed", "self-check": "maintenance:cmd_self_check",
    "backup": "backup:cmd_backup", "snapshots": "backup:cmd_snapshots",
    "restore": "backup:cmd_restore",
}


def _command(name: str) -> Callable[[Any, Any], int]:
    """The command's function; only its own module is imported (a search answered by the
    running app must not pay for asyncio or the backup code)."""
    import importlib

    module, func = _COMMANDS[name].split(":")
    return getattr(importlib.import_module(f"app.cli.{module}"), func)


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
        code = _command(args.command)(args, settings)
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

        from app.service.errors import disk_full_message, is_disk_full, one_line

        logging.getLogger("app.cli").error("%s failed", args.command, exc_info=True)
        if is_disk_full(exc):
            where = settings.index_uri if settings is not None else "the index"
            print(f"lancedb-sync: {disk_full_message(where)}", file=sys.stderr)
            return EXIT_FAIL
        known = known_error(exc)
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
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):
        # Not possible when stderr is no real file (embedded, captured): then just skip it.
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            faulthandler.register(signal.SIGUSR1, all_threads=True)
