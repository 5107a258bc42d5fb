"""REST API figures: search overhead over the in-process call, 50 concurrent clients while a sync
runs (errors, latency, the serving loop's lag), and a cold command-line search answered by the
running app.

    .venv/bin/python bench/bench_api.py [--queries 400] [--clients 50] [--cold-runs 5]
                                        [--write docs/benchmarks.md]

This process is the app: a started `Service` on an asyncio loop with `ApiServer` beside it (as
`lancedb-sync run` has them), over a copy of the Python docs (python3.11-doc, 1,027 files). A task
on that loop sleeps 10 ms again and again and records how late it wakes (the loop's lag, as
bench_tray.py measures the tray's). Clients run in their own processes (this file's `client`
command), so they do not compete for this process's GIL:

* overhead: the same queries, one at a time, through `GET /api/v1/search` on a keep-alive
  loopback connection, and through `Service.search` called in this process (in a worker thread,
  as the tray calls it), in alternating blocks of 20; p50 and p95 of each;
* load: 50 client threads (one keep-alive connection each) search without pause; a second copy
  of the docs is added to the watched folder and a pass started; the requests made while the
  pass runs give errors, p50/p95 and requests per second, and the loop's lag over the same span;
* cold: whole new processes that ask the running app: `python -m app search` when the CLI
  routes through the API (app/api/client.py), and a stdlib `http.client` one-liner; then the
  in-process `python -m app search` (LanceDB import and model load included) for the ratio,
  with the API stopped so the CLI cannot use it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from report import write_section  # noqa: E402

BEGIN = "<!-- bench_api:begin -->"
END = "<!-- bench_api:end -->"

# What a person looks up in the Python docs; hybrid search, k=10, as the tray's Search window.
QUERIES = (
    "read a file line by line", "asyncio gather with a timeout", "parse command line arguments",
    "format a date as ISO 8601", "sort a list of dictionaries by key", "regular expression groups",
    "subprocess capture output", "json dump with indentation", "dataclass default factory",
    "thread pool executor map", "context manager with statement", "walk a directory tree",
    "decimal rounding modes", "unicode normalization", "socket server example",
    "logging to a rotating file", "pickle protocol versions", "f-string format specification",
    "generator expression vs list comprehension", "typing protocol structural subtyping",
    "zip two lists together", "temporary directory cleanup", "hash of a file sha256",
    "environment variables os.environ", "exception chaining raise from", "enum auto values",
    "csv reader dialect", "weak references callbacks", "struct pack binary data",
    "heapq priority queue", "sqlite3 parameter substitution", "http client request headers",
    "signal handler SIGTERM", "multiprocessing spawn start method", "itertools groupby",
    "pathlib glob recursive", "textwrap dedent", "random sample without replacement",
    "time monotonic clock", "abstract base classes register",
)
K = 10


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


# -- clients (their own processes) ----------------------------------------------------------------

class Client:
    """One keep-alive HTTP/1.1 connection with the bearer token."""

    def __init__(self, url: str, token: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}"}

    def search(self, query: str) -> int:
        path = "/api/v1/search?" + urllib.parse.urlencode({"q": query, "k": K})
        try:
            self.conn.request("GET", path, headers=self.headers)
            resp = self.conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # reconnects on the next request
            raise
        if resp.status != 200 or not json.loads(body)["results"]:
            raise RuntimeError(f"HTTP {resp.status}: {body[:200]!r}")
        return resp.status


def client_main(args: argparse.Namespace) -> int:
    """Two modes, both driven by lines on stdin and answering on stdout.

    `--threads 0`: one connection; each line "I N" runs N searches, queries I, I+1, …, one at a
    time, and answers their latencies as a JSON line. `--threads T`: T threads, one connection
    each, search without pause until a line (or end of input) arrives, then one JSON line with
    every request's start (wall clock) and latency, and the errors."""
    if not args.threads:
        c = Client(args.url, args.token)
        for q in QUERIES:  # warm-up: the connection, the server's caches
            c.search(q)
        print("ready", flush=True)
        for line in sys.stdin:
            first, n = map(int, line.split())
            lat = []
            for i in range(first, first + n):
                t = time.perf_counter()
                c.search(QUERIES[i % len(QUERIES)])
                lat.append(time.perf_counter() - t)
            print(json.dumps(lat), flush=True)
        return 0
    done: list[tuple[float, float]] = []
    errors: list[tuple[float, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(n: int) -> None:
        c = Client(args.url, args.token)
        mine, bad = [], []
        i = n
        while not stop.is_set():
            wall, t = time.time(), time.perf_counter()
            try:
                c.search(QUERIES[i % len(QUERIES)])
                mine.append((wall, time.perf_counter() - t))
            except Exception as exc:
                bad.append((wall, f"{type(exc).__name__}: {exc}"))
            i += 1
        with lock:
            done.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.threads)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.readline()
    stop.set()
    for t in threads:
        t.join()
    print(json.dumps({"requests": done, "errors": errors}), flush=True)
    return 0


# -- the app (this process) -----------------------------------------------------------------------

class LagProbe:
    """A task on the serving loop that sleeps 10 ms and records how late it wakes."""

    def __init__(self) -> None:
        self.samples: list[float] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.010)
            if self.samples is not None:
                self.samples.append(max(0.0, time.monotonic() - t - 0.010))

    @contextlib.contextmanager
    def window(self):
        self.samples = []
        try:
            yield self
        finally:
            self.taken, self.samples = self.samples, None

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class ClientProcess:
    """This file's `client` command in its own process (see client_main)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "client", *args], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the client did not start: exit {self.proc.wait()}")

    def ask(self, line: str) -> object:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the client ended: exit {self.proc.wait()}")
        return json.loads(answer)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(60)


def source_state(service, source_id: str):
    return service.get_status().source(source_id)


async def wait_idle(service, source_id: str, documents: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = service.get_status()
        s = st.source(source_id)
        if s and s.state == "idle" and s.documents >= documents and st.current is None \
                and not st.queue.sources:
            return time.monotonic() - t0
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{source_id} not idle with {documents} documents after {timeout} s")


def timed_cmd(cmd: list[str], env: dict[str, str], check_out: str | None = None) -> float:
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if out.returncode or (check_out and check_out not in out.stdout):
        raise RuntimeError(f"{cmd[:4]}… exited {out.returncode}: {out.stderr[-1500:]}"
                           f"{out.stdout[-500:]}")
    return wall


STDLIB_CLIENT = (
    "import http.client,json,sys,urllib.parse as u;"
    "a=json.load(open(sys.argv[1]));p=u.urlsplit(a['url']);"
    "c=http.client.HTTPConnection(p.hostname,p.port);"
    "c.request('GET','/api/v1/search?'+u.urlencode({'q':sys.argv[2],'k':10}),"
    "headers={'Authorization':'Bearer '+a['token']});"
    "r=c.getresponse();d=json.loads(r.read());"
    "[print(h['uri']) for h in d['results']];sys.exit(r.status!=200)"
)


async def scenario(root: Path, args: argparse.Namespace) -> dict:
    from corpus import copy_tree, python_docs_dir

    from app.api import discovery
    from app.api.server import ApiServer
    from app.config import load_settings
    from app.models import SourceConfig, SourceType
    from app.service import Service

    r: dict = {"loadavg_start": os.getloadavg()[0]}
    docs = python_docs_dir()
    watched = root / "corpus"
    copy_tree(docs, watched / "docs")
    home = root / "home"
    settings = load_settings(home=home, env={})
    service = Service(settings, watch=False)
    await service.start()
    probe = LagProbe()
    probe.start()
    server = None
    try:
        t0 = time.monotonic()
        await service.add_source(SourceConfig(
            SourceType.LOCAL_FILESYSTEM, "pydocs",
            {"watch_paths": [str(watched)], "file_patterns": ["*.html", "*.txt"]}))
        await wait_idle(service, "pydocs", 1000, 900)
        r["ingest_s"] = time.monotonic() - t0
        s = source_state(service, "pydocs")
        r["documents"], r["chunks"] = s.documents, s.chunks

        server = ApiServer(service, settings, port=0)
        url = await server.start()
        token = json.loads(discovery.api_file(settings.state_dir).read_text())["token"]
        served = {"n": 0}  # Service.search calls made for HTTP requests (proves routing)
        real_search = service.search

        def counting_search(*a, **kw):
            served["n"] += 1
            return real_search(*a, **kw)

        # -- (a) overhead ------------------------------------------------------------------------
        # Alternating blocks of the same queries, so that whatever else the machine does falls
        # on both paths alike.
        n, block = args.queries, 20

        def inproc_block(first: int) -> list[float]:
            lat = []
            for i in range(first, first + block):
                t = time.perf_counter()
                hits = real_search(QUERIES[i % len(QUERIES)], k=K)
                lat.append(time.perf_counter() - t)
                assert hits
            return lat

        for q in QUERIES:  # warm-up, as the client's
            real_search(q, k=K)
        one = await asyncio.to_thread(ClientProcess, url, token, "--threads", "0")
        inproc: list[float] = []
        api: list[float] = []
        with probe.window():
            for first in range(0, n, block):
                inproc += await asyncio.to_thread(inproc_block, first)
                api += await asyncio.to_thread(one.ask, f"{first} {block}")
        await asyncio.to_thread(one.close)
        r["a_lag"] = probe.taken
        r["inproc"], r["api"] = inproc, api

        # -- (b) 50 clients while a sync runs ---------------------------------------------------
        # The clients search from before the pass starts until after it ends; the figures are
        # the requests made while it ran, and the loop's lag over the same span.
        await asyncio.to_thread(copy_tree, docs, watched / "more")
        service.search = counting_search  # the API's handler calls service.search
        many = await asyncio.to_thread(ClientProcess, url, token, "--threads", str(args.clients))
        await asyncio.sleep(2)  # every client connected and searching
        with probe.window():
            t_sync = time.time()
            service.sync_now("pydocs")
            while source_state(service, "pydocs").state not in ("scanning", "indexing"):
                await asyncio.sleep(0.02)
            await wait_idle(service, "pydocs", r["documents"] + 1000, 900)
            t_end = time.time()
        load = await asyncio.to_thread(many.ask, "stop")
        await asyncio.to_thread(many.close)
        r["b_lag"] = probe.taken
        r["load_all"] = len(load["requests"])
        r["load"] = [lat for start, lat in load["requests"]
                     if start >= t_sync and start + lat <= t_end]
        r["load_errors"] = [e for _, e in load["errors"]]
        r["load_seconds"] = t_end - t_sync
        r["load_served"] = served["n"]
        s = source_state(service, "pydocs")
        r["pass"] = s.last_sync or {}
        r["documents_after"] = s.documents

        # -- (c) cold processes ------------------------------------------------------------------
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("LANCEDB_SYNC_HOME", None)
        api_json = str(discovery.api_file(settings.state_dir))
        query = "parse command line arguments"
        cli = [sys.executable, "-m", "app", "--home", str(home), "search", query, "-k", "10"]
        stdlib = [sys.executable, "-c", STDLIB_CLIENT, api_json, query]
        runs = args.cold_runs
        r["has_client"] = importlib.util.find_spec("app.api.client") is not None
        served["n"] = 0
        r["cold_stdlib"] = [await asyncio.to_thread(timed_cmd, stdlib, env, "argparse")
                            for _ in range(runs)]
        stdlib_served = served["n"]
        r["cold_cli_api"] = []
        if r["has_client"]:
            served["n"] = 0
            r["cold_cli_api"] = [await asyncio.to_thread(timed_cmd, cli, env, "argparse")
                                 for _ in range(runs)]
            r["cli_served"] = served["n"]  # == runs when the CLI went through the API
        r["stdlib_served"] = stdlib_served
        await server.stop()
        server = None
        r["cold_cli_inproc"] = [await asyncio.to_thread(timed_cmd, cli, env, "argparse")
                                for _ in range(args.cold_inproc_runs)]
        r["loadavg_end"] = os.getloadavg()[0]
        service.search = real_search
    finally:
        if server is not None:
            await server.stop()
        await probe.stop()
        await service.stop()
    return r


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def report(r: dict, args: argparse.Namespace) -> str:
    day = time.strftime("%Y-%m-%d")
    ip50, ip95 = statistics.median(r["inproc"]), pct(r["inproc"], 0.95)
    ap50, ap95 = statistics.median(r["api"]), pct(r["api"], 0.95)
    over = ap50 - ip50
    paired = statistics.median(a - b for a, b in zip(r["api"], r["inproc"], strict=True))
    llat = r["load"]
    secs = r["load_seconds"]
    errors = len(r["load_errors"])
    blag = r["b_lag"]
    b_p99 = pct(blag, 0.99) * 1000
    added = r["pass"].get("added", 0)
    cold_in = statistics.median(r["cold_cli_inproc"])
    std = statistics.median(r["cold_stdlib"])
    lines = [
        f"Measured {day} on this project's CI machine kind ({os.cpu_count()} cores, "
        f"{platform.machine()}, Python {sys.version.split()[0]}), by `python bench/bench_api.py "
        "--write docs/benchmarks.md`: a started Service with the API beside it on one asyncio "
        f"loop, over the Python docs ({r['documents']:,} documents, {r['chunks']:,} chunks); "
        "clients in their own processes, on loopback, hybrid search, k = 10.",
        "",
        "| figure | result | target | met |",
        "|---|---|---|---|",
        f"| search, one client, keep-alive ({len(r['api'])} queries each way, in alternating "
        f"blocks of 20) | API p50 {ms(ap50)}, p95 {ms(ap95)} · in process p50 {ms(ip50)}, "
        f"p95 {ms(ip95)} · **p50 overhead {ms(over)}** ({ap50 / ip50:.2f}× the in-process call; "
        f"median per-query difference {ms(paired)}) | ≤ 5 ms | "
        f"{'yes' if over <= 0.005 else 'no'} |",
        f"| {args.clients} concurrent clients searching while a pass adds {added:,} files "
        f"({secs:.0f} s) | **{errors} errors** in {len(llat):,} searches "
        f"({len(llat) / secs:.0f}/s), p50 {ms(statistics.median(llat))}, "
        f"**p95 {ms(pct(llat, 0.95))}** | 0 errors, p95 reported | "
        f"{'yes' if errors == 0 else 'no'} |",
        f"| the serving loop's lag meanwhile ({len(blag):,} ticks of a 10 ms sleep) | p50 "
        f"{statistics.median(blag) * 1000:.1f} ms · **p99 {b_p99:.1f} ms** · max "
        f"{max(blag) * 1000:.0f} ms | p99 ≤ 100 ms | {'yes' if b_p99 <= 100 else 'no'} |",
    ]
    if r["has_client"]:
        cli = statistics.median(r["cold_cli_api"])
        routed = r["cli_served"] == len(r["cold_cli_api"])
        lines.append(
            f"| cold `python -m app search` answered by the running app (median of "
            f"{len(r['cold_cli_api'])}{'' if routed else '; NOT answered through the API'}) "
            f"| **{cli:.2f} s** "
            f"({', '.join(f'{t:.2f}' for t in r['cold_cli_api'])}); {cold_in / cli:.0f}× faster "
            f"than in process | ≤ 0.3 s | {'yes' if cli <= 0.3 and routed else 'no'} |")
    else:
        lines.append(
            "| cold `python -m app search` answered by the running app | not measured: this "
            "build's CLI does not route through the API yet (no app/api/client.py) | ≤ 0.3 s | "
            "— |")
    lines += [
        f"| cold `python -c` stdlib `http.client` search of the running app (median of "
        f"{len(r['cold_stdlib'])}) | **{std:.2f} s** "
        f"({', '.join(f'{t:.2f}' for t in r['cold_stdlib'])}); {cold_in / std:.0f}× faster than "
        "in process | | |",
        f"| cold `python -m app search` in process (API stopped; median of "
        f"{len(r['cold_cli_inproc'])}) | {cold_in:.2f} s "
        f"({', '.join(f'{t:.2f}' for t in r['cold_cli_inproc'])}) | | |",
        "",
        f"The {args.clients} clients searched from before the pass started until after it "
        f"ended; the figures count the {len(llat):,} requests made while it ran (of "
        f"{r['load_all']:,}; every one answered by the serving process's `Service.search`, "
        f"{r['load_served']:,} calls counted) and the errors of all of them. The pass (a second "
        f"copy of the docs in the watched folder) took {r['pass'].get('seconds', 0):.1f} s "
        f"inside the service and ended with {r['documents_after']:,} documents. Lag while the "
        f"single client searched: p99 {pct(r['a_lag'], 0.99) * 1000:.1f} ms. Initial ingest by "
        f"the service: {r['ingest_s']:.1f} s. The in-process `python -m app search` imports "
        "LanceDB and loads the model; the other two cold figures are a new Python process and "
        f"one HTTP request. The machine's load average (1 min) was {r['loadavg_start']:.1f} at "
        f"the start and {r['loadavg_end']:.1f} at the end.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    c = sub.add_parser("client", help="(internal) a client process")
    c.add_argument("url")
    c.add_argument("token")
    c.add_argument("--threads", type=int, default=0)
    parser.add_argument("--queries", type=int, default=400, help="each way, for the overhead")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--cold-inproc-runs", type=int, default=3)
    parser.add_argument("--write", metavar="MD")
    parser.add_argument("--json", metavar="FILE", help="also save the raw figures")
    args = parser.parse_args()
    if args.command == "client":
        return client_main(args)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        r = asyncio.run(scenario(Path(tmp), args))
    if args.json:
        Path(args.json).write_text(json.dumps(r))
    text = report(r, args)
    print(text)
    if args.write:
        write_section(Path(args.write), "bench_api", "REST API (bench/bench_api.py)",
                      f"{BEGIN}\n\n{text}\n{END}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
