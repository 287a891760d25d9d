"""Redis and PostgreSQL stores against raw redis-py and raw psycopg, in the same run.

    python bench/bench_stores.py [--quick] [--redis URL] [--postgres URL]

Measures, per store:
* durable hot-path updates per second (a phase progress tick through MigrationService, each one
  written before the call returns) with 1 worker (in-process, taking turns with the baselines,
  median of 5 rounds) and 8 worker processes on one migration, without and with an operation id
  on every write (exactly once: the store checks and records the id in the same step; the
  "cost" column is how much slower the writes with ids are, in the same run), against
  raw redis-py (one HSET per update) and raw psycopg (one single-row autocommit UPDATE per
  update) with the same number of processes (each on its own key or row), and against the
  like-for-like raw write that also bumps a sequence and appends an event (Redis: HSET +
  HINCRBY + XADD in one MULTI; PostgreSQL: UPDATE + INSERT in one statement);
* batches: ``merge_many`` of 8 merges (one per phase, what a flush of several phases sends),
  batches per second, without and with an operation id per merge, 1 worker and 8 workers;
* the coalesced rate: calls per second a worker's loop feels through the SDK tracker (default
  100 ms coalescing), and how many writes reach the store;
* round trips per hot-path operation (Redis INFO commandstats: EVALSHA calls; PostgreSQL:
  statements sent, all autocommit);
* get_dashboard() of 100 phases x 100 sub-tasks against a raw read of the same rows.

Redis: DB 14 of 127.0.0.1:6379 under the key prefix ``mtbench``; PostgreSQL: a database
``migratrack_bench`` created and dropped here.
"""

from __future__ import annotations

import argparse
import inspect
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from migratrack import MigrationProgressTracker
from migratrack.core.commands import StartPhase
from migratrack.core.models import NewEvent, build_state
from migratrack.service import MigrationService
from migratrack.storage import open_storage
from migratrack.storage.base import ProgressMerge

REDIS = "redis://127.0.0.1:6379/14"
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "migratrack_bench"


#: this tree's stores take operation ids (exactly once); an older tree's do not, and the bench
#: then measures writes without them only (run it there for the "before" figures)
OP_IDS = "op_id" in inspect.signature(MigrationService.update_phase_progress).parameters
#: 8 merges, one per phase: a batch as a flush of several phases sends it
BATCH = 8


# -- workers (run in spawned processes) ------------------------------------------------------

def _wait(start_at: float) -> None:
    while time.time() < start_at:
        time.sleep(0.001)


def _run_id() -> str:
    return f"{os.getpid()}-{time.perf_counter_ns()}"  # unique per round: ids never repeat


def store_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    svc = MigrationService(url)
    phase = f"w{worker}"
    svc.update_phase_progress("bench", phase, add=1, actor="b")  # connect, warm the statement
    _wait(start_at)
    t0 = time.time()
    for _ in range(n):  # each one adds to the done count: every update changes the state
        svc.update_phase_progress("bench", phase, add=1, actor=f"bench-{worker}")
    t1 = time.time()
    svc.storage.close()
    return t0, t1


def store_ids_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    """``store_worker`` with an operation id on every write, as the SDK will send them."""
    svc = MigrationService(url)
    phase = f"w{worker}"
    run = _run_id()
    svc.update_phase_progress("bench", phase, add=1, actor="b", op_id=f"{run}-warm")
    _wait(start_at)
    t0 = time.time()
    for i in range(n):
        svc.update_phase_progress("bench", phase, add=1, actor=f"bench-{worker}", op_id=f"{run}-{i}")
    t1 = time.time()
    svc.storage.close()
    return t0, t1


def _batch_worker(url: str, worker: int, n: int, start_at: float, ids: bool) -> tuple[float, float]:
    svc = MigrationService(url)
    run = _run_id()

    def batch(i: int) -> list[ProgressMerge]:
        if not ids:
            return [ProgressMerge(f"w{k}", None, None, None, 1) for k in range(BATCH)]
        return [ProgressMerge(f"w{k}", None, None, None, 1, f"{run}-{i}:{k}") for k in range(BATCH)]

    svc.merge("bench", batch(-1), actor="b")
    _wait(start_at)
    t0 = time.time()
    for i in range(n):
        svc.merge("bench", batch(i), actor=f"bench-{worker}")
    t1 = time.time()
    svc.storage.close()
    return t0, t1


def batch_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    return _batch_worker(url, worker, n, start_at, False)


def batch_ids_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    return _batch_worker(url, worker, n, start_at, True)


