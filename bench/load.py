"""Load test: many workers and many viewers on one migration, through two `migratrack serve`
processes on one shared store (Redis or PostgreSQL).

    python bench/load.py --store redis --workers 200 --viewers 100 --seconds 120 --processes 4

The set-up (issue 10): one migration of ``--phases`` x ``--sub-tasks`` (20 x 5,000); W simulated
workers, asyncio tasks spread over ``--processes`` processes, each with its own
:class:`~migratrack.sdk.async_tracker.AsyncMigrationProgressTracker` in remote mode
(``url=..., token=...``, coalescing off, so every SDK call is one HTTP request), half of them
on each server. A worker works through its own sub-tasks: start, progress 50 %, complete (every
25th is skipped, never started), and a counter increment (``record(succeeded=1, bytes=n)``). V viewers,
in processes of their own, follow ``GET /api/migrations/{id}/events`` (half on each server).

It reports updates/s (SDK calls answered per second), the p50/p99 of report latency (the time of
the awaited SDK call: one HTTP round trip plus the hop to the SDK's thread), the p50/p99 of the
stream's delay to viewers (arrival time minus the event's ``ts``, every 10th event of each
viewer), the servers' CPU and memory (psutil, sampled each second), and then checks that nothing
was lost: counters and per-status sub-task counts exact against what the workers sent, every
touched sub-task in the status last reported, the event log gap-free, and every viewer saw every
event, in order, with no gap. The exit status is 1 if any check fails.

The store is a key prefix of its own on Redis (``MIGRATRACK_TEST_REDIS_URL``, default DB 13 on
127.0.0.1) or a database of its own on PostgreSQL (``MIGRATRACK_TEST_POSTGRES_URL``), created
and removed by the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import queue
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
SRC = str(ROOT / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

REDIS_URL = os.environ.get("MIGRATRACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
POSTGRES_URL = os.environ.get("MIGRATRACK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MID = "load"
SKIP_EVERY = 25  # every 25th sub-task is skipped instead of completed: more than one final status
DELAY_EVERY = 10  # viewers keep the stream delay of every 10th event (all are checked for gaps)


@dataclass(frozen=True)
class Config:
    store: str = "redis"
    workers: int = 200
    viewers: int = 100
    seconds: float = 120.0
    processes: int = 4
    phases: int = 20
    sub_tasks: int = 5000
    #: how long viewers may take, after the workers stop, to receive the last event
    drain_seconds: float = 60.0


@dataclass
class Result:
    config: Config
    updates: int = 0
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    report_latency: list[float] = field(default_factory=list)
    by_call: dict[str, list[float]] = field(default_factory=dict)  # the same, per SDK method
    stream_delay: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)  # percent of one core, both servers summed
    server_rss: list[int] = field(default_factory=list)  # bytes, both servers summed
    client_cpu: list[float] = field(default_factory=list)  # percent of one core, worker + viewer processes
    events: int = 0
    viewer_events: int = 0
    checks: dict[str, bool] = field(default_factory=dict)
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    @property
    def rate(self) -> float:
        return self.updates / self.elapsed if self.elapsed else 0.0


# -- the store, the servers ----------------------------------------------------------------

@contextmanager
def shared_store(kind: str) -> Iterator[str]:
    """A store of the run's own on the shared server, removed afterwards."""
    tag = f"mtload_{uuid.uuid4().hex[:8]}"
    if kind == "redis":
        import redis

        sep = "&" if "?" in REDIS_URL else "?"
        try:
            yield f"{REDIS_URL}{sep}prefix={tag}"
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{tag}:*", count=1000))
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i:i + 1000])
            client.close()
    elif kind == "postgresql":
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'CREATE DATABASE "{tag}"')
        parts = urlsplit(POSTGRES_URL)
        try:
            yield urlunsplit((parts.scheme, parts.netloc, "/" + tag, parts.query, ""))
        finally:
            with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=10) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{tag}" WITH (FORCE)')
    else:
        raise SystemExit(f"--store must be redis or postgresql, got {kind!r}")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "migratrack.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200", "MIGRATRACK_LOG_LEVEL": "warning"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(url: str, n: int = 2) -> Iterator[list[tuple[str, int]]]:
    """n `migratrack serve --storage URL` processes on free ports, started side by side; yields
    their base URLs and pids."""
    ports = [_free_port() for _ in range(n)]
    procs = [subprocess.Popen(_cli("serve", "--port", str(port), "--storage", url, "--log-level", "warning"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env()) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 60
        for base, proc in zip(bases, procs, strict=True):
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"migratrack serve at {base} did not start")
                time.sleep(0.1)
        yield [(base, proc.pid) for base, proc in zip(bases, procs, strict=True)]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def admin_token(url: str) -> str:
    out = subprocess.run(_cli("token", "create", "--role", "admin", "--name", "load", "--storage", url),
                         capture_output=True, text=True, env=_env(), check=True)
    return out.stdout.strip().splitlines()[-1]


def set_up(url: str, cfg: Config) -> int:
    """The migration, every phase started (the workers report sub-tasks); returns its last seq."""
    from migratrack.core.commands import StartPhase
    from migratrack.service import MigrationService
    from migratrack.storage import open_storage

    store = open_storage(url)
    try:
        svc = MigrationService(store)
        plan = [{"id": f"p{p:02d}", "sub_tasks": [f"s{s:05d}" for s in range(cfg.sub_tasks)]}
                for p in range(cfg.phases)]
        svc.initialize(MID, plan, actor="load")
        for p in range(cfg.phases):
            svc.execute(MID, StartPhase(f"p{p:02d}"), actor="load")
        return svc.summary(MID).last_seq
    finally:
        store.close()


# -- workers ---------------------------------------------------------------------------------

def assigned(worker: int, cfg: Config) -> Iterator[tuple[str, str]]:
    """A worker's own sub-tasks (worker w takes every W-th), across the phases in turn."""
    for i in range(worker, cfg.phases * cfg.sub_tasks, cfg.workers):
        yield f"p{i % cfg.phases:02d}", f"s{i // cfg.phases:05d}"


async def _worker(w: int, tracker: Any, cfg: Config, end: float, out: dict[str, Any]) -> None:
    lat: dict[str, list[float]] = out["latency"]
    status: dict[str, str] = out["status"]
    counters: dict[str, int] = out["counters"]

    async def timed(name: str, call: Any) -> None:
        t0 = time.perf_counter()
        await call
        lat.setdefault(name, []).append(time.perf_counter() - t0)

    try:
        for n, (phase, sub) in enumerate(assigned(w, cfg)):
            if time.monotonic() >= end:
                break
            key = f"{phase}/{sub}"
            try:
                if (w + n * cfg.workers) % SKIP_EVERY == SKIP_EVERY - 1:
                    await timed("skip_sub_task", tracker.skip_sub_task(phase, sub, "load test: skipped"))
                    status[key] = "skipped"
                    continue
                await timed("start_sub_task", tracker.start_sub_task(phase, sub))
                status[key] = "in_progress"
                await timed("update_sub_task_progress", tracker.update_sub_task_progress(phase, sub, 50.0))
                await timed("complete_sub_task", tracker.complete_sub_task(phase, sub))
                status[key] = "completed"
                size = 1000 + n % 1000
                await timed("record", tracker.record(succeeded=1, bytes=size))
                counters["successful_operations"] += 1
                counters["total_data_migrated"] += size
            except Exception as exc:  # a failed call is reported, never hidden
                out["errors"].append(f"worker {w} {key}: {type(exc).__name__}: {exc}")
                break
    finally:
        await tracker.close()


async def _worker_process(ws: list[int], cfg: Config, servers: list[str], token: str, go: Any, start: Any,
                          q: Any) -> dict[str, Any]:
    from migratrack.sdk.async_tracker import AsyncMigrationProgressTracker

    # the async tracker runs each call in a thread: one thread per worker, so none waits for a thread
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=max(4, len(ws))))
    out: dict[str, Any] = {"latency": {}, "status": {}, "errors": [],
                           "counters": {"successful_operations": 0, "total_data_migrated": 0}}
    # every worker its own tracker, in remote mode, coalescing off: each SDK call is one request
    trackers = {w: AsyncMigrationProgressTracker(MID, url=servers[w % len(servers)], token=token, coalesce=0,
                                                 actor=f"worker-{w}") for w in ws}
    q.put(("ready", {}))
    await asyncio.to_thread(go.wait)
    end = time.monotonic() + (start.value + cfg.seconds - time.time())
    await asyncio.gather(*(_worker(w, trackers[w], cfg, end, out) for w in ws))
    return out


