"""Time that does not depend on whose clock is right.

Two workers share a store; worker A's clock is 10 minutes ahead of B's. Each is a service whose
clock is a :class:`LocalClock` (a machine's own clock, not the authority): on Redis and
PostgreSQL the store's clock stamps the writes, so durations, the estimate and the event log
come out as with one clock. On every store, event times never go backwards along the log,
whatever time a caller gives.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from migratrack.core.commands import CompletePhase, StartPhase
from migratrack.core.models import NewEvent, build_state
from migratrack.core.rules import Change
from migratrack.service import LocalClock, MigrationService
from migratrack.storage import Storage, open_storage

FakeClock = Any  # the `clock` fixture of tests/conftest.py

SKEW = timedelta(minutes=10)
PLAN = [{"id": "extract", "estimated_duration": 10}, {"id": "load", "estimated_duration": 10},
        {"id": "verify", "estimated_duration": 30}]


def real_now() -> datetime:
    return datetime.now(UTC)


def ahead() -> datetime:
    return datetime.now(UTC) + SKEW


@pytest.fixture(params=["redis", "postgresql"])
def clocked_url(request: pytest.FixtureRequest) -> str:
    """A store with a clock of its own, that every worker reads."""
    fixture = "redis_url" if request.param == "redis" else "postgres_url"
    return str(request.getfixturevalue(fixture))


def duration(svc: MigrationService, phase: str) -> float:
    p = svc.state("m").phases[phase]
    assert p.started_at is not None and p.completed_at is not None
    return (p.completed_at - p.started_at).total_seconds()


def test_workers_with_clocks_ten_minutes_apart_agree(clocked_url: str) -> None:
    a = MigrationService(clocked_url, LocalClock(ahead))
    b = MigrationService(clocked_url, LocalClock(real_now))
    t0 = real_now()
    a.initialize("m", PLAN, actor="a")

    b.execute("m", StartPhase("extract"), actor="b")
    time.sleep(0.3)
    a.execute("m", CompletePhase("extract"), actor="a")
    assert 0.25 < duration(a, "extract") < 1.5  # not 600.3 s

    a.execute("m", StartPhase("load"), actor="a")
    time.sleep(0.3)
    b.execute("m", CompletePhase("load"), actor="b")
    assert 0.25 < duration(b, "load") < 1.5  # not 0 s

    b.execute("m", StartPhase("verify"), actor="b")
    for i in range(1, 6):  # the hot path, both workers taking turns, progress and counters
        worker = a if i % 2 else b
        worker.update_phase_progress("m", "verify", 10 * i, actor="w")
        worker.update_metrics("m", increments={"successful_operations": 1}, actor="w")
        time.sleep(0.05)

    ea, eb = a.estimate("m"), b.estimate("m")
    assert ea.completion is not None and eb.completion is not None
    assert abs((ea.completion - eb.completion).total_seconds()) < 2.0  # not 1,000 s apart
    oa, ob = a.overview("m"), b.overview("m")
    assert abs(oa.elapsed_seconds - ob.elapsed_seconds) < 2.0

    events = a.events("m")
    times = [e.ts for e in events]
    assert times == sorted(times)  # never backwards along the log
    t1 = real_now()
    # every time is the store's, near the real now: none is A's, ten minutes ahead
    assert all(t0 - timedelta(seconds=5) <= t <= t1 + timedelta(seconds=5) for t in times)
    state = a.state("m")
    assert state.created_at <= state.phases["extract"].started_at <= t1 + timedelta(seconds=5)  # type: ignore[operator]


def test_a_clock_far_from_the_stores_is_told_once(clocked_url: str, caplog: pytest.LogCaptureFixture) -> None:
    setup = MigrationService(clocked_url)
    setup.initialize("m", PLAN, actor="t")
    setup.execute("m", StartPhase("extract"), actor="t")
    caplog.set_level(logging.WARNING, logger="migratrack")
    near = MigrationService(clocked_url, LocalClock(lambda: real_now() + timedelta(seconds=1)))
    near.update_phase_progress("m", "extract", 10, actor="near")
    assert not [r for r in caplog.records if "clock" in r.getMessage()]

    far = MigrationService(clocked_url, LocalClock(ahead))
    far.update_phase_progress("m", "extract", 20, actor="far")
    far.execute("m", StartPhase("load"), actor="far")
    far.update_phase_progress("m", "extract", 30, actor="far")
    far.initialize("m2", PLAN, actor="far")
    warnings = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert len(warnings) == 1
    assert "600" in warnings[0] and "ahead of the store's" in warnings[0]


def test_an_injected_clock_stamps_everything(store: Storage, clock: FakeClock) -> None:
    """A clock given to the service (not a LocalClock) is the authority, on every store: what
    tests rely on to drive time."""
    svc = MigrationService(store, clock)
    svc.initialize("m", PLAN, actor="t")
    clock.advance(60)
    svc.execute("m", StartPhase("extract"), actor="t")
    clock.advance(90)
    svc.update_phase_progress("m", "extract", 50, actor="t")
    svc.execute("m", CompletePhase("extract"), actor="t")
    state = svc.state("m")
    assert state.created_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert state.phases["extract"].started_at == datetime(2026, 1, 1, 12, 1, tzinfo=UTC)
    assert duration(svc, "extract") == 90
    assert [e.ts for e in svc.events("m")][-2:] == [clock(), clock()]


def test_event_times_never_go_back_whatever_time_a_caller_gives(store: Storage, clock: FakeClock) -> None:
    t = clock()
    svc = MigrationService(store, clock)
    svc.initialize("m", PLAN, actor="t")
    svc.execute("m", StartPhase("extract"), actor="t")
    late = t + timedelta(seconds=10)
    store.merge_progress("m", "extract", None, progress=10, done=None, add=None, ts=late, actor="w")
    # a writer whose clock is behind: its writes are stamped at the last event's time
    store.merge_progress("m", "extract", None, progress=20, done=None, add=None, ts=t - timedelta(seconds=30),
                         actor="slow")
    store.increment_counters("m", {"successful_operations": 1}, ts=t - timedelta(minutes=5), actor="slow")
    store.merge_many("m", [], ts=t, actor="slow")
    seen: list[datetime | None] = []

    def fn(state: Any) -> Change:
        seen.append(state.as_of)
        return Change(events=[NewEvent("phase.note", t - timedelta(hours=1), "slow", {})])

    store.transact("m", fn, ts=t - timedelta(minutes=1))
    assert seen == [late]  # the rules' now: not before the last event either
    events = store.events("m")
    times = [e.ts for e in events]
    assert times == sorted(times)
    assert times[-4:] == [late] * 4


def test_the_store_stamps_a_write_given_no_time(store: Storage) -> None:
    state = build_state("m", PLAN, real_now())
    store.create(state, [NewEvent("migration.initialized", state.created_at, "t", {})])
    before = real_now()
    store.increment_counters("m", {"successful_operations": 1}, ts=None, actor="t")
    after = real_now()
    [_, event] = store.events("m")
    # the store's clock (Redis TIME, PostgreSQL clock_timestamp()) or this process's: both are
    # this machine's here
    assert before - timedelta(seconds=1) <= event.ts <= after + timedelta(seconds=1)
    loaded = store.load("m")
    if store.has_clock:
        assert loaded.as_of is not None and before - timedelta(seconds=1) <= loaded.as_of
        assert store.store_time() is not None
    else:
        assert loaded.as_of is None and store.store_time() is None


def test_an_embedded_store_uses_the_callers_clock(tmp_path: Any) -> None:
    """SQLite and memory have no clock of their own: the caller's machine is the one machine."""
    for url in ("memory://", f"sqlite:///{tmp_path}/m.db"):
        store = open_storage(url)
        local = MigrationService(store, LocalClock(lambda: datetime(2030, 1, 1, tzinfo=UTC)))
        local.initialize("m", PLAN, actor="t")
        assert store.load("m").created_at == datetime(2030, 1, 1, tzinfo=UTC)
        store.close()


