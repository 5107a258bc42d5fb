"""The sandboxed worker pool: isolation from hanging, crashing and memory-hungry parsers."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.core.extract import ExtractionError
from app.core.extract.sandbox import ExtractorPool, PoolClosedError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
HELPERS = "tests.helpers.parsers"
PLUGINS = {
    ".ok": f"{HELPERS}:ok",
    ".hang": f"{HELPERS}:hang",
    ".crash": f"{HELPERS}:crash",
    ".exit": f"{HELPERS}:exit_hard",
    ".hog": f"{HELPERS}:hog",
}
TIME_LIMIT_S = 1.0
# Readers whose module import is slow (longer than TIME_LIMIT_S), never ends, crashes or fails.
IMPORTS = {
    ".slow": "tests.helpers.slow_import:ok",
    ".slowhang": "tests.helpers.slow_import:hang",
    ".stuck": "tests.helpers.hung_import:never",
    ".boom": "tests.helpers.crash_import:crash",
    ".missing": "tests.helpers.no_such_module:read",
}


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for ext in PLUGINS:
        path = tmp_path / f"sample{ext}"
        path.write_text(f"contents of {ext}")
        out[ext] = path
    return out


@pytest.fixture()
def pool() -> Iterator[ExtractorPool]:
    with ExtractorPool(
        2, time_limit_s=TIME_LIMIT_S, memory_limit_mb=300, plugins=PLUGINS
    ) as the_pool:
        yield the_pool


def _pid(pool: ExtractorPool, path: Path) -> int:
    return int(pool.extract(path).metadata["pid"])


def test_pool_extracts_every_fixture_and_reports_file_errors(pool: ExtractorPool) -> None:
    for path in sorted((FIXTURES / "formats").glob("sample.*")):
        text = "\n".join(b.text for b in pool.extract(path).blocks)
        assert f"zebrafish{path.suffix[1:]}" in text
    with pytest.raises(ExtractionError) as info:
        pool.extract(FIXTURES / "bad" / "encrypted.pdf")
    assert info.value.kind == "encrypted"
    with pytest.raises(ExtractionError) as info:
        pool.extract(FIXTURES / "formats" / "sample.txt", max_bytes=10)
    assert info.value.kind == "too_large"


def test_workers_are_reused_across_files(pool: ExtractorPool, files: dict[str, Path]) -> None:
    pids = {_pid(pool, files[".ok"]) for _ in range(20)}
    assert len(pids) == 1  # one caller at a time needs only one worker, and keeps it


def test_hang_times_out_and_the_pool_recovers(pool: ExtractorPool, files: dict[str, Path]) -> None:
    before = _pid(pool, files[".ok"])
    start = time.monotonic()
    with pytest.raises(ExtractionError) as info:
        pool.extract(files[".hang"])
    elapsed = time.monotonic() - start
    assert info.value.kind == "timeout"
    assert f"longer than {TIME_LIMIT_S:g} s" in info.value.reason
    assert TIME_LIMIT_S * 0.9 <= elapsed < TIME_LIMIT_S + 3
    assert pool.extract(files[".ok"]).blocks[0].text == "contents of .ok"
    with pytest.raises(ProcessLookupError):
        # The worker that was stuck (it had been the only one) was killed.
        for _ in range(50):
            os.kill(before, 0)
            time.sleep(0.05)


@pytest.mark.parametrize("ext", [".crash", ".exit"])
def test_crash_is_reported_and_the_pool_recovers(
    pool: ExtractorPool, files: dict[str, Path], ext: str
) -> None:
    with pytest.raises(ExtractionError) as info:
        pool.extract(files[ext])
    assert info.value.kind == "crashed"
    assert info.value.reason.startswith("The parser crashed on this file")
    assert pool.extract(files[".ok"]).blocks[0].text == "contents of .ok"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is Linux-only")
def test_memory_hog_is_stopped_by_the_limit(pool: ExtractorPool, files: dict[str, Path]) -> None:
    with pytest.raises(ExtractionError) as info:
        pool.extract(files[".hog"])
    assert info.value.kind == "memory"
    assert "300 MB" in info.value.reason
    assert pool.extract(files[".ok"]).blocks[0].text == "contents of .ok"


def test_concurrent_callers_share_the_workers(pool: ExtractorPool, files: dict[str, Path]) -> None:
    with ThreadPoolExecutor(6) as executor:
        results = list(executor.map(lambda _: pool.extract(files[".ok"]), range(60)))
    assert all(r.blocks[0].text == "contents of .ok" for r in results)
    assert len({r.metadata["pid"] for r in results}) <= 2


def test_failures_in_one_thread_do_not_disturb_others(
    pool: ExtractorPool, files: dict[str, Path]
) -> None:
    paths = [files[".ok"]] * 20 + [files[".crash"], files[".exit"]]
    with ThreadPoolExecutor(4) as executor:
        futures = [executor.submit(pool.extract, path) for path in paths]
    for path, future in zip(paths, futures, strict=True):
        if path.suffix == ".ok":
            assert future.result().blocks[0].text == "contents of .ok"
        else:
            assert isinstance(future.exception(), ExtractionError)
            assert future.exception().kind == "crashed"  # type: ignore[union-attr]


def test_workers_are_recycled_after_max_files(files: dict[str, Path]) -> None:
    with ExtractorPool(1, plugins=PLUGINS, max_files_per_worker=3) as pool:
        pids = [_pid(pool, files[".ok"]) for _ in range(7)]
    assert len(set(pids)) == 3
    assert pids[0] == pids[1] == pids[2] != pids[3]


def test_a_worker_killed_while_idle_is_replaced(
    pool: ExtractorPool, files: dict[str, Path]
) -> None:
    pid = _pid(pool, files[".ok"])
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert _pid(pool, files[".ok"]) != pid  # no error blamed on the next file


def test_close_returns_promptly_with_a_stuck_worker(files: dict[str, Path]) -> None:
    pool = ExtractorPool(1, time_limit_s=60, plugins=PLUGINS)
    pool.extract(files[".ok"])  # the worker is running, so the hang starts at once
    outcome: list[BaseException] = []

    def stuck() -> None:
        try:
            pool.extract(files[".hang"])
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=stuck)
    caller.start()
    time.sleep(0.3)
    start = time.monotonic()
    pool.close()
    caller.join(5)
    assert time.monotonic() - start < 3
    assert not caller.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], PoolClosedError)
    assert outcome[0].kind == "internal" and not outcome[0].permanent
    with pytest.raises(PoolClosedError):
        pool.extract(files[".ok"])
    pool.close()  # idempotent


def test_callers_waiting_for_a_worker_are_released_by_close(files: dict[str, Path]) -> None:
    pool = ExtractorPool(1, time_limit_s=60, plugins=PLUGINS)
    pool.extract(files[".ok"])
    errors: list[BaseException] = []

    def call(path: Path) -> None:
        try:
            pool.extract(path)
        except BaseException as exc:
            errors.append(exc)

    hung = threading.Thread(target=call, args=(files[".hang"],))
    hung.start()
    time.sleep(0.3)  # the only worker is now stuck
    waiting = [threading.Thread(target=call, args=(files[".ok"],)) for _ in range(3)]
    for thread in waiting:
        thread.start()
    time.sleep(0.2)
    pool.close()
    threads = [hung, *waiting]
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)
    assert len(errors) == 4 and all(isinstance(e, PoolClosedError) for e in errors)


def _import_files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for ext in IMPORTS:
        path = tmp_path / f"reader{ext}"
        path.write_text(f"read by the {ext} reader")
        out[ext] = path
    return out


def test_a_reader_slow_to_import_does_not_use_up_the_time_limit(
    files: dict[str, Path], tmp_path: Path
) -> None:
    slow = _import_files(tmp_path)[".slow"]
    with ExtractorPool(1, time_limit_s=TIME_LIMIT_S, plugins={**PLUGINS, **IMPORTS}) as pool:
        pool.extract(files[".ok"])  # the worker is up: what follows is the import and the parse
        start = time.monotonic()
        first = pool.extract(slow)
        elapsed = time.monotonic() - start
        second = pool.extract(slow)  # loaded once per worker
    assert elapsed > TIME_LIMIT_S  # the import alone took longer than a parse may
    assert first.blocks[0].text == "read by the .slow reader"
    assert second.metadata["pid"] == first.metadata["pid"]


def test_a_parse_that_hangs_after_a_slow_import_still_times_out(
    files: dict[str, Path], tmp_path: Path
) -> None:
    paths = _import_files(tmp_path)
    with ExtractorPool(1, time_limit_s=TIME_LIMIT_S, plugins={**PLUGINS, **IMPORTS}) as pool:
        with pytest.raises(ExtractionError) as info:
            pool.extract(paths[".slowhang"])
        assert info.value.kind == "timeout"
        assert f"longer than {TIME_LIMIT_S:g} s" in info.value.reason
        assert pool.extract(files[".ok"]).blocks[0].text == "contents of .ok"


def test_a_reader_whose_import_never_ends_is_reported_within_the_load_limit(
    files: dict[str, Path], tmp_path: Path
) -> None:
    load_limit_s = 2.0
    stuck = _import_files(tmp_path)[".stuck"]
    with ExtractorPool(1, time_limit_s=60, load_timeout_s=load_limit_s,
                       plugins={**PLUGINS, **IMPORTS}) as pool:
        before = _pid(pool, files[".ok"])
        start = time.monotonic()
        with pytest.raises(ExtractionError) as info:
            pool.extract(stuck)
        elapsed = time.monotonic() - start
        error = info.value
        assert error.kind == "internal" and not error.permanent  # not the file's fault
        assert "reader for .stuck files did not finish loading within 2 s" in error.reason
        # Bounded by the load limit, not by the 60 s time limit (the kill adds a little).
        assert load_limit_s * 0.9 <= elapsed < 30
        assert _pid(pool, files[".ok"]) != before  # the stuck worker was replaced


def test_a_reader_that_crashes_or_fails_while_loading_is_not_blamed_on_the_file(
    files: dict[str, Path], tmp_path: Path
) -> None:
    paths = _import_files(tmp_path)
    with ExtractorPool(1, time_limit_s=TIME_LIMIT_S, plugins={**PLUGINS, **IMPORTS}) as pool:
        with pytest.raises(ExtractionError) as info:
            pool.extract(paths[".boom"])
        assert info.value.kind == "internal" and not info.value.permanent
        assert info.value.reason.startswith("The reader for .boom files stopped while loading")
        pid = _pid(pool, files[".ok"])
        with pytest.raises(ExtractionError) as info:
            pool.extract(paths[".missing"])
        assert info.value.kind == "internal"
        assert "reader for .missing files could not be loaded" in info.value.reason
        assert _pid(pool, files[".ok"]) == pid  # a failed import leaves the worker usable


def test_invalid_pool_arguments() -> None:
    with pytest.raises(ValueError):
        ExtractorPool(0)
    with pytest.raises(ValueError):
        ExtractorPool(1, time_limit_s=0)
    with pytest.raises(ValueError):
        ExtractorPool(1, load_timeout_s=0)
