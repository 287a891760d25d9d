"""8 writers on one PostgreSQL migration: the store's hot path against raw psycopg, in one run.

    python bench/bench_pg_one_migration.py [--n 1000] [--rounds 2]

Each row is 8 worker processes, each making ``n / 4`` durable (autocommit, synchronous_commit)
writes; the best of ``rounds`` runs, rows interleaved round by round so drift hits them alike:

* ``store``: ``MigrationService.update_phase_progress(add=1)``, every worker on its own phase of
  one migration (the hot path: one statement that locks the migration row, bumps its ``seq``,
  inserts the event and ``pg_notify``-s the change feed);
* ``raw update+event``: the like-for-like baseline of issue 10 — one statement that updates a
  row, bumps that row's sequence and inserts an event, every worker on its own row;
* ``raw update+event, one row``: the same with every worker on one row (what a gap-free
  per-migration sequence costs when nothing else does);
* ``sketch: key-share + sequence id``: the write a watermark design makes — the phase row
  updated under a ``FOR KEY SHARE`` lock of the migration row (writers of one migration do not
  block each other; a transition's ``FOR UPDATE`` still waits for them), the event's id from a
  sequence and its ``xid8`` from ``pg_current_xact_id()``, no update of the migration row;
* ``sketch + pg_notify``: the same plus the change feed's ``pg_notify`` in the statement;
* ``sketch: pending + positioner``: the whole route of docs/storage.md — writers as in the
  first sketch but into a pending table, and one positioner process meanwhile moving committed
  pending events into the log under the migration row's ``FOR NO KEY UPDATE`` (no conflict with
  the writers' key-share locks), numbering them gap-free in id order and sending one
  ``pg_notify`` per batch; checked at the end: every event positioned once, seq gap-free.

The sketches are not the store: they measure what the route would reach before it is built.
A database ``migratrack_bench_one`` is created and dropped here.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_stores as stores  # the store worker, the raw baselines and the database set-up

from migratrack.core.commands import StartPhase
from migratrack.service import MigrationService

BENCH_DB = "migratrack_bench_one"
WORKERS = 8


def _loop(url: str, sql: str, params: Callable[[int], dict[str, object]], n: int,
          start_at: float) -> tuple[float, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params(0))
        stores._wait(start_at)
        t0 = time.time()
        for i in range(1, n + 1):
            conn.execute(sql, params(i))
        t1 = time.time()
    return t0, t1


SKETCH = """
WITH lk AS (SELECT id FROM sk_migrations WHERE id = 'bench' FOR KEY SHARE),
u AS (UPDATE sk_phases p SET done = done + 1 FROM lk WHERE p.migration_id = lk.id AND p.id = %(phase)s
      RETURNING p.done),
ev AS (INSERT INTO sk_events (migration_id, type, payload) SELECT 'bench', 'phase.progress', '{}' FROM u
       RETURNING id)
SELECT (SELECT id FROM ev){notify}
"""


def sketch_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    return _loop(url, SKETCH.replace("{notify}", ""), lambda i: {"phase": f"w{worker}"}, n, start_at)


def sketch_notify_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    sql = SKETCH.replace("{notify}", ", (SELECT pg_notify('mt_events', 'bench') FROM ev)")
    return _loop(url, sql, lambda i: {"phase": f"w{worker}"}, n, start_at)


PENDING = SKETCH.replace("sk_events", "sk_pending").replace("{notify}", "")

POSITION = """
WITH moved AS (DELETE FROM sk_pending WHERE migration_id = 'bench' RETURNING id, type, payload),
n AS (SELECT id, type, payload, row_number() OVER (ORDER BY id) AS rn FROM moved),
head AS (SELECT seq FROM sk_migrations WHERE id = 'bench'),
ins AS (INSERT INTO sk_log (migration_id, seq, type, payload)
        SELECT 'bench', head.seq + n.rn, n.type, n.payload FROM n, head RETURNING seq),
up AS (UPDATE sk_migrations SET seq = seq + (SELECT count(*) FROM n)
       WHERE id = 'bench' AND EXISTS (SELECT 1 FROM n) RETURNING seq)