def worker_main(ws: list[int], cfg: Config, servers: list[str], token: str, go: Any, start: Any, q: Any) -> None:
    try:
        q.put(("worker", asyncio.run(_worker_process(ws, cfg, servers, token, go, start, q))))
    except BaseException as exc:  # the parent must hear of it, not wait forever
        q.put(("worker", {"latency": {}, "status": {}, "counters": {}, "errors": [f"process: {exc!r}"]}))


# -- viewers ---------------------------------------------------------------------------------

async def _viewer(v: int, server: str, token: str, after: int, final: Any, out: dict[str, Any]) -> None:
    """Follow the stream from ``after``; note every gap or disorder, and the delay of each 10th event."""
    me: dict[str, Any] = {"first": None, "last": after, "count": 0, "gaps": 0}
    out["viewers"].append(me)
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=30.0)) as client, client.stream(
            "GET", f"{server}/api/migrations/{MID}/events", params={"after": after}, headers=headers) as r:
        if r.status_code != 200:
            out["errors"].append(f"viewer {v}: HTTP {r.status_code}")
            return
        out["connected"] += 1
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            now = time.time()
            event = json.loads(line[5:])
            seq = int(event["seq"])
            if seq != me["last"] + 1:
                me["gaps"] += 1
            if me["first"] is None:
                me["first"] = seq
            me["last"] = seq
            me["count"] += 1
            if seq % DELAY_EVERY == 0:
                out["delay"].append(now - datetime.fromisoformat(event["ts"]).timestamp())
            if final.value and seq >= final.value:
                return


