#!/usr/bin/env python
"""A bounded load benchmark of ``auxrec serve`` and batch ``recommend`` throughput (ML-1M subset, SASRec+).

What it measures, in this order:

1. **Setup** (cached in ``--workdir``): ``auxrec prepare ml-1m`` from ``../shared/data/ml-1m``
   (the loader defaults ``configs/ml-1m.toml`` uses), then ``auxrec train sasrec --aux
   text,image,tabular`` with the basic built-in encoders, ``--max-len 200`` and **one epoch**:
   the benchmark measures speed, not accuracy (scoring costs the same after 1 epoch as after
   200). Both are reused when present.
2. **The real service**: ``auxrec serve RUN --port P`` in a child process on 127.0.0.1; the
   benchmark waits for ``/health``.
3. **Load**: an async httpx client runs, for 1, 8 and 64 concurrent clients (closed loop:
   each client sends its next request when the previous one is answered), at most
   ``--requests`` requests or ``--max-seconds`` seconds, whichever comes first, of
   ``POST /recommend`` with ``k=10``: ``user`` = a random known user; ``mixed`` = half
   users, half ``history`` requests (the last 1-50 items of a random user, in original ids).
   Each (mix, clients) cell is repeated ``--repeats`` times; the table shows the median and
   best requests/s and the median p50/p95/p99 latency (client side, from sending the request
   to reading the whole answer). The client runs on the same machine and takes CPU too.
4. **Malformed requests**: ``--malformed`` random bad requests (bad JSON, wrong types,
   huge k, unknown users and items, 10,001-item histories, random bytes, wrong content
   types and methods, missing and extra fields, deep nesting, raw non-HTTP bytes on the
   socket...) interleaved one for one with good requests, 8 at a time. Passes when no
   answer is a 5xx, every good request is answered 200, and ``/health`` still answers and
   the process is alive afterwards.
5. **Batch**: ``recommend_to_file`` for every user of the run (2,999) to Parquet in a child
   process, ``--repeats`` times: users/s (best and median) and the child's peak RSS
   (``VmHWM``); once more through the CLI (``auxrec recommend RUN --out``), end to end.
6. **Memory**: the service process's peak RSS (``VmHWM`` in ``/proc/PID/status``).

Prints a table and writes everything to JSON (``--out``). Exits with status 1 when the
malformed-request check fails. Bounded: every phase has a time limit.

    .venv/bin/python benchmarks/serve_load.py --out benchmarks/results/serve_load-ml-1m.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
AUXREC = Path(sys.executable).parent / "auxrec"
CONCURRENCY = (1, 8, 64)
TARGETS = {"p99_ms_at_8": 50.0, "requests_per_s_at_64": 300.0, "batch_users_per_s": 2000.0}


# -- setup ----------------------------------------------------------------------------------------
def run_command(command: list[str], log: Path, timeout: float) -> float:
    started = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout, cwd=REPO)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}); see {log}")
    return time.perf_counter() - started


def ensure_run(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The prepared ML-1M subset and a 1-epoch SASRec+ run in the work folder (reused when present)."""
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    prepared = workdir / "prepared-ml-1m"
    run = workdir / "runs" / f"sasrec-plus-len{args.max_len}-epochs{args.epochs}"
    setup: dict[str, Any] = {"prepared": str(prepared), "run": str(run), "reused_prepared": True, "reused_run": True}
    if not (prepared / "manifest.json").is_file():
        setup["reused_prepared"] = False
        setup["prepare_s"] = run_command(
            [str(AUXREC), "prepare", "ml-1m", "--source", str(Path(args.source).resolve()), "--out", str(prepared),
             "--overwrite"], workdir / "prepare.log", 600)
    if not (run / "metrics.json").is_file():
        setup["reused_run"] = False
        print(f"training {run.name} (1 epoch at length {args.max_len}; a few minutes on 2 cores) ...", flush=True)
        setup["train_s"] = run_command(
            [str(AUXREC), "train", "sasrec", "--data", str(prepared), "--out", str(run), "--aux", args.aux,
             "--max-len", str(args.max_len), "--epochs", str(args.epochs), "--no-progress", "--overwrite"],
            workdir / "train.log", 1800)
    return run, setup


