"""Many workers, nothing lost: 8 workers x 2,000 mixed operations on one migration, every store.

SQLite, Redis and PostgreSQL are shared by 8 processes; memory:// lives in one process, so
there the 8 workers are threads.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from migratrack.storage import Storage, open_storage

from . import workers

WORKERS = 8
OPS = 2_000


@pytest.mark.slow
def test_eight_workers_lose_nothing(store_url: str) -> None:
    mid = "many-workers"
    shared = open_storage(store_url)
    # memory:// lives in one process: share the store object itself between threads
    url: str | Storage = shared if store_url.startswith("memory") else store_url
    workers.set_up(url, mid, WORKERS)
    seq_before = shared.load(mid, sub_tasks=None).seq
    alerts_before = len(shared.alerts(mid, limit=100_000))

    started = time.monotonic()
    results: list[dict[str, Any]]
    if isinstance(url, str):
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(WORKERS) as pool:
            results = pool.starmap(workers.mixed_worker, [(url, mid, w, OPS) for w in range(WORKERS)])
    else:
        with ThreadPoolExecutor(WORKERS) as ex:
            results = list(ex.map(lambda w: workers.mixed_worker(url, mid, w, OPS), range(WORKERS)))
    elapsed = time.monotonic() - started

    assert [r["errors"] for r in results] == [[]] * WORKERS
    state = shared.load(mid)
    m = state.metrics
    for name in ("successful_operations", "failed_operations", "total_data_migrated"):
        assert getattr(m, name) == sum(r["counters"][name] for r in results), name
    best: dict[str, float] = {}
    for r in results:
        for sid, v in r["best"].items():
            best[sid] = max(best.get(sid, 0.0), v)
    subs = state.phases["bulk"].sub_tasks
    assert {sid: s.progress for sid, s in subs.items()} == {sid: best.get(sid, 0.0) for sid in workers.SUB_TASKS}
    assert state.phases["counted"].done == sum(r["adds"] for r in results)
    assert state.phases["pct"].progress == max(r["pct_best"] for r in results)
    for w, r in enumerate(results):
        expected = "completed" if r["side"][1] else ("in_progress" if r["side"][0] else "pending")
        assert state.phases[f"side{w}"].status.value == expected
    assert state.phases["gated"].status.value == "pending"

    events = []
    after = 0
    while batch := shared.events(mid, after, 1000):
        events += batch
        after = batch[-1].seq
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].seq == state.seq
    types = Counter(e.type for e in events if e.seq > seq_before)
    assert types["metrics.updated"] == sum(r["increments"] for r in results)
    assert types["alert.created"] == sum(r["alerts"] for r in results)
    assert len(shared.alerts(mid, limit=100_000)) == alerts_before + sum(r["alerts"] for r in results)
    assert types["phase.progress"] >= sum(r["adds"] for r in results)  # every add is a change
    assert sum(r["violations"] for r in results) > 0  # the expected rule violations did happen
    print(f"\n{store_url.split(':')[0]}: {WORKERS} x {OPS} ops in {elapsed:.1f} s")
    shared.close()
