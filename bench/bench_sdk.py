"""SDK and embedded-store benchmarks, each against a baseline in the same run.

(a) per-item overhead of tracker.track() against tqdm on the same 1,000,000-item loop
    (tqdm writing to /dev/null) — target: at most half of tqdm's overhead;
(b) update_phase_progress calls per second in a tight loop with coalescing on;
(c) durable writes per second with coalescing off (every call persisted to SQLite) against
    raw sqlite3 one-row transactions in WAL mode — target: at least 0.8x raw; and against the
    like-for-like raw transactions: two rows (state + event), three rows (+ the operation id
    the SDK sends with every write, recorded for exactly-once), and the store's hot path alone
    without operation ids against the two-row one.

Run: .venv/bin/python bench/bench_sdk.py [--items N] [--writes N]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from migratrack import MigrationProgressTracker
from migratrack.core.commands import StartPhase
from migratrack.sdk import coalescer
from migratrack.sdk.retry import new_op_id
from migratrack.service import MigrationService
from migratrack.storage import open_storage


def best_of(n: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_track(tmp: Path, items: int, repeat: int) -> dict[str, float]:
    data = range(items)

    def bare() -> None:
        for _ in data:
            pass

    def with_tqdm() -> None:
        with open(os.devnull, "w") as devnull:
            for _ in tqdm(data, file=devnull, mininterval=0.1):
                pass

    counter = iter(range(10**9))

    def with_tracker() -> None:
        t = MigrationProgressTracker(f"track-{next(counter)}", storage=f"sqlite:///{tmp}/track.db")
        t.initialize_migration([{"id": "copy"}])
        for _ in t.track(data, phase="copy"):
            pass
        t.close()

    b = best_of(repeat, bare)
    q = best_of(repeat, with_tqdm)
    m = best_of(repeat, with_tracker)
    ns = 1e9 / items
    return {"bare_ns": b * ns, "tqdm_overhead_ns": (q - b) * ns, "track_overhead_ns": (m - b) * ns,
            "ratio": (m - b) / (q - b)}


def bench_coalesced(tmp: Path, calls: int) -> dict[str, float]:
    t = MigrationProgressTracker("coalesced", storage=f"sqlite:///{tmp}/coalesced.db", coalesce=0.1)
    t.initialize_migration([{"id": "copy"}], replace=True)
    t.start_phase("copy")
    t0 = time.perf_counter()
    for i in range(calls):
        t.update_phase_progress("copy", i * 100.0 / calls)
    elapsed = time.perf_counter() - t0
    t.flush()
    writes = sum(1 for e in t.events() if e.type == "phase.progress")
    t.close()
    return {"calls_per_s": calls / elapsed, "writes": writes, "seconds": elapsed}


def bench_durable(tmp: Path, writes: int, repeat: int) -> dict[str, float]:
    raw_path = tmp / "raw.db"
    conn = sqlite3.connect(raw_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS progress (id TEXT PRIMARY KEY, value REAL)")
    conn.execute("INSERT OR REPLACE INTO progress VALUES ('copy', 0)")

    def raw() -> None:
        for i in range(writes):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE progress SET value = ? WHERE id = 'copy'", (i * 100.0 / writes,))
            conn.execute("COMMIT")

    counter = iter(range(10**9))

    def tracked() -> None:
        t = MigrationProgressTracker(f"durable-{next(counter)}", storage=f"sqlite:///{tmp}/durable.db",
                                     coalesce=0)
        t.initialize_migration([{"id": "copy"}])
        t.start_phase("copy")
        for i in range(1, writes + 1):
            t.update_phase_progress("copy", i * 100.0 / writes)
        t.close()

    conn.execute("CREATE TABLE IF NOT EXISTS events (m TEXT, seq INTEGER, payload TEXT, PRIMARY KEY (m, seq)) "
                 "WITHOUT ROWID")
    seq = iter(range(10**9))

    def raw_two_rows() -> None:
        # what a tracked durable write stores: the new state and one audit event
        for i in range(writes):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE progress SET value = ? WHERE id = 'copy'", (i * 100.0 / writes,))
            conn.execute("INSERT INTO events VALUES ('m', ?, '{}')", (next(seq),))
            conn.execute("COMMIT")

    conn.execute("CREATE TABLE IF NOT EXISTS applied (m TEXT, op TEXT, at REAL, PRIMARY KEY (m, op)) WITHOUT ROWID")
    conn.execute("CREATE INDEX IF NOT EXISTS applied_at ON applied (at)")

    def raw_three_rows() -> None:
        # like-for-like with exactly-once: the state, the event, and the operation id recorded
        # (an id as random as the SDK's, and the index that expires them)
        for i in range(writes):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE progress SET value = ? WHERE id = 'copy'", (i * 100.0 / writes,))
            conn.execute("INSERT INTO events VALUES ('m', ?, '{}')", (next(seq),))
            conn.execute("INSERT INTO applied VALUES ('m', ?, ?)", (uuid.uuid4().hex, time.time()))
            conn.execute("COMMIT")

    def store_without_ids() -> None:
        # the store's hot path alone, without an operation id: the SDK's Python path and the id
        # record left out
        store = open_storage(f"sqlite:///{tmp}/durable.db")
        mid = f"store-{next(counter)}"
        MigrationService(store).initialize(mid, [{"id": "copy"}], actor="b")
        MigrationService(store).execute(mid, StartPhase("copy"), actor="b")
        for i in range(1, writes + 1):
            store.merge_progress(mid, "copy", None, progress=i * 100.0 / writes, done=None, add=None, ts=None,
                                 actor="b")
        store.close()

    def tracked_random_ids() -> None:
        # the tracker as it was before its ids sorted by time: uuid4, a random leaf per record
        coalescer.new_op_id = lambda: uuid.uuid4().hex
        try:
            tracked()
        finally:
            coalescer.new_op_id = new_op_id

    r = best_of(repeat, raw)
    r2 = best_of(repeat, raw_two_rows)
    r3 = best_of(repeat, raw_three_rows)
    m = best_of(repeat, tracked)
    mr = best_of(repeat, tracked_random_ids)
    s = best_of(repeat, store_without_ids)
    conn.close()
    return {"raw_per_s": writes / r, "raw2_per_s": writes / r2, "tracker_per_s": writes / m, "ratio": r / m,
            "ratio2": r2 / m, "raw3_per_s": writes / r3, "ratio3": r3 / m, "store_per_s": writes / s,
            "store_ratio2": r2 / s, "random_ids_per_s": writes / mr}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--writes", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--durable-only", action="store_true", help="only (c)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.durable_only:
            _print_durable(bench_durable(tmp, args.writes, args.repeat))
            return
        a = bench_track(tmp, args.items, args.repeat)
        print(f"(a) track() over {args.items:,} items: bare loop {a['bare_ns']:.1f} ns/item; overhead "
              f"tqdm {a['tqdm_overhead_ns']:.1f} ns/item, track() {a['track_overhead_ns']:.1f} ns/item "
              f"-> {a['ratio']:.2f}x tqdm's overhead (target <= 0.5x)")
        b = bench_coalesced(tmp, args.items)
        print(f"(b) update_phase_progress, coalescing on (100 ms): {b['calls_per_s']:,.0f} calls/s; "
              f"{args.items:,} calls became {b['writes']} durable writes")
        _print_durable(bench_durable(tmp, args.writes, args.repeat))


def _print_durable(c: dict[str, float]) -> None:
    print(f"(c) durable writes, coalescing off: raw sqlite3 (WAL, one-row transactions) "
          f"{c['raw_per_s']:,.0f}/s, tracker {c['tracker_per_s']:,.0f}/s -> {c['ratio']:.2f}x raw "
          f"(target >= 0.8x); raw two-row transactions (state + event, like-for-like) "
          f"{c['raw2_per_s']:,.0f}/s -> {c['ratio2']:.2f}x; raw three-row (+ the operation id recorded, "
          f"like-for-like with exactly-once) {c['raw3_per_s']:,.0f}/s -> {c['ratio3']:.2f}x; the store alone "
          f"without operation ids {c['store_per_s']:,.0f}/s -> {c['store_ratio2']:.2f}x raw two-row; the tracker "
          f"with random (uuid4) operation ids, as before they sorted by time, {c['random_ids_per_s']:,.0f}/s")


if __name__ == "__main__":
    main()
