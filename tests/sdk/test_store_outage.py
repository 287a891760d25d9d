"""Direct-store mode through a store that fails writes: for 5 s mid-run (progress, counters and
16 alerts all arrive, once), and for longer than the give-up time (the writes go to the spool
with a warning, and the next tracker for the migration replays them, once)."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from migratrack import MigrationProgressTracker, StorageUnavailable
from migratrack.service import MigrationService
from migratrack.settings import Settings
from migratrack.storage.sqlite import SQLiteStorage

MID = "nightly"


class Outage(SQLiteStorage):
    """A SQLite store whose writes fail while ``down`` (as a full disk or a lost server would).
    The first write that fails is applied first, as when a connection dies after the commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.down = False
        self.failures = 0
        self._committed_one = False
        self._lock = threading.RLock()  # merge_many may call merge_progress

    def _faulty(self, fn: Any) -> Any:
        with self._lock:
            if not self.down:
                return fn()
            self.failures += 1
            if not self._committed_one:
                self._committed_one = True
                fn()
            raise StorageUnavailable("SQLite store is busy or unwritable: database or disk is full (simulated)")

    def merge_progress(self, *args: Any, **kwargs: Any) -> Any:
        return self._faulty(lambda: super(Outage, self).merge_progress(*args, **kwargs))

    def merge_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._faulty(lambda: super(Outage, self).merge_many(*args, **kwargs))

    def increment_counters(self, *args: Any, **kwargs: Any) -> Any:
        return self._faulty(lambda: super(Outage, self).increment_counters(*args, **kwargs))

    def transact(self, *args: Any, **kwargs: Any) -> Any:
        return self._faulty(lambda: super(Outage, self).transact(*args, **kwargs))

    def control(self, migration_id: str) -> Any:
        if self.down:
            raise StorageUnavailable("SQLite store is unreadable (simulated)")
        return super().control(migration_id)


def the_store(path: Path) -> tuple[int, int, int, list[str]]:
    svc = MigrationService(f"sqlite:///{path}")
    try:
        state = svc.state(MID)
        alerts = sorted(a.message for a in svc.alerts(MID, limit=1000) if a.source == "user")
        events = svc.events(MID, limit=100_000)
    finally:
        svc.storage.close()
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "the event log has a gap"
    m = state.metrics
    return state.phases["copy"].done, m.successful_operations, m.total_data_migrated, alerts


def start(store: SQLiteStorage, **kwargs: Any) -> MigrationProgressTracker:
    t = MigrationProgressTracker(MID, storage=store, actor="worker", block_on_pause=False, **kwargs)
    t.initialize_migration([{"id": "copy"}])
    t.start_phase("copy")
    return t


@pytest.mark.slow
def test_a_store_failing_writes_for_5_seconds_loses_and_doubles_nothing(tmp_path: Path) -> None:
    store = Outage(f"sqlite:///{tmp_path}/o.db")
    t = start(store, coalesce=0.05)
    adds = ok = moved = 0
    alerts: list[str] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 7.5:  # the script: reports steadily, never stops for the outage
        elapsed = time.monotonic() - t0
        store.down = 1.0 <= elapsed < 6.0
        t.add_progress("copy", 2)
        t.record(succeeded=1, bytes=10)
        adds, ok, moved = adds + 2, ok + 1, moved + 10
        if len(alerts) < 16 and elapsed >= 0.5 + len(alerts) * 0.4:
            message = f"alert {len(alerts)} at {elapsed:.1f} s"
            assert t.create_alert("warning", message) is not None
            alerts.append(message)
        time.sleep(0.002)
    t.close()
    store.close()
    assert store.failures >= 3  # retried through the outage, with back-off
    assert len(alerts) == 16
    assert sum(1 for a in alerts if 1.0 <= float(a.split()[-2]) < 6.0) >= 10  # most during the outage
    assert the_store(tmp_path / "o.db") == (adds, ok, moved, sorted(alerts))


@pytest.mark.slow
def test_what_is_not_delivered_by_the_deadline_is_spooled_and_replayed_once(
    tmp_path: Path, spool_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "s.db"
    store = Outage(f"sqlite:///{path}")
    t = start(store, coalesce=0.05, settings=Settings(retry_deadline=2.0, spool_dir=str(spool_dir)))
    t.add_progress("copy", 5)  # written
    t.record(succeeded=5)
    store.down = True  # and stays down longer than the deadline
    for i in range(100):
        t.add_progress("copy", 1)
        t.record(succeeded=1, bytes=3)
        if i % 40 == 0:
            t.create_alert("error", f"disk full {i}")
    t.update_metrics(migration_speed=12.5)
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="migratrack"):
        t.close()  # waits out the deadline, then spools
    assert time.monotonic() - began < 6
    store.down = False
    store.close()

    files = list(spool_dir.glob("*.jsonl"))
    assert len(files) == 1
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert lines and all(len(line["op_id"]) >= 16 for line in lines)
    assert {line["kind"] for line in lines} >= {"batch", "alert"}
    spooled = [r.getMessage() for r in caplog.records if "spool file" in r.getMessage()]
    assert spooled and f"{len(lines)} writes" in spooled[0] and str(files[0]) in spooled[0]
    # the first write of the outage may be in the store (applied before it failed), the rest not
    done, ok, _, _ = the_store(path)
    assert done < 105 and ok < 105

    kept = tmp_path / "copy.jsonl"
    shutil.copy(files[0], kept)
    expected = (105, 105, 300, ["disk full 0", "disk full 40", "disk full 80"])
    # the next tracker for the migration on the same store replays the spool when it starts
    MigrationProgressTracker(MID, storage=f"sqlite:///{path}", actor="next").close()
    assert not list(spool_dir.glob("*.jsonl*"))
    assert the_store(path) == expected
    svc = MigrationService(f"sqlite:///{path}")
    assert svc.state(MID).metrics.gauges["migration_speed"] == 12.5
    svc.storage.close()

    # replayed a second time (a copy kept by hand): every write is recognised by its id
    shutil.copy(kept, files[0])
    MigrationProgressTracker(MID, storage=f"sqlite:///{path}", actor="again").close()
    assert the_store(path) == expected
