"""A store outage never crashes a migration from a progress, metrics or alert call, and loses nothing."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from migratrack import AsyncMigrationProgressTracker, MigrationProgressTracker, StorageUnavailable
from migratrack.service import MigrationService
from migratrack.storage import Storage
from migratrack.storage.memory import MemoryStorage
from migratrack.storage.sqlite import SQLiteStorage

MID = "flaky"


class Flaky:
    """Mixin: the next ``down`` writes (or, with ``rate``, a random share of them) fail as an outage."""

    down = 0
    rate = 0.0
    rng = random.Random(1)
    failures = 0

    def _outage(self) -> None:
        if self.down > 0 or (self.rate and self.rng.random() < self.rate):
            self.down = max(0, self.down - 1)
            self.failures += 1
            raise StorageUnavailable("connection refused (simulated outage)")

    def merge_progress(self, *args: Any, **kwargs: Any) -> Any:
        self._outage()
        return super().merge_progress(*args, **kwargs)  # type: ignore[misc]

    def merge_many(self, *args: Any, **kwargs: Any) -> Any:
        self._outage()
        return super().merge_many(*args, **kwargs)  # type: ignore[misc]

    def increment_counters(self, *args: Any, **kwargs: Any) -> Any:
        self._outage()
        return super().increment_counters(*args, **kwargs)  # type: ignore[misc]

    def transact(self, *args: Any, **kwargs: Any) -> Any:
        self._outage()
        return super().transact(*args, **kwargs)  # type: ignore[misc]

    def control(self, migration_id: str) -> Any:
        self._outage()
        return super().control(migration_id)  # type: ignore[misc]


class FlakyMemory(Flaky, MemoryStorage):
    pass


class FlakySQLite(Flaky, SQLiteStorage):
    pass


@pytest.fixture(params=["memory", "sqlite"])
def flaky(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flaky]:
    store: Flaky = FlakyMemory() if request.param == "memory" else FlakySQLite(f"sqlite:///{tmp_path}/f.db")
    yield store
    store.close()  # type: ignore[attr-defined]


@pytest.fixture
def t(flaky: Flaky) -> Iterator[MigrationProgressTracker]:
    t = MigrationProgressTracker(MID, storage=flaky, actor="w", coalesce=3600)  # type: ignore[arg-type]
    t.initialize_migration([{"id": "a", "sub_tasks": ["s"]}, {"id": "b"}])
    t.start_phase("a")
    t.start_phase("b")
    t.start_sub_task("a", "s")
    yield t
    flaky.down = 0
    flaky.rate = 0
    t.close()


def viewer(flaky: Flaky) -> MigrationService:
    return MigrationService(flaky)  # type: ignore[arg-type]


def test_an_outage_is_logged_not_raised_and_the_update_arrives_later(
    t: MigrationProgressTracker, flaky: Flaky, caplog: pytest.LogCaptureFixture
) -> None:
    flaky.down = 1_000_000
    with caplog.at_level(logging.WARNING, logger="migratrack"):
        t.update_phase_progress("a", 40, {"step": "copy"})
        t.update_sub_task_progress("a", "s", 70)
        t.add_progress("b", 5)
        t.record(succeeded=3, failed=1, bytes=10)
        t.update_metrics(migration_speed=99.0)
        provisional = t.create_alert("warning", "disk almost full")
        t.flush()
    assert flaky.failures > 0
    assert any("store unavailable" in r.getMessage() or "could not" in r.getMessage() for r in caplog.records)
    flaky.down = 0
    t.flush()
    state = viewer(flaky).state(MID)
    assert state.phases["a"].progress == 40 and state.phases["a"].metadata == {"step": "copy"}
    assert state.phases["a"].sub_tasks["s"].progress == 70
    assert state.phases["b"].done == 5
    m = state.metrics
    assert (m.successful_operations, m.failed_operations, m.total_data_migrated) == (3, 1, 10)
    assert m.gauges["migration_speed"] == 99.0  # a metric value set during the outage
    # the alert was kept and written once the store was back, under the id it was given
    assert provisional is not None
    mine = [(a.id, a.message) for a in viewer(flaky).alerts(MID) if a.source == "user"]
    assert mine == [(provisional.id, "disk almost full")]


def test_the_background_flusher_retries_after_an_outage(flaky: Flaky) -> None:
    import time

    t = MigrationProgressTracker(MID, storage=flaky, actor="w", coalesce=0.02)  # type: ignore[arg-type]
    t.initialize_migration([{"id": "a"}])
    t.start_phase("a")
    flaky.down = 3
    t.update_phase_progress("a", 10)  # fails: kept for later
    t.add_progress("a", 4)
    deadline = time.monotonic() + 10
    while viewer(flaky).state(MID).phases["a"].done != 4 or viewer(flaky).state(MID).phases["a"].progress != 10:
        assert time.monotonic() < deadline, "the pending update never arrived"
        time.sleep(0.02)
    t.close()


def test_transitions_still_raise_during_an_outage(t: MigrationProgressTracker, flaky: Flaky) -> None:
    flaky.down = 1
    with pytest.raises(StorageUnavailable):
        t.complete_sub_task("a", "s")  # a transition the script must know did not happen


def test_strict_mode_raises(flaky: Flaky) -> None:
    t = MigrationProgressTracker(MID, storage=flaky, actor="w", coalesce=0, strict=True)  # type: ignore[arg-type]
    t.initialize_migration([{"id": "a"}])
    t.start_phase("a")
    flaky.down = 1
    with pytest.raises(StorageUnavailable):
        t.update_phase_progress("a", 10)
    t.close()


@pytest.mark.parametrize("seed", range(6))
def test_random_outages_lose_and_duplicate_no_increment(t: MigrationProgressTracker, flaky: Flaky, seed: int) -> None:
    rng = random.Random(seed)
    flaky.rng = random.Random(seed + 100)
    flaky.rate = 0.3
    added = {"a": 0, "b": 0}
    ok = failed = 0
    top = 0.0
    for _ in range(300):
        r = rng.random()
        if r < 0.4:
            phase = rng.choice(["a", "b"])
            n = rng.randint(1, 9)
            t.add_progress(phase, n)
            added[phase] += n
        elif r < 0.6:
            s, f = rng.randint(0, 5), rng.randint(0, 2)
            t.record(succeeded=s, failed=f)
            ok, failed = ok + s, failed + f
        elif r < 0.75:
            top = max(top, rng.uniform(0, 100))
            t.update_sub_task_progress("a", "s", top)
        else:
            t.flush()
    assert flaky.failures > 0
    flaky.rate = 0
    t.flush()
    state = viewer(flaky).state(MID)
    assert {p: state.phases[p].done for p in ("a", "b")} == added
    assert (state.metrics.successful_operations, state.metrics.failed_operations) == (ok, failed)
    assert state.phases["a"].sub_tasks["s"].progress == pytest.approx(top)
    events = viewer(flaky).events(MID, limit=100_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(isinstance(e.ts, datetime) for e in events)


def test_storage_type_is_a_storage() -> None:
    assert issubclass(FlakyMemory, Storage) and issubclass(FlakySQLite, Storage)


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_failing_phase_block_raises_the_scripts_own_error_during_an_outage(
    flaky: Flaky, use_async: bool
) -> None:
    t = AsyncMigrationProgressTracker(MID, storage=flaky, actor="w")
    await t.initialize_migration([{"id": "a"}])
    with pytest.raises(ValueError, match="bad row"):
        if use_async:
            async with t.phase("a"):
                flaky.down = 1_000_000
                raise ValueError("bad row 7")
        else:
            with t.sync.phase("a"):
                flaky.down = 1_000_000
                raise ValueError("bad row 7")
    flaky.down = 0
    await t.close()
