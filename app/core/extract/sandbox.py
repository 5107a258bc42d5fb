"""Run extractors in a pool of worker processes, so a bad file cannot hang or crash the app.

Parsers are native code fed untrusted files: a malformed PDF can loop forever, segfault or eat
all memory. Each worker is a reusable "spawn" process with its own pipe; the parent enforces a
per-file time limit, replaces workers that die, caps their memory, and recycles them
periodically to bound slow leaks.

The time limit covers the parse only. A worker imports a format's parser library when the
first file of that type reaches it, and says when it is done; that load has its own, generous
limit, because a cold import on a busy machine (or under antivirus) can take longer than a
whole parse is allowed, and a slow or broken import is not the file's fault.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Mapping
from itertools import count
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType

from app.core.extract.types import Extracted, ExtractionError
from app.core.extract.worker import LOADED, READY, run_worker

DEFAULT_MAX_FILES_PER_WORKER = 500
# How long a worker gets to exit after being asked (or signalled) before escalating.
_EXIT_GRACE_S = 1.0
# A cold start (antivirus scanning a frozen app, a busy disk) can be slow; a worker that has not
# reported in by then is not coming.
_START_TIMEOUT_S = 60.0
# Loading a format's parser library is a cold start of the same kind: as generous by default.
DEFAULT_LOAD_TIMEOUT_S = _START_TIMEOUT_S


class PoolClosedError(ExtractionError):
    """The pool was closed before (or while) this file was read.

    Kind "internal" (not permanent), so a caller that records it anyway will retry the file;
    callers shutting down can recognise it with isinstance and record nothing.
    """

    def __init__(self) -> None:
        super().__init__("internal", "Indexing was stopped before this file was read.")


class _WorkerGone(Exception):
    """The worker had already died before this request reached it; not the file's fault."""