def raw_redis_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    r = redis.Redis.from_url(url)
    key = f"mtbench-raw:{worker}"
    r.hset(key, "done", 0)
    _wait(start_at)
    t0 = time.time()
    for i in range(1, n + 1):
        r.hset(key, "done", i)
    t1 = time.time()
    r.close()
    return t0, t1


def raw_redis_event_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    """Like for like: the HSET plus a sequence bump and a stream entry, in one MULTI round trip."""
    r = redis.Redis.from_url(url)
    key = f"mtbench-raw:{{{worker}}}"
    _wait(start_at)
    t0 = time.time()
    for i in range(1, n + 1):
        pipe = r.pipeline(transaction=True)
        pipe.hset(key + ":p", "done", i)
        pipe.hincrby(key + ":h", "seq", 1)
        pipe.xadd(key + ":e", {"t": "phase.progress", "a": "bench", "p": '{"phase":"w"}', "x": str(i)})
        pipe.execute()
    t1 = time.time()
    r.close()
    return t0, t1


def raw_pg_event_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    """Like for like: the UPDATE plus a sequence bump and an event row, in one statement."""
    with psycopg.connect(url, autocommit=True) as conn:
        _wait(start_at)
        t0 = time.time()
        for i in range(1, n + 1):
            conn.execute(
                "WITH u AS (UPDATE bench_raw SET done = %s, seq = seq + 1 WHERE id = %s RETURNING seq) "
                "INSERT INTO bench_raw_events SELECT %s, u.seq, 'phase.progress', '{}' FROM u", (i, worker, worker))
        t1 = time.time()
    return t0, t1


def raw_pg_shared_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    """raw+event with every worker on one row, as every writer of one migration is."""
    return raw_pg_event_worker(url, 0, n, start_at)


def raw_pg_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE bench_raw SET done = 0 WHERE id = %s", (worker,))
        _wait(start_at)
        t0 = time.time()
        for i in range(1, n + 1):
            conn.execute("UPDATE bench_raw SET done = %s WHERE id = %s", (i, worker))
        t1 = time.time()
    return t0, t1


def run_parallel(fn: Callable[..., tuple[float, float]], url: str, workers: int, n: int) -> float:
    """Calls per second over all workers, from the common start to the last one's end."""
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 1.5 + 0.3 * workers
    with ctx.Pool(workers) as pool:
        spans = pool.starmap(fn, [(url, w, n, start_at) for w in range(workers)])
    return workers * n / (max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans))


# -- set-up -----------------------------------------------------------------------------------

def fresh_migration(url: str, workers: int = 8) -> None:
    svc = MigrationService(url)
    svc.initialize("bench", [{"id": f"w{w}"} for w in range(workers)], actor="b", replace=True)
    for w in range(workers):
        svc.execute("bench", StartPhase(f"w{w}"), actor="b")
    svc.storage.close()


def pg_bench_url(db: str = BENCH_DB) -> str:
    """A fresh database ``db`` with the raw baselines' tables; its URL."""
    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {db}")
    url = POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + db
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_raw (id int PRIMARY KEY, done bigint NOT NULL, seq bigint NOT NULL)")
        conn.execute("INSERT INTO bench_raw SELECT g, 0, 0 FROM generate_series(0, 15) g")
        conn.execute("CREATE TABLE bench_raw_events (id int, seq bigint, type text, payload text, "
                     "PRIMARY KEY (id, seq))")
    return url


def drop_pg(db: str = BENCH_DB) -> None:
    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def clean_redis(url: str) -> None:
    r = redis.Redis.from_url(url.split("?")[0])
    for pattern in ("mtbench:*", "mtbench-raw:*"):  # the raw baselines' keys too
        keys = list(r.scan_iter(match=pattern, count=1000))
        if keys:
            r.delete(*keys)
    r.close()


# -- measurements -----------------------------------------------------------------------------

def coalesced(url: str, seconds: float) -> tuple[float, int]:
    fresh_migration(url, 1)
    store = open_storage(url)
    before = store.load("bench", sub_tasks=None).seq
    tracker = MigrationProgressTracker("bench", storage=url, block_on_pause=False)
    calls = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(1000):
            calls += 1
            tracker.update_phase_progress("w0", done=calls)
    elapsed = time.perf_counter() - t0
    tracker.close()
    writes = store.load("bench", sub_tasks=None).seq - before
    store.close()
    return calls / elapsed, writes


def _tick(svc: MigrationService, done: int, ids: bool) -> None:
    if ids:
        svc.update_phase_progress("bench", "w0", done=done, actor="b", op_id=f"rt-{done}")
    else:
        svc.update_phase_progress("bench", "w0", done=done, actor="b")