async def _viewer_process(vs: list[int], servers: list[str], token: str, after: int, final: Any,
                          q: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"viewers": [], "delay": [], "errors": [], "connected": 0}
    tasks = [asyncio.create_task(_viewer(v, servers[v % len(servers)], token, after, final, out)) for v in vs]
    told = False
    while not all(t.done() for t in tasks):
        await asyncio.sleep(0.2)
        if not told and out["connected"] + len(out["errors"]) >= len(vs):
            q.put(("ready", {}))
            told = True
        last = final.value
        if last < 0:  # told to stop: the last event is overdue
            break
        if last and all(me["last"] >= last for me in out["viewers"]) and len(out["viewers"]) == len(vs):
            break  # each has the last event (and waits on a stream that stays open)
    if not told:  # every viewer ended before the start (each failed): the run must not wait for us
        q.put(("ready", {}))
    for t in tasks:
        t.cancel()
    for res in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
            out["errors"].append(f"viewer: {type(res).__name__}: {res}")
    return out


def viewer_main(vs: list[int], servers: list[str], token: str, after: int, final: Any, q: Any) -> None:
    try:
        q.put(("viewer", asyncio.run(_viewer_process(vs, servers, token, after, final, q))))
    except BaseException as exc:  # the parent must hear of it, not wait forever
        q.put(("viewer", {"viewers": [], "delay": [], "connected": 0, "errors": [f"process: {exc!r}"]}))


# -- the run ---------------------------------------------------------------------------------

def _split(n: int, parts: int) -> list[list[int]]:
    return [c for c in (list(range(i, n, parts)) for i in range(max(1, parts))) if c]


