"""Throttled time (``tracker.throttled(...)``): recorded in the audit trail, kept by every store,
and left out of the estimate's rates as paused time is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from migratrack import MigrationProgressTracker
from migratrack.storage import Storage, open_storage

T0 = datetime(2031, 3, 2, 8, 0, tzinfo=UTC)


def _run(store: Storage, mid: str, *, declare: bool) -> MigrationProgressTracker:
    """A copy planned at 100 minutes going 1% a minute, then held back an hour by rate limits
    (1% in that hour), then 1% a minute again for 10 minutes: 41% after 100 minutes."""
    now = [T0]
    t = MigrationProgressTracker(mid, storage=store, clock=lambda: now[0], coalesce=0, actor="worker")
    t.initialize_migration([{"id": "copy", "estimated_duration": 100}])
    t.start_phase("copy")
    for minute in range(1, 31):
        now[0] = T0 + timedelta(minutes=minute)
        t.update_phase_progress("copy", float(minute))
    if declare:
        t.throttle("S3 slow-down")
    for minute in range(31, 91, 5):
        now[0] = T0 + timedelta(minutes=minute)
        t.update_phase_progress("copy", 30.0 + (minute - 30) / 60)
    now[0] = T0 + timedelta(minutes=90)
    t.update_phase_progress("copy", 31.0)
    if declare:
        t.unthrottle()
    for minute in range(91, 101):
        now[0] = T0 + timedelta(minutes=minute)
        t.update_phase_progress("copy", 31.0 + minute - 90)
    return t


def test_throttled_time_does_not_drag_the_estimate(store: Storage, store_url: str) -> None:
    declared = _run(store, "throttled", declare=True)
    silent = _run(store, "silent", declare=False)
    left = declared.estimate().remaining_seconds
    naive = silent.estimate().remaining_seconds
    assert left is not None and naive is not None
    # 41% in 40 unthrottled minutes: about 58 minutes left (the plan says 59)
    assert left == pytest.approx(58 * 60, rel=0.15)
    # the same run not declared: the hour of rate limits reads as slowness
    assert naive > 1.4 * left
    events = [(e.type, e.actor, e.payload) for e in declared.events() if e.type.startswith("migration.")]
    assert ("migration.throttled", "worker", {"reason": "S3 slow-down"}) in events
    assert ("migration.unthrottled", "worker", {}) in events
    declared.close()
    silent.close()
    # the intervals are kept by the store: a fresh connection reads them back
    again = store if store_url == "memory://" else open_storage(store_url)
    try:
        state = again.load("throttled")
        assert [(p.started_at, p.ended_at) for p in state.throttles] == [
            (T0 + timedelta(minutes=30), T0 + timedelta(minutes=90))]
        assert again.load("silent").throttles == []
    finally:
        if again is not store:
            again.close()


def test_the_throttled_block_ends_the_throttle_even_when_it_raises(store: Storage) -> None:
    now = [T0]
    t = MigrationProgressTracker("block", storage=store, clock=lambda: now[0], coalesce=0, actor="worker")
    t.initialize_migration([{"id": "copy", "estimated_duration": 10}])
    t.start_phase("copy")
    with pytest.raises(TimeoutError), t.throttled("API quota"):
        now[0] += timedelta(minutes=3)
        t.throttle("again")  # said twice: one interval
        raise TimeoutError
    now[0] += timedelta(minutes=1)
    t.unthrottle()  # not throttled: nothing happens
    state = store.load("block")
    assert [(p.started_at, p.ended_at) for p in state.throttles] == [(T0, T0 + timedelta(minutes=3))]
    types = [e.type for e in t.events() if e.type.startswith("migration.")]
    assert types.count("migration.throttled") == 1 and types.count("migration.unthrottled") == 1
    t.close()