# -- the service ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            found[key] = int(value.split()[0])
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Service:
    def __init__(self, run: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "serve.log"
        self.process = subprocess.Popen([str(AUXREC), "serve", str(run), "--port", str(self.port)], cwd=REPO,
                                        stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float = 120) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                sys.exit(f"auxrec serve exited with {self.process.returncode}; see {self.log}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        sys.exit(f"auxrec serve did not answer /health within {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- load -----------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client for POST /recommend: far less client CPU than httpx.

    On 2 cores the load generator shares the CPUs with the server; httpx's async client spent
    ~10 ms of CPU per request at 64 connections (more than the server), so it measured itself.
    This one writes a fixed request and reads the status line, headers and Content-Length body.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                       if line.lower().startswith(b"content-length:")), None)
        if length is None:  # every answer of this API has a Content-Length; anything else ends the connection
            data = await self.reader.read()
            await self.close()
            return status, data
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def load_phase(url: str, port: int, bodies: list[bytes], concurrency: int, max_requests: int,
                     max_seconds: float, server_pid: int, client: str) -> dict[str, Any]:
    """Closed loop: ``concurrency`` clients, each sending its next request when answered."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    issued = 0
    if client == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        pool = httpx.AsyncClient(base_url=url, limits=limits, timeout=60)
        headers = {"content-type": "application/json"}

        async def post_httpx(connection: Any, body: bytes) -> int:
            return (await pool.post("/recommend", content=body, headers=headers)).status_code
        connections: list[Any] = [None] * concurrency
        post = post_httpx
    else:
        connections = [RawConnection(port) for _ in range(concurrency)]

        async def post_raw(connection: Any, body: bytes) -> int:
            return (await connection.post("/recommend", body))[0]
        post = post_raw
    try:
        # open and warm the connections (and the server) before the clock starts
        await asyncio.gather(*(post(c, bodies[i % len(bodies)]) for i, c in enumerate(connections)))
        deadline = time.perf_counter() + max_seconds

        async def worker(connection: Any) -> None:
            nonlocal issued
            while issued < max_requests and time.perf_counter() < deadline:
                body = bodies[issued % len(bodies)]
                issued += 1
                sent = time.perf_counter()
                status = await post(connection, body)
                latencies.append(time.perf_counter() - sent)
                statuses[status] += 1

        server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        elapsed = time.perf_counter() - started
        server_cpu, client_cpu = cpu_seconds(server_pid) - server_cpu, time.process_time() - client_cpu
    finally:
        if client == "httpx":
            await pool.aclose()
        else:
            for connection in connections:
                await connection.close()
    ms = [1000 * s for s in latencies]
    return {"clients": concurrency, "client": client, "requests": len(latencies), "seconds": round(elapsed, 3),
            "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(max(ms), 2), "mean_ms": round(statistics.mean(ms), 2),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "server_cpu_ms_per_request": round(1000 * server_cpu / len(latencies), 2),
            "client_cpu_ms_per_request": round(1000 * client_cpu / len(latencies), 2)}


def request_bodies(users: list[str], histories: list[list[str]], mix: str, n: int, rng: random.Random) -> list[bytes]:
    bodies = []
    for _ in range(n):
        if mix == "mixed" and rng.random() < 0.5:
            history = rng.choice(histories)
            body: dict[str, Any] = {"history": history[-rng.randint(1, 50):], "k": 10}
        else:
            body = {"user": rng.choice(users), "k": 10}
        bodies.append(json.dumps(body).encode())
    return bodies


def fetch_catalogue(url: str, rng: random.Random, n_histories: int = 200) -> tuple[list[str], list[list[str]]]:
    """Every user id (``GET /users``, paged) and the recent items of a sample of them."""
    users: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        while True:
            page = client.get("/users", params={"offset": len(users), "limit": 500}).json()
            users += [u["id"] for u in page["users"]]
            if not page["users"] or len(users) >= page["total"]:
                break
        histories = []
        for user in rng.sample(users, min(n_histories, len(users))):
            items = client.get(f"/users/{user}/history", params={"limit": 50}).json()["items"]
            histories.append([i["id"] for i in items])
    return users, histories


# -- malformed requests ---------------------------------------------------------------------------
def malformed_case(rng: random.Random, users: list[str], items: list[str]) -> tuple[str, dict[str, Any]]:
    """One random bad request: (kind, httpx request arguments) or (kind, {"raw": bytes}) for the socket."""
    json_type = {"content-type": "application/json"}
    user = rng.choice(users)

    def post(body: Any) -> dict[str, Any]:
        return {"method": "POST", "url": "/recommend", "content": json.dumps(body).encode(), "headers": json_type}

    def post_bytes(content: bytes, headers: dict[str, str] | None = None) -> dict[str, Any]:
        return {"method": "POST", "url": "/recommend", "content": content, "headers": headers or json_type}

    kinds: list[tuple[str, Any]] = [
        ("truncated json", lambda: post_bytes(b'{"user": "%s", "k": 1' % user.encode())),
        ("not an object", lambda: post(rng.choice([[1, 2], "x", None, 42, True, []]))),
        ("empty body", lambda: post_bytes(b"")),
        ("random bytes", lambda: post_bytes(rng.randbytes(rng.randint(1, 2000)))),
        ("invalid utf-8", lambda: post_bytes(b'{"user": "\xff\xfe"}')),
        ("user wrong type", lambda: post({"user": rng.choice([[user], {"id": user}, True, 1.5, None])})),
        ("k wrong type", lambda: post({"user": user, "k": rng.choice(["10", 1.5, True, None, [10], {}])})),
        ("k out of range", lambda: post({"user": user, "k": rng.choice([0, -1, 1001, 10**6, 10**30, -10**30])})),
        ("k NaN/Infinity", lambda: post_bytes(b'{"user": "%s", "k": %s}' % (user.encode(),
                                                                            rng.choice([b"NaN", b"Infinity"])))),
        ("exclude_seen wrong type", lambda: post({"user": user, "exclude_seen": rng.choice(["yes", 1, None])})),
        ("unknown user", lambda: post({"user": rng.choice(["no-such-user", "-1", "0", "../../etc/passwd",
                                                           "ü" * 50, "x" * 100_000, ""])})),
        ("unknown items only", lambda: post({"history": [f"nope-{rng.random()}" for _ in range(rng.randint(1, 20))]})),
        ("history too long", lambda: post({"history": [rng.choice(items) for _ in range(10_001)]})),
        ("history empty", lambda: post({"history": []})),
        ("history wrong type", lambda: post({"history": rng.choice([items[0], {"a": 1}, [[items[0]]], [None],
                                                                     [1.5], [True]])})),
        ("user and history", lambda: post({"user": user, "history": [items[0]]})),
        ("neither", lambda: post({"k": 10})),
        ("unknown field", lambda: post({"user": user, "kk": 10})),
        ("unknown candidate", lambda: post({"user": user, "candidates": [items[0], "no-such-item"]})),
        ("candidates empty", lambda: post({"user": user, "candidates": []})),
        ("candidates too many", lambda: post({"user": user, "candidates": ["1"] * 100_001})),
        ("duplicate keys", lambda: post_bytes(b'{"user": "%s", "user": 5, "k": 2000}' % user.encode())),
        ("deep nesting", lambda: post_bytes(b'{"user": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")),
        ("wrong content type", lambda: post_bytes(json.dumps({"user": user}).encode(),
                                                  {"content-type": rng.choice(["text/plain", "application/xml",
                                                                               "multipart/form-data"])})),
        ("form encoded", lambda: {"method": "POST", "url": "/recommend", "data": {"user": user, "k": "3"}}),
        ("wrong method", lambda: {"method": rng.choice(["GET", "PUT", "DELETE", "PATCH"]), "url": "/recommend"}),
        ("unknown path", lambda: {"method": "GET", "url": rng.choice(["/nope", "/recommend/1", "/items/",
                                                                      "/%00", "/users/%2e%2e/history"])}),
        ("bad query", lambda: {"method": "GET", "url": rng.choice([
            "/users?limit=-1", "/users?limit=abc", "/users?offset=-5", "/items?limit=100000",
            "/similar/1?k=0", "/similar/1?k=abc", "/users/1/history?limit=0", f"/items?q={'x' * 500}"])}),
        ("unknown item pages", lambda: {"method": "GET", "url": rng.choice([
            "/items/no-such-item", "/items/no-such-item/image", "/similar/no-such-item",
            "/users/no-such-user/history"])}),
        ("raw garbage", lambda: {"raw": rng.choice([rng.randbytes(200), b"HELLO\r\n\r\n",
                                                    b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                                                    b"GET / HTTP/9.9\r\n\r\n",
                                                    b"GET /health HTTP/1.1\r\n" + b"X: " + b"a" * 100_000 + b"\r\n\r\n"])}),
    ]
    kind, make = rng.choice(kinds)
    return kind, make()


async def raw_exchange(port: int, payload: bytes) -> int | str:
    """Send bytes that are not a proper HTTP request; the status line's code, or how the connection ended."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        writer.write(payload)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 3)
        parts = line.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else "closed without answer"
    except asyncio.TimeoutError:
        return "no answer in 3 s (waits for the rest of the request)"
    except (ConnectionError, OSError) as error:
        return f"closed ({type(error).__name__})"
    finally:
        if writer is not None:
            writer.close()


async def malformed_phase(url: str, port: int, users: list[str], items: list[str], n: int,
                          rng: random.Random) -> dict[str, Any]:
    cases = [malformed_case(rng, users, items) for _ in range(n)]
    good = [{"method": "POST", "url": "/recommend", "content": json.dumps({"user": rng.choice(users), "k": 10}).encode(),
             "headers": {"content-type": "application/json"}} for _ in range(n)]
    interleaved = [x for pair in zip((("good", g) for g in good), cases) for x in pair]
    by_kind: dict[str, Counter[str]] = {}
    bad_statuses: Counter[str] = Counter()
    good_statuses: Counter[str] = Counter()
    queue = list(reversed(interleaved))
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def worker() -> None:
            while queue:
                kind, request = queue.pop()
                if "raw" in request:
                    status: int | str = await raw_exchange(port, request["raw"])
                else:
                    try:
                        status = (await client.request(**request)).status_code
                    except httpx.HTTPError as error:
                        status = f"error ({type(error).__name__})"
                if kind == "good":
                    good_statuses[str(status)] += 1
                else:
                    bad_statuses[str(status)] += 1
                    by_kind.setdefault(kind, Counter())[str(status)] += 1

        await asyncio.gather(*(worker() for _ in range(8)))
    elapsed = time.perf_counter() - started
    five_xx = sum(v for k, v in bad_statuses.items() if k.startswith("5")) + \
        sum(v for k, v in good_statuses.items() if k.startswith("5"))
    return {"malformed": n, "good": n, "seconds": round(elapsed, 1),
            "malformed_statuses": dict(sorted(bad_statuses.items())), "good_statuses": dict(sorted(good_statuses.items())),
            "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())}, "n_5xx": five_xx}


# -- batch ----------------------------------------------------------------------------------------
BATCH_CHILD = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from auxrec.serving import load_run
from auxrec.serving.batch import recommend_to_file
model = load_run(sys.argv[1])
load_s = time.perf_counter() - started
runs = []
for _ in range(int(sys.argv[3])):
    summary = recommend_to_file(model, Path(sys.argv[2]), k=10, overwrite=True, progress=False)
    runs.append({"users": summary.users, "rows": summary.rows, "seconds": round(summary.seconds, 3),
                 "users_per_s": round(summary.users_per_second, 1)})
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
print(json.dumps({"load_s": round(load_s, 2), "runs": runs, "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024}))
"""


def batch_phase(run: Path, workdir: Path, repeats: int) -> dict[str, Any]:
    out = workdir / "batch-recommendations.parquet"
    done = subprocess.run([sys.executable, "-c", BATCH_CHILD, str(run), str(out), str(repeats)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    if done.returncode:
        sys.exit(f"batch child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rates = [r["users_per_s"] for r in result["runs"]]
    result.update(best_users_per_s=max(rates), median_users_per_s=statistics.median(rates))
    started = time.perf_counter()
    cli = subprocess.run([str(AUXREC), "recommend", str(run), "--out", str(workdir / "batch-cli.parquet"),
                          "--overwrite"], cwd=REPO, capture_output=True, text=True, timeout=600)
    result["cli_end_to_end_s"] = round(time.perf_counter() - started, 2)
    result["cli_returncode"] = cli.returncode
    return result


# -- report ---------------------------------------------------------------------------------------
def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [c["requests_per_s"] for c in cells]
    return {"clients": cells[0]["clients"], "repeats": len(cells),
            "median_requests_per_s": round(statistics.median(rates), 1), "best_requests_per_s": max(rates),
            "worst_requests_per_s": min(rates),
            **{f"median_{p}": round(statistics.median(c[p] for c in cells), 2) for p in ("p50_ms", "p95_ms", "p99_ms")},
            "best_p99_ms": min(c["p99_ms"] for c in cells), "worst_p99_ms": max(c["p99_ms"] for c in cells),
            "non_200": sum(v for c in cells for k, v in c["statuses"].items() if k != "200")}


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    import torch

    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gb": round(memory / 2**20, 1), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "httpx": httpx.__version__,
            "platform": platform.platform()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/auxrec-serve-bench")
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "ml-1m"))
    parser.add_argument("--aux", default="text,image,tabular")
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--run", help="serve this run folder instead of preparing and training one")
    parser.add_argument("--clients", default=",".join(map(str, CONCURRENCY)), help="comma-separated concurrencies")
    parser.add_argument("--mixes", default="user,mixed", help="user (known users) and/or mixed (half histories)")
    parser.add_argument("--requests", type=int, default=2000, help="per cell, at most")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="per cell, at most")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load client: raw asyncio HTTP/1.1 (light) or httpx.AsyncClient")
    parser.add_argument("--malformed", type=int, default=1000)
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="JSON results (default WORKDIR/serve_load.json)")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    results: dict[str, Any] = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "settings": vars(args),
                               "machine": machine(), "load_average_before": os.getloadavg(), "targets": TARGETS,
                               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if args.run:
        run, results["setup"] = Path(args.run), {"run": args.run}
    else:
        run, results["setup"] = ensure_run(args)
    results["run_config"] = {k: v for k, v in json.loads((run / "config.json").read_text()).items()
                             if k in {"model", "model_config", "item_features"}}

    service = Service(run, workdir)
    try:
        results["service_start_s"] = round(service.wait(), 2)
        health = httpx.get(f"{service.url}/health").json()
        results["health"] = health
        results["service_rss_after_start_mb"] = proc_status(service.process.pid)["VmRSS"] / 1024
        users, histories = fetch_catalogue(service.url, rng)
        items = sorted({i for h in histories for i in h})
        print(f"serving {health['model']}: {health['users']:,} users, {health['items']:,} items "
              f"(pid {service.process.pid}, port {service.port})", flush=True)

        cells: dict[str, list[dict[str, Any]]] = {}
        for repeat in range(args.repeats):
            for mix in args.mixes.split(","):
                for clients in map(int, args.clients.split(",")):
                    bodies = request_bodies(users, histories, mix, 5000, rng)
                    cell = asyncio.run(load_phase(service.url, service.port, bodies, clients, args.requests,
                                                  args.max_seconds, service.process.pid, args.client))
                    cell.update(mix=mix, repeat=repeat, load_average=os.getloadavg()[0])
                    cells.setdefault(f"{mix}@{clients}", []).append(cell)
                    print(f"  {mix:6s} {clients:3d} clients (repeat {repeat + 1}): {cell['requests_per_s']:8.1f} req/s "
                          f"p50 {cell['p50_ms']:6.1f} ms  p99 {cell['p99_ms']:6.1f} ms  {cell['statuses']}", flush=True)
        results["load_cells"] = [c for group in cells.values() for c in group]
        results["load"] = {key: summarise(group) for key, group in cells.items()}

        if args.malformed > 0:
            print(f"  {args.malformed} malformed requests interleaved with good ones ...", flush=True)
            malformed = asyncio.run(malformed_phase(service.url, service.port, users, items, args.malformed, rng))
            after = httpx.get(f"{service.url}/health", timeout=10)
            malformed.update(health_after=after.status_code, service_alive=service.process.poll() is None)
            malformed["passed"] = (malformed["n_5xx"] == 0 and malformed["health_after"] == 200
                                   and malformed["service_alive"] and set(malformed["good_statuses"]) == {"200"})
            results["malformed"] = malformed
        results["service_memory_mb"] = {k: v / 1024 for k, v in proc_status(service.process.pid).items()}
    finally:
        service.stop()

    if not args.skip_batch:
        print("  batch recommend for every user ...", flush=True)
        results["batch"] = batch_phase(run, workdir, args.repeats)
    results["total_s"] = round(time.perf_counter() - started, 1)
    out = Path(args.out) if args.out else workdir / "serve_load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nJSON: {out}")
    return 0 if results.get("malformed", {"passed": True})["passed"] else 1


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{results['health']['model']} on ML-1M subset ({results['health']['users']:,} users, "
          f"{results['health']['items']:,} items), {results['machine']['cpus']} CPUs")
    print(f"{'mix':7s} {'clients':>7s} {'req/s med':>10s} {'req/s best':>10s} {'p50 ms':>7s} {'p95 ms':>7s} "
          f"{'p99 ms':>7s} {'p99 range':>14s} {'non-200':>7s}")
    for key, row in results["load"].items():
        mix = key.split("@")[0]
        print(f"{mix:7s} {row['clients']:7d} {row['median_requests_per_s']:10.1f} {row['best_requests_per_s']:10.1f} "
              f"{row['median_p50_ms']:7.1f} {row['median_p95_ms']:7.1f} {row['median_p99_ms']:7.1f} "
              f"{row['best_p99_ms']:6.1f}-{row['worst_p99_ms']:<7.1f} {row['non_200']:7d}")
    m = results.get("malformed")
    if m:
        print(f"malformed: {m['malformed']} bad + {m['good']} good requests: bad -> {m['malformed_statuses']}, "
              f"good -> {m['good_statuses']}, 5xx: {m['n_5xx']}, /health after: {m['health_after']}, "
              f"alive: {m['service_alive']} -> {'PASS' if m['passed'] else 'FAIL'}")
    memory = results["service_memory_mb"]
    print(f"service memory: peak RSS {memory['VmHWM']:.0f} MB (now {memory['VmRSS']:.0f} MB; "
          f"{results['service_rss_after_start_mb']:.0f} MB after start)")
    if "batch" in results:
        b = results["batch"]
        print(f"batch recommend, {b['runs'][0]['users']:,} users: best {b['best_users_per_s']:,.0f} users/s, median "
              f"{b['median_users_per_s']:,.0f} ({', '.join(str(r['seconds']) + ' s' for r in b['runs'])}); "
              f"peak RSS {b['peak_rss_mb']:.0f} MB; load {b['load_s']} s; CLI end to end {b['cli_end_to_end_s']} s")
    load = results["load"]
    checks = []
    if "user@8" in load:
        checks.append(f"p99 at 8 clients {load['user@8']['median_p99_ms']:.1f} ms (target <= 50)")
    if "user@64" in load:
        checks.append(f"{load['user@64']['median_requests_per_s']:.0f} req/s at 64 clients (target >= 300)")
    if "batch" in results:
        checks.append(f"batch {results['batch']['best_users_per_s']:,.0f} users/s (target >= 2,000)")
    print("targets: " + "; ".join(checks))


if __name__ == "__main__":
    sys.exit(main())