def run(cfg: Config, log: Any = print) -> Result:
    res = Result(cfg)
    ctx = mp.get_context("spawn")
    with ExitStack() as stack:
        url = stack.enter_context(shared_store(cfg.store))
        log(f"setting up {cfg.phases} x {cfg.sub_tasks} sub-tasks on {cfg.store}...")
        after = set_up(url, cfg)
        token = admin_token(url)
        running = stack.enter_context(serve(url))
        servers = [base for base, _ in running]
        procs = [psutil.Process(pid) for _, pid in running]
        q = ctx.Queue()
        final = ctx.Value("q", 0)
        viewers = [ctx.Process(target=viewer_main, args=(vs, servers, token, after, final, q))
                   for vs in _split(cfg.viewers, cfg.processes)]
        for p in viewers:
            p.start()
        go, start = ctx.Event(), ctx.Value("d", 0.0)
        workers = [ctx.Process(target=worker_main, args=(ws, cfg, servers, token, go, start, q))
                   for ws in _split(cfg.workers, cfg.processes)]
        for p in workers:
            p.start()
        log(f"{cfg.workers} workers, {cfg.viewers} viewers, {cfg.seconds:.0f} s, servers {' '.join(servers)}")
        clients = [psutil.Process(p.pid) for p in [*workers, *viewers] if p.pid is not None]
        for pr in [*procs, *clients]:
            pr.cpu_percent(None)
        results: list[tuple[str, dict[str, Any]]] = []
        # start together once every worker has its tracker and every viewer its stream
        ready, deadline = 0, time.monotonic() + 180
        while ready < len(workers) + len(viewers) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                item = q.get(timeout=1.0)
                if item[0] == "ready":
                    ready += 1
                else:
                    results.append(item)  # a process that failed before it was ready
        start_at = start.value = time.time() + 0.2
        end_at = start_at + cfg.seconds
        go.set()
        while len([r for r in results if r[0] == "worker"]) < len(workers):
            with contextlib.suppress(queue.Empty):  # sample the servers meanwhile
                results.append(q.get(timeout=1.0))
            if time.time() < end_at + 1:
                res.server_cpu.append(sum(pr.cpu_percent(None) for pr in procs))
                res.server_rss.append(sum(pr.memory_info().rss for pr in procs))
                res.client_cpu.append(sum(_cpu(pr) for pr in clients))
        res.elapsed = time.time() - start_at
        res.load_average = os.getloadavg()
        last = _last_seq(url)
        res.events = last - after
        final.value = last
        log(f"workers stopped after {res.elapsed:.1f} s; {res.events} events; waiting for the viewers")
        deadline = time.monotonic() + cfg.drain_seconds
        while len([r for r in results if r[0] == "viewer"]) < len(viewers):
            try:
                results.append(q.get(timeout=1.0))
            except queue.Empty:
                if time.monotonic() > deadline:
                    final.value = -1  # stop: the viewers still waiting are reported incomplete
                    deadline = time.monotonic() + 30
        for p in [*workers, *viewers]:
            p.join(30)
        log("checking the store")
        _tally(res, results, url, after, last)
    return res


def _cpu(pr: psutil.Process) -> float:
    try:
        return float(pr.cpu_percent(None))
    except psutil.Error:  # a process that has finished
        return 0.0


def _last_seq(url: str) -> int:
    from migratrack.service import MigrationService
    from migratrack.storage import open_storage

    store = open_storage(url)
    try:
        return MigrationService(store).summary(MID).last_seq
    finally:
        store.close()


def _tally(res: Result, results: list[tuple[str, dict[str, Any]]], url: str, after: int, last: int) -> None:
    from migratrack.service import MigrationService
    from migratrack.storage import open_storage

    cfg = res.config
    sent_status: dict[str, str] = {}
    sent = {"successful_operations": 0, "total_data_migrated": 0}
    viewers: list[dict[str, Any]] = []
    connected = 0
    for kind, out in results:
        if kind == "ready":
            continue
        res.errors.extend(out.get("errors", []))
        if kind == "worker":
            for name, values in out["latency"].items():
                res.report_latency.extend(values)
                res.by_call.setdefault(name, []).extend(values)
            sent_status.update(out["status"])
            for k, v in out["counters"].items():
                sent[k] += v
        else:
            res.stream_delay.extend(out["delay"])
            viewers.extend(out["viewers"])
            connected += out["connected"]
    res.updates = len(res.report_latency)
    res.viewer_events = sum(v["count"] for v in viewers)

    store = open_storage(url)
    try:
        svc = MigrationService(store)
        state = store.load(MID, sub_tasks=None)
        metrics = state.metrics
        res.checks["counters exact"] = (metrics.successful_operations == sent["successful_operations"]
                                        and metrics.total_data_migrated == sent["total_data_migrated"])
        # per phase, the count of each status against what the workers reported
        want: dict[str, dict[str, int]] = {f"p{p:02d}": {} for p in range(cfg.phases)}
        for key, st in sent_status.items():
            phase = key.split("/")[0]
            want[phase][st] = want[phase].get(st, 0) + 1
        for counts in want.values():
            counts["pending"] = cfg.sub_tasks - sum(counts.values())
        got = {p.id: {k: v for k, v in p.sub_task_counts.items() if v} for p in svc.summary(MID).phases}
        res.checks["done counts exact"] = got == {p: {k: v for k, v in c.items() if v} for p, c in want.items()}
        # every sub-task's own status, page by page
        stored: dict[str, str] = {}
        for p in range(cfg.phases):
            phase, cursor = f"p{p:02d}", None
            while True:
                page = svc.sub_tasks(MID, phase, after=cursor, limit=1000)
                for item in page.items:
                    if item.status.value != "pending":
                        stored[f"{phase}/{item.id}"] = item.status.value
                if page.next_after is None:
                    break
                cursor = page.next_after
        res.checks["sub-task statuses as reported"] = stored == sent_status
        # the event log: seq 1..last, contiguous
        seqs: list[int] = []
        cursor_seq = 0
        while True:
            batch = svc.events(MID, cursor_seq, 1000)
            if not batch:
                break
            seqs.extend(e.seq for e in batch)
            cursor_seq = batch[-1].seq
        res.checks["event log gap-free"] = seqs == list(range(1, last + 1))
    finally:
        store.close()
    res.checks["every viewer connected"] = connected == cfg.viewers and len(viewers) == cfg.viewers
    res.checks["every viewer saw every event in order"] = (bool(viewers) or not cfg.viewers) and all(
        v["gaps"] == 0 and v["last"] == last and v["count"] == last - after for v in viewers)
    res.checks["no call failed"] = not res.errors