def redis_round_trips(url: str, ids: bool, n: int = 500) -> float:
    fresh_migration(url, 1)
    svc = MigrationService(url)
    _tick(svc, 1, ids)  # scripts loaded
    admin = redis.Redis.from_url(url.split("?")[0])

    def top_level() -> int:
        stats: dict[str, Any] = admin.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    before = top_level()
    for i in range(2, n + 2):
        _tick(svc, i, ids)
    after = top_level()
    admin.close()
    svc.storage.close()
    return (after - before) / n


def pg_round_trips(url: str, ids: bool, n: int = 300) -> float:
    fresh_migration(url, 1)
    svc = MigrationService(url)
    _tick(svc, 1, ids)
    count = 0
    original = psycopg.Cursor.execute

    def counting(self: Any, *a: Any, **k: Any) -> Any:
        nonlocal count
        count += 1
        return original(self, *a, **k)

    psycopg.Cursor.execute = counting  # type: ignore[method-assign]
    try:
        for i in range(2, n + 2):
            _tick(svc, i, ids)
    finally:
        psycopg.Cursor.execute = original  # type: ignore[method-assign]
    svc.storage.close()
    return count / n


def dashboard(url: str, raw_read: Callable[[], object], repeats: int) -> tuple[float, float]:
    store = open_storage(url)
    plan = [{"id": f"p{i:03d}", "sub_tasks": [f"s{j:03d}" for j in range(100)]} for i in range(100)]
    state = build_state("big", plan, MigrationService(store).now())
    store.create(state, [NewEvent("migration.initialized", state.created_at, "b", {})], replace=True)
    svc = MigrationService(store)
    svc.dashboard("big")
    raw_read()
    ours = statistics.median(_timed(lambda: svc.dashboard("big")) for _ in range(repeats))
    raw = statistics.median(_timed(raw_read) for _ in range(repeats))
    store.close()
    return ours, raw


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def raw_redis_read(url: str) -> Callable[[], object]:
    r = redis.Redis.from_url(url.split("?")[0], decode_responses=True)

    def read() -> object:
        pipe = r.pipeline(transaction=True)
        for suffix in ("h", "p", "s"):
            pipe.hgetall(f"mtbench:{{big}}:{suffix}")
        return pipe.execute()
    return read


def raw_pg_read(url: str) -> Callable[[], object]:
    conn = psycopg.connect(url, autocommit=True)

    def read() -> object:
        return (conn.execute("SELECT * FROM mt_phases WHERE migration_id = 'big' ORDER BY pos").fetchall(),
                conn.execute("SELECT * FROM mt_sub_tasks WHERE migration_id = 'big' ORDER BY phase_id, pos")
                .fetchall())
    return read


def raw_sqlite_read(path: str) -> Callable[[], object]:
    import sqlite3

    conn = sqlite3.connect(path)

    def read() -> object:
        return (conn.execute("SELECT * FROM mt_phases WHERE migration_id = 'big' ORDER BY pos").fetchall(),
                conn.execute("SELECT * FROM mt_sub_tasks WHERE migration_id = 'big' ORDER BY phase_id, pos")
                .fetchall())
    return read


# -- main -------------------------------------------------------------------------------------

