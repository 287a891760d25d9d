"""Faults, for real: Redis restarted mid-run (AOF on); PostgreSQL connections killed by the server."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from migratrack import MigrationProgressTracker
from migratrack.storage import open_storage

from .servers import RedisServer


def report(tracker: MigrationProgressTracker, start: int, stop: int) -> None:
    for i in range(start, stop):
        tracker.update_phase_progress("copy", done=i, total=1000)
        tracker.record(succeeded=1, bytes=10)
        if i % 10 == 0:
            tracker.create_alert("info", f"batch {i} done")
    tracker.flush()


def check(url: str, acknowledged: int) -> None:
    store = open_storage(url)
    state = store.load("fault")
    assert state.phases["copy"].done == acknowledged
    assert state.metrics.successful_operations == acknowledged
    assert state.metrics.total_data_migrated == 10 * acknowledged
    assert len([a for a in store.alerts("fault", limit=1000) if a.source == "user"]) == acknowledged // 10
    seqs = [e.seq for e in store.events("fault", 0, 100_000)]
    assert seqs == list(range(1, state.seq + 1))
    store.close()


def test_redis_restart_mid_run_loses_nothing_acknowledged(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", aof=True).start()
    try:
        tracker = MigrationProgressTracker("fault", storage=server.url, coalesce=0, strict=True,
                                           block_on_pause=False)
        tracker.initialize_migration([{"id": "copy"}])
        tracker.start_phase("copy")
        report(tracker, 1, 101)  # 100 acknowledged writes of each kind

        server.stop()  # a clean restart: SIGTERM, then the same port, folder and AOF
        restarter = threading.Timer(1.0, server.start)
        restarter.start()
        t0 = time.monotonic()
        report(tracker, 101, 102)  # the next call waits for the server, then succeeds
        reconnect = time.monotonic() - t0
        restarter.join()
        assert 0.9 < reconnect < 10.0, reconnect

        report(tracker, 102, 151)
        tracker.complete_phase("copy")
        tracker.close()
        check(server.url, 150)

        # and across a second restart with nothing in flight, the data is still all there
        server.stop()
        server.start()
        check(server.url, 150)
    finally:
        server.stop()


def test_postgres_connections_killed_by_the_server_are_replaced(postgres_url: str) -> None:
    tracker = MigrationProgressTracker("fault", storage=postgres_url, coalesce=0, strict=True, block_on_pause=False)
    tracker.initialize_migration([{"id": "copy"}])
    tracker.start_phase("copy")
    report(tracker, 1, 51)

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
    assert killed is not None and killed[0] >= 1

    report(tracker, 51, 101)  # every call succeeds on a fresh pooled connection
    tracker.close()
    check(postgres_url, 100)


def test_redis_down_for_good_fails_within_the_reconnect_budget(tmp_path: Path) -> None:
    from migratrack.errors import StorageUnavailable
    from migratrack.storage.redis import RedisStorage

    server = RedisServer(tmp_path / "redis").start()
    store = RedisStorage(server.url, reconnect=1.5)
    server.stop()
    t0 = time.monotonic()
    with pytest.raises(StorageUnavailable, match="Redis is unreachable"):
        store.control("anything")
    # full-jitter back-off stops before a sleep would pass the budget: it gives up between about
    # a third of the budget and the budget, never at once and never long after
    assert 0.4 < time.monotonic() - t0 < 5.0
    store.close()
