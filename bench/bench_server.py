"""Server benchmarks, each against a bare Starlette endpoint that parses the same JSON, in the same run.

(a) single progress updates: POST /api/migrations/{id}/phases/{phase}/progress (token checked,
    every request a durable write to the embedded SQLite store) against the bare endpoint, with
    1, 16 and 64 concurrent keep-alive clients: requests/s, p50 and p99 latency — target at
    least 0.5x the bare endpoint's requests/s; the same app on memory:// shows what the web
    layer costs without the store;
(b) progress updates per second through the remote SDK's batches (RemoteBackend.apply_updates,
    100 updates a request, 16 threads; every update applied to the store) — target at least
    3x the bare endpoint's requests/s — once with 100 reports on one phase (folded into one
    write by the service), once with 100 different sub-tasks (a write each); and the tracker's
    own loop with coalescing on;
(c) the event stream with 500 connected clients: time from posting an update to the last
    client receiving it.

Servers run as separate processes under uvicorn (uvloop + httptools); the load comes from one
asyncio process on raw keep-alive connections, so the client costs little.

Run: .venv/bin/python bench/bench_server.py [--seconds 3] [--sse-clients 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from migratrack.core.commands import StartPhase, StartSubTask

BODY = b'{"add":1}'


# -- the servers ------------------------------------------------------------------------------

def bare_app() -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def progress(request: Request) -> JSONResponse:
        body = await request.json()
        if not isinstance(body, dict):
            return JSONResponse({"detail": "bad"}, status_code=422)
        return JSONResponse({"control": "running"})

    return Starlette(routes=[Route("/progress", progress, methods=["POST"])])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


@contextmanager
def run_server(args: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(port, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def memory_server(port: int, token: str, request_metrics: bool = True) -> None:
    """The migratrack app on memory:// (no store cost): what the web layer itself costs;
    ``request_metrics=False`` takes the request-counting middleware (/metrics) out, for (d)."""
    from datetime import UTC, datetime

    import uvicorn

    from migratrack.storage.base import TokenRecord
    from migratrack.web import create_app
    from migratrack.web.auth import hash_token

    app = create_app("memory://")
    if not request_metrics:
        from migratrack.metrics.prometheus import RequestMetrics
        from migratrack.web.requestid import RequestContext

        app.user_middleware = [m for m in app.user_middleware if m.cls not in (RequestMetrics, RequestContext)]
    app.state.storage.save_token(TokenRecord(id="bench", name="bench", role="operator",
                                             token_hash=hash_token(token), created_at=datetime.now(UTC)))
    app.state.service.initialize("bench", [{"id": "copy"}], actor="bench")
    app.state.service.execute("bench", StartPhase("copy"), actor="bench")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", loop="uvloop", http="httptools")


# -- a lean HTTP/1.1 load generator ---------------------------------------------------------------

async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


def raw_post(path: str, body: bytes, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{auth}\r\n").encode() + body


async def _load(port: int, raw: bytes, clients: int, seconds: float) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = 0
    stop = 0.0

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status = await _request(reader, writer, raw)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors += 1
        writer.close()

    stop = time.perf_counter() + 0.5  # warm-up
    await asyncio.gather(*(client() for _ in range(clients)))
    latencies.clear()
    stop = time.perf_counter() + seconds
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(latencies), latencies, errors if time.perf_counter() - t0 else 0


def load(port: int, raw: bytes, clients: int, seconds: float) -> dict[str, float]:
    import uvloop

    n, lat, errors = uvloop.run(_load(port, raw, clients, seconds))
    if errors:
        raise RuntimeError(f"{errors} requests failed")
    lat.sort()
    return {"rps": n / seconds, "p50_ms": lat[len(lat) // 2] * 1000, "p99_ms": lat[int(len(lat) * 0.99)] * 1000}


# -- (c) the event stream ---------------------------------------------------------------------------

async def _sse_fanout(port: int, path: str, token: str, clients: int, rounds: int, post: Callable[[int], None]
                      ) -> list[float]:
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(clients):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n".encode())
        conns.append((reader, writer))
    for reader, _ in conns:
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
    await asyncio.sleep(1.0)  # every stream caught up and idle

    async def wait_for(reader: asyncio.StreamReader, marker: bytes) -> float:
        buf = b""
        while marker not in buf:
            buf += await reader.read(65536)
        return time.perf_counter()

    spans = []
    for i in range(rounds):
        marker = f'"progress":{10 + i}'.encode()
        waiters = [asyncio.create_task(wait_for(r, marker)) for r, _ in conns]
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()
        await asyncio.to_thread(post, 10 + i)
        done = await asyncio.gather(*waiters)
        spans.append(max(done) - t0)
    for _, w in conns:
        w.close()
    return spans


# -- the benchmark ----------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--sse-clients", type=int, default=500)
    ap.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--memory-server", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--middleware-only", action="store_true", help="run (d) alone")
    args = ap.parse_args()
    if args.bare_server:
        import uvicorn

        uvicorn.run(bare_app(), host="127.0.0.1", port=args.bare_server, log_level="warning", access_log=False,
                    loop="uvloop", http="httptools")
        return
    if args.memory_server:
        memory_server(int(args.memory_server[0]), args.memory_server[1], request_metrics=len(args.memory_server) == 2)
        return
    if args.middleware_only:
        request_metrics_cost(args.seconds)
        return

    import httpx

    from migratrack.sdk.remote import RemoteBackend
    from migratrack.service import MigrationService, ProgressUpdate
    from migratrack.storage import open_storage
    from migratrack.web.auth import TokenManager

    tmp = Path(tempfile.mkdtemp(prefix="mt-bench-"))
    db = f"sqlite:///{tmp}/bench.db"
    store = open_storage(db)
    token, _ = TokenManager(store).create("bench", "operator")
    svc = MigrationService(store)
    subs = [f"s{i}-{k}" for i in range(16) for k in range(100)]
    svc.initialize("bench", [{"id": "copy"}, {"id": "batch"}, {"id": "sdk"}, {"id": "sse"},
                             {"id": "subs", "sub_tasks": subs}], actor="bench")
    for p in ("copy", "batch", "sdk", "sse", "subs"):
        svc.execute("bench", StartPhase(p), actor="bench")
    for s in subs:
        svc.execute("bench", StartSubTask("subs", s), actor="bench")
    store.close()

    bare_port, mt_port, mem_port = free_port(), free_port(), free_port()
    mem_cmd = [sys.executable, __file__, "--memory-server", str(mem_port), token]
    bare_cmd = [sys.executable, __file__, "--bare-server", str(bare_port)]
    mt_cmd = [sys.executable, "-m", "migratrack.cli", "serve", "--port", str(mt_port), "--storage", db,
              "--log-level", "warning"]
    env_note = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    print(f"# bench_server: {env_note}; {args.seconds:.0f} s per point; store {db.split('/')[-1]} (SQLite)")

    results: dict[str, dict[int, dict[str, float]]] = {"bare": {}, "migratrack": {}, "memory": {}}
    with run_server(bare_cmd, bare_port), run_server(mt_cmd, mt_port), run_server(mem_cmd, mem_port):
        for clients in (1, 16, 64):
            # interleaved, best of two: the machine is shared, so each side gets its quietest slot
            for _ in range(2):
                progress = raw_post("/api/migrations/bench/phases/copy/progress", BODY, token)
                for name, port, raw in (("bare", bare_port, raw_post("/progress", BODY, None)),
                                        ("migratrack", mt_port, progress), ("memory", mem_port, progress)):
                    r = load(port, raw, clients, args.seconds)
                    if clients not in results[name] or r["rps"] > results[name][clients]["rps"]:
                        results[name][clients] = r
        print("\n(a) single progress update per request")
        print("| clients | bare Starlette req/s | p50 ms | p99 ms | migratrack (SQLite) req/s | p50 ms | p99 ms | "
              "ratio | migratrack (memory://) req/s | ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for c in (1, 16, 64):
            b, m, mem = results["bare"][c], results["migratrack"][c], results["memory"][c]
            print(f"| {c} | {b['rps']:,.0f} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | {m['rps']:,.0f} | "
                  f"{m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['rps'] / b['rps']:.2f}x | {mem['rps']:,.0f} | "
                  f"{mem['rps'] / b['rps']:.2f}x |")
        best_bare = max(r["rps"] for r in results["bare"].values())

        # (b) the remote SDK's batches
        url = f"http://127.0.0.1:{mt_port}"
        threads, per_batch = 16, 100
        sent = [0] * threads
        stop = time.perf_counter() + args.seconds

        def worker(i: int) -> None:
            remote = RemoteBackend(url, token=token, strict=True)
            updates = [ProgressUpdate(phase="batch", add=1) for _ in range(per_batch)]
            while time.perf_counter() < stop:
                remote.apply_updates("bench", updates, actor=f"w{i}")
                sent[i] += per_batch
            remote.close()

        t0 = time.perf_counter()
        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - t0
        check = open_storage(db)
        applied = check.load("bench", sub_tasks=None).phases["batch"].done
        batch_rate = applied / elapsed
        assert applied == sum(sent), (applied, sum(sent))

        # (b2) the same with 100 different sub-tasks in each batch: nothing to fold, a write each
        sent = [0] * threads
        stop = time.perf_counter() + args.seconds

        def sub_worker(i: int) -> None:
            remote = RemoteBackend(url, token=token, strict=True)
            rounds = 0
            while time.perf_counter() < stop and rounds < 990:
                rounds += 1
                remote.apply_updates("bench", [ProgressUpdate(phase="subs", sub_task=f"s{i}-{k}",
                                                              progress=rounds / 10) for k in range(per_batch)],
                                     actor=f"w{i}")
                sent[i] += per_batch
            remote.close()

        t0 = time.perf_counter()
        pool = [threading.Thread(target=sub_worker, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        sub_rate = sum(sent) / (time.perf_counter() - t0)
        reached = {s.id: s.progress for s in check.load("bench", sub_tasks="subs").phases["subs"].sub_tasks.values()}
        assert all(reached[f"s{i}-{k}"] == sent[i] / per_batch / 10 for i in range(threads) for k in range(per_batch))

        from migratrack import MigrationProgressTracker

        tracker = MigrationProgressTracker("bench", url=url, token=token)
        calls = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            for _ in range(1000):
                tracker.add_progress("sdk")
            calls += 1000
        tracker.close()
        sdk_elapsed = time.perf_counter() - t0
        sdk_done = check.load("bench", sub_tasks=None).phases["sdk"].done
        assert sdk_done == calls, (sdk_done, calls)
        print("\n(b) progress updates through the remote SDK")
        print(f"RemoteBackend batches ({threads} threads x {per_batch} updates/request): "
              f"{batch_rate:,.0f} updates/s applied = {batch_rate / best_bare:.2f}x the bare endpoint's best "
              f"{best_bare:,.0f} req/s")
        print(f"RemoteBackend batches of 100 different sub-tasks ({threads} threads): {sub_rate:,.0f} updates/s "
              f"applied = {sub_rate / best_bare:.2f}x")
        print(f"tracker.add_progress() loop, coalescing on (one thread): {calls / sdk_elapsed:,.0f} updates/s, "
              f"all {calls:,} in the store")

        # (c) the event stream
        def post(progress: int) -> None:
            r = httpx.post(f"{url}/api/migrations/bench/phases/sse/progress", json={"progress": progress},
                           headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()

        import uvloop

        after = check.load("bench", sub_tasks=None).seq
        check.close()
        spans = uvloop.run(_sse_fanout(mt_port, f"/api/migrations/bench/events?after={after}", token,
                                       args.sse_clients, 5, post))
        print(f"\n(c) event stream, {args.sse_clients} clients: update posted -> last client has it: "
              f"median {statistics.median(spans) * 1000:.0f} ms, max {max(spans) * 1000:.0f} ms over {len(spans)} "
              f"updates")

        request_metrics_cost(args.seconds)


def request_metrics_cost(seconds: float) -> None:
    """(d) what the request-counting and request-id middleware cost on the hot progress route:
    the same memory:// app with and without it, 1 and 16 clients, interleaved, best of three."""
    token = "mt_bench"
    with_port, without_port = free_port(), free_port()
    with_cmd = [sys.executable, __file__, "--memory-server", str(with_port), token]
    without_cmd = [sys.executable, __file__, "--memory-server", str(without_port), token, "no-request-metrics"]
    raw = raw_post("/api/migrations/bench/phases/copy/progress", BODY, token)
    best: dict[tuple[str, int], dict[str, float]] = {}
    with run_server(with_cmd, with_port), run_server(without_cmd, without_port):
        for clients in (1, 16):
            for _ in range(3):
                for name, port in (("without", without_port), ("with", with_port)):
                    r = load(port, raw, clients, seconds)
                    if (name, clients) not in best or r["rps"] > best[(name, clients)]["rps"]:
                        best[(name, clients)] = r
    print("\n(d) request metrics middleware on POST .../progress (memory://)")
    print("| clients | without req/s | p50 ms | with req/s | p50 ms | ratio |")
    print("|---|---|---|---|---|---|")
    for c in (1, 16):
        a, b = best[("without", c)], best[("with", c)]
        print(f"| {c} | {a['rps']:,.0f} | {a['p50_ms']:.2f} | {b['rps']:,.0f} | {b['p50_ms']:.2f} | "
              f"{b['rps'] / a['rps']:.2f}x |")


if __name__ == "__main__":
    main()