def test_postgres_stamps_a_write_when_it_runs_not_when_it_queued(postgres_url: str) -> None:
    """clock_timestamp() under the migration's row lock, not now() (the statement's start): a
    write that waited behind a transition is stamped after it, as it took effect."""
    import threading

    import psycopg

    svc = MigrationService(postgres_url)
    svc.initialize("m", PLAN, actor="t")
    svc.execute("m", StartPhase("extract"), actor="t")
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT 1 FROM mt_migrations WHERE id = 'm' FOR UPDATE")  # a transition's lock
        writer = threading.Thread(target=svc.update_phase_progress, args=("m", "extract", 50), kwargs={"actor": "w"})
        queued = real_now()
        writer.start()
        time.sleep(0.5)
        released = real_now()
        holder.commit()
    writer.join()
    last = svc.events("m")[-1]
    assert last.type == "phase.progress"
    assert last.ts >= released - timedelta(milliseconds=50) > queued


WORKER = """
import sys, time
from datetime import UTC, datetime, timedelta
from migratrack.core.commands import CompletePhase, StartPhase
from migratrack.service import LocalClock, MigrationService

svc = MigrationService(sys.argv[1], LocalClock(lambda: datetime.now(UTC) + timedelta(minutes=10)))
for line in sys.stdin:  # the parent says what to do, one command a line
    verb, phase = line.split()
    if verb == "start":
        svc.execute("m", StartPhase(phase), actor="ahead")
    elif verb == "complete":
        svc.execute("m", CompletePhase(phase), actor="ahead")
    elif verb == "beat":
        svc.heartbeat("m", actor="ahead")
    print("ok", flush=True)
"""


def test_a_worker_process_ten_minutes_ahead_agrees_with_one_on_time(clocked_url: str) -> None:
    """The same as above across two processes: a worker whose machine's clock is 10 minutes
    ahead and one whose clock is right give real durations, and the ahead one's heartbeat reads
    as now (the stall check compares it with the store's clock)."""
    import subprocess
    import sys

    from migratrack.alerts.records import last_beat

    local = MigrationService(clocked_url, LocalClock(real_now))
    local.initialize("m", PLAN, actor="local")
    proc = subprocess.Popen([sys.executable, "-c", WORKER, clocked_url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None

    def ahead_does(line: str) -> None:
        proc.stdin.write(line + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        assert proc.stdout.readline().strip() == "ok"  # type: ignore[union-attr]

    try:
        ahead_does("start extract")
        time.sleep(0.3)
        local.execute("m", CompletePhase("extract"), actor="local")
        local.execute("m", StartPhase("load"), actor="local")
        time.sleep(0.3)
        ahead_does("complete load")
        ahead_does("beat m")
    finally:
        proc.stdin.close()
        proc.wait(30)
        proc.stdout.close()
    assert 0.25 < duration(local, "extract") < 1.5  # not 0 s
    assert 0.25 < duration(local, "load") < 1.5  # not 600.3 s
    beat = last_beat(local.storage, "m")
    assert beat is not None and abs((beat - real_now()).total_seconds()) < 5  # not 10 minutes ahead
    times = [e.ts for e in local.events("m")]
    assert times == sorted(times)
    local.storage.close()