class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.files = 0

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        """Stop the process now: SIGTERM, then SIGKILL if it ignores that."""
        process = self.process
        if process.is_alive():
            process.terminate()
            process.join(_EXIT_GRACE_S)
        if process.is_alive():
            process.kill()
            process.join(_EXIT_GRACE_S)

    def ask_to_exit(self) -> None:
        with contextlib.suppress(OSError):  # a broken pipe means it is already gone
            self.conn.send(None)

    def stop(self) -> None:
        """Ask the worker to exit, escalating if it does not."""
        self.ask_to_exit()
        self.process.join(_EXIT_GRACE_S)
        self.kill()
        self.close_conn()

    def close_conn(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()

    def exit_detail(self) -> str:
        self.process.join(_EXIT_GRACE_S)
        code = self.process.exitcode
        if code is None:
            return ""
        if code < 0:
            return f" (signal {-code})"
        return f" (exit code {code})"


class ExtractorPool:
    """Extract files in sandboxed worker processes.

    Thread-safe: any number of threads may call `extract`; each call takes one free worker,
    waiting for one when all `workers` are busy. Workers start on first use.
    """

    def __init__(
        self,
        workers: int,
        time_limit_s: float = 60,
        memory_limit_mb: int | None = 1024,
        plugins: Mapping[str, str] | None = None,
        *,
        max_files_per_worker: int = DEFAULT_MAX_FILES_PER_WORKER,
        low_priority: bool = False,
        max_chars: int | None = None,
        load_timeout_s: float = DEFAULT_LOAD_TIMEOUT_S,
    ) -> None:
        """`time_limit_s` bounds each file's parse; `load_timeout_s` bounds importing a
        format's reader in a worker (once per worker and format), which is not counted
        against the file."""
        if workers < 1:
            raise ValueError("an ExtractorPool needs at least one worker")
        if time_limit_s <= 0:
            raise ValueError("time_limit_s must be positive")
        if load_timeout_s <= 0:
            raise ValueError("load_timeout_s must be positive")
        self._size = workers
        self._time_limit_s = time_limit_s
        self._load_timeout_s = load_timeout_s
        self._memory_limit_mb = memory_limit_mb
        self._plugins = dict(plugins) if plugins else None
        self._max_files = max(1, max_files_per_worker)
        self._low_priority = low_priority
        self._max_chars = max_chars
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Condition()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._reserved = 0  # workers alive or being started
        self._closed = False
        self._names = count(1)

    # -- public API --------------------------------------------------------------------------

    def extract(self, path: str | os.PathLike[str], *, max_bytes: int | None = None) -> Extracted:
        """Extract one file in a worker. Raises ExtractionError, including "timeout",
        "crashed" and "memory" for a worker that had to be killed or died, and "internal"
        for a reader that would not load in time."""
        # Absolute, so the answer cannot depend on the working directory the worker inherited.
        request = (os.path.abspath(os.fspath(path)), max_bytes)
        # A worker found dead before it got the request (killed from outside while idle) is
        # replaced and the request sent again; that is not the file's fault.
        for _ in range(3):
            worker = self._acquire()
            reusable = False
            try:
                outcome, reusable = self._run(worker, request)
            except _WorkerGone:
                continue
            finally:
                self._release(worker, reusable)
            if isinstance(outcome, ExtractionError):
                raise outcome
            return outcome
        raise ExtractionError(
            "crashed",
            "The file reader kept stopping before it could start on this file, so it was "
            "skipped; it will be retried later.",
        )

    def close(self) -> None:
        """Stop every worker. Returns promptly even if a worker is stuck in a parser: busy
        workers are killed, and their callers get PoolClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            busy = [w for w in self._all if w not in idle]
            self._lock.notify_all()
        for worker in busy:
            # The calling thread owns the connection and notices the death via EOF.
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in idle:
            worker.ask_to_exit()
        for worker in idle:
            worker.process.join(_EXIT_GRACE_S)
            worker.kill()
            worker.close_conn()
        for worker in busy:
            worker.process.join(_EXIT_GRACE_S)
            if worker.process.is_alive():
                worker.process.kill()

    def __enter__(self) -> ExtractorPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- worker bookkeeping ------------------------------------------------------------------

    def _acquire(self) -> _Worker:
        with self._lock:
            while True:
                if self._closed:
                    raise PoolClosedError()
                if self._idle:
                    return self._idle.pop()
                if self._reserved < self._size:
                    self._reserved += 1
                    break
                self._lock.wait()
        # Starting a process takes a while; do it outside the lock so other threads can run.
        try:
            worker = self._start_worker()
        except BaseException:
            with self._lock:
                self._reserved -= 1
                self._lock.notify()
            raise
        with self._lock:
            self._all.add(worker)
            closed = self._closed
        if closed:
            self._release(worker, reusable=False)
            raise PoolClosedError()
        return worker

    def _release(self, worker: _Worker, reusable: bool) -> None:
        with self._lock:
            keep = reusable and not self._closed and worker.files < self._max_files
            if keep:
                self._idle.append(worker)
            else:
                self._all.discard(worker)
                self._reserved -= 1
            self._lock.notify()
        if not keep:
            worker.stop()

    def _start_worker(self) -> _Worker:
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=run_worker,
            args=(child_conn, self._memory_limit_mb, self._plugins, self._low_priority,
                  self._max_chars),
            name=f"extract-worker-{next(self._names)}",
            daemon=True,
        )
        process.start()
        # Only the child may hold its end; otherwise a dead worker would never read as EOF.
        child_conn.close()
        worker = _Worker(process, parent_conn)
        try:
            ready = parent_conn.poll(_START_TIMEOUT_S) and parent_conn.recv() == READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            detail = worker.exit_detail() if not process.is_alive() else ""
            worker.kill()
            worker.close_conn()
            raise ExtractionError(
                "internal",
                f"The background file reader could not be started{detail}; files will be "
                "retried later. Reinstalling the app may help if this keeps happening.",
            )
        return worker

    # -- one request -------------------------------------------------------------------------

    def _run(
        self, worker: _Worker, request: tuple[str, int | None]
    ) -> tuple[Extracted | ExtractionError, bool]:
        """Send one request; return (result or the file's error, whether the worker is reusable).

        Raises when the worker itself had to be given up: timeout, crash, pool closed, a
        reader that would not load.
        """
        if not worker.alive():
            raise _WorkerGone
        try:
            worker.conn.send(request)
        except (BrokenPipeError, OSError):
            if self._closed:
                raise PoolClosedError() from None
            raise _WorkerGone from None

        self._await_load(worker, request[0])
        # Only now does the file's clock start: the reader is imported.
        if not worker.conn.poll(self._time_limit_s):
            if self._closed:
                raise PoolClosedError()
            worker.kill()
            raise ExtractionError(
                "timeout",
                f"Reading this file took longer than {self._time_limit_s:g} s, so it was "
                "skipped; it may be unusually large or malformed.",
            )
        try:
            reply = worker.conn.recv()
        except (EOFError, OSError):
            if self._closed:
                raise PoolClosedError() from None
            detail = worker.exit_detail()
            raise ExtractionError(
                "crashed",
                f"The parser crashed on this file{detail}, so it was skipped; the file may be "
                "damaged.",
            ) from None
        except Exception as exc:
            # The reply arrived but could not be unpickled (e.g. a plugin returned an object
            # of a class this process cannot import); the worker itself is fine.
            error = ExtractionError(
                "internal",
                f"The reader's result could not be received ({type(exc).__name__}); check the "
                "add-on parser settings.",
            )
            return error, True

        worker.files += 1
        if reply[0] == "ok":
            return reply[1], True
        _, kind, reason = reply
        # After a MemoryError the worker exits by itself; it must not go back to the idle list.
        return ExtractionError(kind, reason), kind != "memory"

    def _await_load(self, worker: _Worker, path: str) -> None:
        """Wait for the worker to say the reader for this file's type is loaded.

        A load that hangs, or during which the worker dies, is the reader's problem: kind
        "internal" (retried later), never the file's timeout or crash.
        """
        ext = os.path.splitext(path)[1].lower()
        reader = f"The reader for {ext} files" if ext else "The file reader"
        if not worker.conn.poll(self._load_timeout_s):
            if self._closed:
                raise PoolClosedError()
            worker.kill()
            raise ExtractionError(
                "internal",
                f"{reader} did not finish loading within {self._load_timeout_s:g} s, so this "
                "file was skipped; it will be retried later. The computer may be very busy, or "
                "an add-on parser may be stuck while starting.",
            )
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            if self._closed:
                raise PoolClosedError() from None
            detail = worker.exit_detail()
            raise ExtractionError(
                "internal",
                f"{reader} stopped while loading{detail}, so this file was skipped; it will "
                "be retried later. Check the add-on parser settings, or reinstall the app if "
                "this keeps happening.",
            ) from None
        if message != LOADED:
            # Not a reply to this request: the conversation is out of step, so the worker
            # cannot be trusted with another file.
            worker.kill()
            raise ExtractionError(
                "internal",
                "The background file reader answered out of turn, so this file was skipped; "
                "it will be retried later.",
            )