def _row(name: str, workers: int, ours: list[float], raws: list[float]) -> str:
    """A table row: the store's rate, with op ids and their cost (when measured), then each raw
    baseline and the store's ratio to it (to the writes with ids when there are some)."""
    line = f"{name:<12}{workers:>8}{ours[0]:>14,.0f}"
    if len(ours) > 1:
        line += f"{ours[1]:>10,.0f}{(ours[0] / ours[1] - 1) * 100:>+7.1f}%"
    else:
        line += f"{'-':>10}{'-':>8}"
    for raw in raws:
        line += f"{raw:>12,.0f}{ours[-1] / raw:>7.2f}x"
    return line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer updates (a smoke run)")
    ap.add_argument("--redis", default=REDIS)
    args = ap.parse_args()
    n_redis, n_pg = (300, 150) if args.quick else (3000, 1000)
    repeats = 3 if args.quick else 7
    redis_url = f"{args.redis}?prefix=mtbench"
    tmp = tempfile.mkdtemp(prefix="mtbench")
    sqlite_path = os.path.join(tmp, "bench.db")
    sqlite_url = f"sqlite:///{sqlite_path}"
    pg_url = pg_bench_url()
    clean_redis(redis_url)
    try:
        print("durable single updates per second (a phase tick through MigrationService); "
              "+op ids: the same with an operation id on every write, cost = how much slower")
        print(f"{'store':<12}{'workers':>8}{'store upd/s':>14}{'+op ids':>10}{'cost':>8}{'raw upd/s':>12}"
              f"{'ratio':>8}{'raw+event':>12}{'ratio':>8}")
        stores = (("redis", redis_url, (raw_redis_worker, raw_redis_event_worker), n_redis),
                  ("postgresql", pg_url, (raw_pg_worker, raw_pg_event_worker), n_pg),
                  ("sqlite", sqlite_url, None, n_redis))
        ours_fns = [store_worker, store_ids_worker] if OP_IDS else [store_worker]
        for name, url, raw_fns, n in stores:
            raw_url = args.redis if name == "redis" else pg_url
            fresh_migration(url)
            # one worker: in this process, the writers taking turns, median of 5 rounds
            writers = [*((f, url) for f in ours_fns), *((f, raw_url) for f in raw_fns or ())]
            rates: list[list[float]] = [[] for _ in writers]
            for _ in range(5):
                for i, (fn, u) in enumerate(writers):
                    t0, t1 = fn(u, 0, n // 3, time.time())
                    rates[i].append(n // 3 / (t1 - t0))
            medians = [statistics.median(r) for r in rates]
            print(_row(name, 1, medians[:len(ours_fns)], medians[len(ours_fns):]), flush=True)
            # eight worker processes: with and without ids twice over, interleaved, best of two
            fresh_migration(url)
            ours8 = [max(run_parallel(fn, url, 8, n // 4) for _ in range(2)) for fn in ours_fns]
            raws8 = [run_parallel(fn, raw_url, 8, n // 4) for fn in raw_fns or ()]
            print(_row(name, 8, ours8, raws8), flush=True)
            if name == "postgresql":
                shared = run_parallel(raw_pg_shared_worker, pg_url, 8, n // 4)
                print(f"{'':<12}{8:>8}{'':>14}  raw+event with all 8 on one row: {shared:,.0f}/s "
                      f"(migratrack {ours8[-1] / shared:.2f}x)", flush=True)
        print(f"\nbatches of {BATCH} merges (merge_many, one per phase) per second; +op ids: an id per merge")
        print(f"{'store':<12}{'workers':>8}{'batches/s':>14}{'+op ids':>10}{'cost':>8}")
        batch_fns = [batch_worker, batch_ids_worker] if OP_IDS else [batch_worker]
        for name, url, _, n in stores:
            fresh_migration(url)
            rates = [[] for _ in batch_fns]
            for _ in range(5):
                for i, fn in enumerate(batch_fns):
                    t0, t1 = fn(url, 0, n // 12, time.time())
                    rates[i].append(n // 12 / (t1 - t0))
            print(_row(name, 1, [statistics.median(r) for r in rates], []), flush=True)
            fresh_migration(url)
            print(_row(name, 8, [max(run_parallel(fn, url, 8, n // 16) for _ in range(2)) for fn in batch_fns], []),
                  flush=True)
        print("\ncoalesced (SDK tracker, default 100 ms): loop calls/s, writes to the store in 2 s")
        for name, url in (("redis", redis_url), ("postgresql", pg_url), ("sqlite", sqlite_url)):
            rate, writes = coalesced(url, 1.0 if args.quick else 2.0)
            print(f"{name:<12}{rate:>14,.0f} calls/s  {writes:>5} writes", flush=True)
        print("\nround trips per hot-path update")
        for ids in (False, True) if OP_IDS else (False,):
            label = " (with op ids)" if ids else ""
            print(f"{'redis':<12}{redis_round_trips(redis_url, ids):>6.2f} EVALSHA (INFO commandstats){label}")
            print(f"{'postgresql':<12}{pg_round_trips(pg_url, ids):>6.2f} statements (autocommit){label}")
        print("\nget_dashboard(), 100 phases x 100 sub-tasks, median ms: store vs raw read of the same rows")
        for name, url, raw_read in (("redis", redis_url, raw_redis_read(args.redis)),
                                    ("postgresql", pg_url, raw_pg_read(pg_url)),
                                    ("sqlite", sqlite_url, raw_sqlite_read(sqlite_path))):
            ours, raw = dashboard(url, raw_read, repeats)
            print(f"{name:<12}{ours * 1000:>9.1f} ms  raw {raw * 1000:>7.1f} ms  ({ours / raw:.1f}x)", flush=True)
        floor, _ = dashboard("memory://", lambda: None, repeats)
        print(f"{'memory':<12}{floor * 1000:>9.1f} ms  (no I/O: the cost of building the state and the views)")
    finally:
        clean_redis(redis_url)
        drop_pg()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