SELECT (SELECT count(*) FROM ins), (SELECT pg_notify('mt_events', 'bench') FROM up)
"""


def pending_worker(url: str, worker: int, n: int, start_at: float) -> tuple[float, float]:
    return _loop(url, PENDING, lambda i: {"phase": f"w{worker}"}, n, start_at)


def positioner(url: str, stop: Any) -> None:
    """Positions committed pending events until told to stop and nothing is left."""
    with psycopg.connect(url) as conn:
        while True:
            stopping = stop.is_set()
            with conn.transaction():
                conn.execute("SELECT seq FROM sk_migrations WHERE id = 'bench' FOR NO KEY UPDATE")
                row = conn.execute(POSITION).fetchone()
            if stopping and row is not None and row[0] == 0:
                return
            if row is not None and row[0] == 0:
                time.sleep(0.001)


def with_positioner(url: str, n: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    proc = ctx.Process(target=positioner, args=(url, stop))
    proc.start()
    try:
        return run_parallel(pending_worker, url, n)
    finally:
        stop.set()
        proc.join()


def run_parallel(fn: Callable[..., tuple[float, float]], url: str, n: int) -> float:
    return stores.run_parallel(fn, url, WORKERS, n)


def set_up() -> str:
    url = stores.pg_bench_url(BENCH_DB)  # with the raw baselines' tables
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE sk_migrations (id text PRIMARY KEY, seq bigint NOT NULL DEFAULT 0)")
        conn.execute("INSERT INTO sk_migrations VALUES ('bench', 0)")
        conn.execute("CREATE TABLE sk_phases (migration_id text REFERENCES sk_migrations (id), id text, "
                     "done bigint NOT NULL DEFAULT 0, PRIMARY KEY (migration_id, id))")
        conn.execute(f"INSERT INTO sk_phases SELECT 'bench', 'w' || g FROM generate_series(0, {WORKERS - 1}) g")
        for table in ("sk_events", "sk_pending"):
            conn.execute(f"CREATE TABLE {table} (migration_id text NOT NULL, "
                         "id bigint GENERATED ALWAYS AS IDENTITY, xid xid8 NOT NULL DEFAULT pg_current_xact_id(), "
                         "type text NOT NULL, payload text NOT NULL, PRIMARY KEY (migration_id, id))")
        conn.execute("CREATE TABLE sk_log (migration_id text NOT NULL, seq bigint NOT NULL, type text NOT NULL, "
                     "payload text NOT NULL, PRIMARY KEY (migration_id, seq))")
    svc = MigrationService(url)
    svc.initialize("bench", [{"id": f"w{w}"} for w in range(WORKERS)], actor="b", replace=True)
    for w in range(WORKERS):
        svc.execute("bench", StartPhase(f"w{w}"), actor="b")
    svc.storage.close()
    return url


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="writes per row per run, over all 8 workers x 4")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    url = set_up()
    rows: list[tuple[str, Callable[..., tuple[float, float]]]] = [
        ("store (hot path, one migration)", stores.store_worker),
        ("raw update+event, own rows", stores.raw_pg_event_worker),
        ("raw update+event, one row", stores.raw_pg_shared_worker),
        ("sketch: key-share + sequence id", sketch_worker),
        ("sketch + pg_notify", sketch_notify_worker),
        ("sketch: pending + positioner", with_positioner),
    ]
    best = {name: 0.0 for name, _ in rows}
    try:
        for _ in range(args.rounds):
            for name, fn in rows:
                n = args.n // 4
                rate = with_positioner(url, n) if fn is with_positioner else run_parallel(fn, url, n)
                best[name] = max(best[name], rate)
        with psycopg.connect(url) as conn:
            count, top, pending = conn.execute(
                "SELECT count(*), max(seq), (SELECT count(*) FROM sk_pending) FROM sk_log").fetchone() or (0, 0, 0)
        positioned_ok = count == top == args.rounds * WORKERS * (args.n // 4 + 1) and pending == 0
    finally:
        stores.drop_pg(BENCH_DB)
    base = best["raw update+event, own rows"]
    print(f"{WORKERS} workers, {args.n // 4} writes each, best of {args.rounds}")
    print(f"{'writer':<36}{'writes/s':>10}{'vs raw update+event':>22}")
    for name, _ in rows:
        print(f"{name:<36}{best[name]:>10,.0f}{best[name] / base:>21.2f}x")
    print(f"positioner: {count} events positioned, last seq {top}, {pending} left pending: "
          f"{'every event once, gap-free' if positioned_ok else 'MISMATCH'}")
    return 0 if positioned_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