# -- the report ------------------------------------------------------------------------------

def _pct(values: list[float], q: int) -> float:
    """The q-th percentile (1..99)."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def table(res: Result) -> str:
    cfg = res.config
    ms = 1000.0
    lat, dly = res.report_latency, res.stream_delay
    rows = [
        ("store", cfg.store),
        ("workers / viewers / processes", f"{cfg.workers} / {cfg.viewers} / {len(_split(cfg.workers, cfg.processes))}"
                                           f" (+{len(_split(cfg.viewers, cfg.processes))} viewer)"),
        ("migration", f"{cfg.phases} phases x {cfg.sub_tasks:,} sub-tasks"),
        ("duration", f"{res.elapsed:.1f} s"),
        ("updates (SDK calls answered)", f"{res.updates:,}"),
        ("updates/s", f"{res.rate:,.0f}"),
        ("report latency p50 / p99", f"{_pct(lat, 50) * ms:.1f} / {_pct(lat, 99) * ms:.1f} ms"),
        *((f"  {name} p50 / p99 (n)", f"{_pct(v, 50) * ms:.1f} / {_pct(v, 99) * ms:.1f} ms ({len(v):,})")
          for name, v in sorted(res.by_call.items())),
        ("events / delivered to viewers", f"{res.events:,} / {res.viewer_events:,}"),
        ("stream delay p50 / p99", f"{_pct(dly, 50) * ms:.0f} / {_pct(dly, 99) * ms:.0f} ms"),
        ("servers' CPU mean / max", (f"{statistics.fmean(res.server_cpu):.0f} / {max(res.server_cpu):.0f} % of a core"
                                      if res.server_cpu else "n/a")),
        ("load generators' CPU mean", (f"{statistics.fmean(res.client_cpu):.0f} % of a core"
                                       if res.client_cpu else "n/a")),
        ("servers' RSS max", f"{max(res.server_rss) / 2**20:.0f} MiB" if res.server_rss else "n/a"),
        ("load average (1/5/15 min)", " / ".join(f"{x:.1f}" for x in res.load_average)),
    ]
    rows += [(name, "ok" if ok else "FAILED") for name, ok in res.checks.items()]
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'':<{width}} | load test |", f"|{'-' * (width + 2)}|{'-' * 11}|"]
    lines += [f"| {k:<{width}} | {v} |" for k, v in rows]
    if res.errors:
        lines.append(f"{len(res.errors)} errors, the first: " + "; ".join(res.errors[:3]))
    return "\n".join(lines)


def parse(argv: list[str]) -> Config:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--store", choices=["redis", "postgresql"], default="redis")
    ap.add_argument("--workers", type=int, default=200)
    ap.add_argument("--viewers", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--processes", type=int, default=4, help="worker processes (and as many viewer processes)")
    ap.add_argument("--phases", type=int, default=20)
    ap.add_argument("--sub-tasks", type=int, default=5000)
    a = ap.parse_args(argv)
    for name in ("workers", "processes", "phases", "sub_tasks"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.viewers < 0 or a.seconds <= 0:
        ap.error("--viewers must be 0 or more and --seconds more than 0")
    return Config(store=a.store, workers=a.workers, viewers=a.viewers, seconds=a.seconds, processes=a.processes,
                  phases=a.phases, sub_tasks=a.sub_tasks)


def main(argv: list[str] | None = None) -> int:
    cfg = parse(sys.argv[1:] if argv is None else argv)
    res = run(cfg)
    print(table(res), flush=True)
    return 0 if res.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
