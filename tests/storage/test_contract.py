"""The storage contract (storage/base.py), one suite over memory, SQLite, Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from migratrack.core.commands import Cancel, CompletePhase, CompleteSubTask, Pause, Resume, StartPhase, StartSubTask
from migratrack.core.models import NewEvent, build_state
from migratrack.core.rules import Change, Rules
from migratrack.errors import (
    AlertNotFound,
    DependencyNotMet,
    MigrationAlreadyExists,
    MigrationNotFound,
)
from migratrack.service import MigrationService
from migratrack.storage import MergeResult, Storage, open_storage
from migratrack.storage.base import TokenRecord

FakeClock = Any  # the `clock` fixture of tests/conftest.py

PLAN = [
    {"id": "extract", "name": "Extract — ünïcödé ✓", "description": "copy rows", "estimated_duration": 30,
     "sub_tasks": [{"id": "t1", "name": "table one"}, "t2", {"id": "t3", "estimated_duration": 5}],
     "metadata": {"owner": "data-team", "nested": {"k": [1, 2]}}},
    {"id": "load", "dependencies": ["extract"], "estimated_duration": 10},
    {"id": "verify", "dependencies": ["load"], "requires_approval": True},
]


@pytest.fixture
def svc(store: Storage, clock: FakeClock) -> MigrationService:
    return MigrationService(store, clock)


def init(svc: MigrationService, mid: str = "m1", **kw: object) -> None:
    svc.initialize(mid, PLAN, name="Move the warehouse", actor="tester", metadata={"ticket": "OPS-1"}, **kw)  # type: ignore[arg-type]


def test_create_then_load_round_trips_every_field(store: Storage, clock: FakeClock) -> None:
    state = build_state("m1", PLAN, clock(), "Move the warehouse")
    state.metadata["ticket"] = "OPS-1"
    seq = store.create(state, [NewEvent("migration.initialized", clock(), "a", {"name": state.name})])
    assert seq == 1
    loaded = store.load("m1")
    assert loaded.header_dict() == state.header_dict()
    assert list(loaded.phases) == ["extract", "load", "verify"]
    for pid, phase in state.phases.items():
        assert loaded.phases[pid].to_dict() == phase.to_dict()
    assert list(loaded.phases["extract"].sub_tasks) == ["t1", "t2", "t3"]
    assert loaded.seq == 1
    assert loaded.metrics == state.metrics
    assert store.exists("m1") and not store.exists("nope")


def test_create_twice_is_refused_and_replace_drops_history(svc: MigrationService, store: Storage) -> None:
    init(svc)
    svc.execute("m1", StartPhase("extract"), actor="w")
    svc.create_alert("m1", "error", "boom", actor="w")
    state = build_state("m1", PLAN, svc.now())
    with pytest.raises(MigrationAlreadyExists):
        store.create(state, [])
    assert store.create(state, [NewEvent("migration.initialized", svc.now(), "a", {})], replace=True) == 1
    assert [e.type for e in store.events("m1")] == ["migration.initialized"]
    assert store.alerts("m1") == []
    assert store.load("m1").phases["extract"].status.value == "pending"


def test_unknown_migration_is_not_found_everywhere(store: Storage, clock: FakeClock) -> None:
    with pytest.raises(MigrationNotFound):
        store.load("ghost")
    with pytest.raises(MigrationNotFound):
        store.control("ghost")
    with pytest.raises(MigrationNotFound):
        store.transact("ghost", lambda s: Change())
    with pytest.raises(MigrationNotFound):
        store.increment_counters("ghost", {"successful_operations": 1}, ts=clock(), actor="a")
    with pytest.raises(MigrationNotFound):
        MigrationService(store, clock).update_phase_progress("ghost", "p", 5, actor="a")
    assert store.delete("ghost") is False


def test_list_ids_oldest_first_and_delete(svc: MigrationService, store: Storage, clock: FakeClock) -> None:
    for mid in ("zeta", "alpha", "mid{dle}"):
        init(svc, mid)
        clock.advance(1)
    assert store.list_ids() == ["zeta", "alpha", "mid{dle}"]
    assert store.delete("alpha") is True
    assert store.list_ids() == ["zeta", "mid{dle}"]
    assert not store.exists("alpha")
    with pytest.raises(MigrationNotFound):
        store.load("alpha")


def test_sub_task_scopes(svc: MigrationService, store: Storage) -> None:
    init(svc)
    assert set(store.load("m1", sub_tasks="all").phases["extract"].sub_tasks) == {"t1", "t2", "t3"}
    assert list(store.load("m1", sub_tasks="extract").phases["extract"].sub_tasks) == ["t1", "t2", "t3"]
    assert store.load("m1", sub_tasks="load").phases["extract"].sub_tasks == {}
    assert store.load("m1", sub_tasks=None).phases["extract"].sub_tasks == {}


def test_transitions_number_events_without_gaps(svc: MigrationService, store: Storage) -> None:
    init(svc)
    svc.execute("m1", StartPhase("extract"), actor="w1")
    for sid in ("t1", "t2", "t3"):
        svc.execute("m1", StartSubTask("extract", sid), actor="w1")
        svc.execute("m1", CompleteSubTask("extract", sid), actor="w1")
    change = svc.execute("m1", CompletePhase("extract"), actor="w1")
    events = store.events("m1")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert change.last_seq == events[-1].seq == store.load("m1").seq
    assert events[-1].type == "phase.completed" and events[-1].actor == "w1"
    state = store.load("m1")
    assert state.phases["extract"].status.value == "completed"
    assert state.phases["extract"].progress == 100.0
    assert all(s.status.value == "completed" for s in state.phases["extract"].sub_tasks.values())


def test_a_rejected_command_writes_nothing(svc: MigrationService, store: Storage) -> None:
    init(svc)
    before = store.load("m1")
    with pytest.raises(DependencyNotMet):
        svc.execute("m1", StartPhase("load"), actor="w")

    def half_then_fail(state):  # type: ignore[no-untyped-def]
        Rules(state, svc.now(), "w").start_phase("extract")
        raise RuntimeError("crash inside the transaction")

    with pytest.raises(RuntimeError):
        store.transact("m1", half_then_fail)
    after = store.load("m1")
    assert after.seq == before.seq
    assert after.phases["extract"].status.value == "pending"
    assert len(store.events("m1")) == before.seq


def test_empty_change_writes_nothing(svc: MigrationService, store: Storage) -> None:
    init(svc)
    svc.execute("m1", StartPhase("extract"), actor="w")
    seq = store.load("m1").seq
    change = svc.execute("m1", StartPhase("extract"), actor="w")  # idempotent
    assert change.last_seq == seq and store.load("m1").seq == seq


def test_merge_progress_matches_the_reference_store(store: Storage, clock: FakeClock) -> None:
    """A seeded random mix of ticks gives exactly the same results and state as memory://."""
    plan = [{"id": "p1"}, {"id": "p2", "sub_tasks": ["a", "b", "c"]}, {"id": "p3"}]
    ref = open_storage("memory://")
    services = [MigrationService(s, clock) for s in (ref, store)]
    for s in services:
        s.initialize("m", plan, actor="a")
        s.execute("m", StartPhase("p1"), actor="a")
        s.execute("m", StartPhase("p2"), actor="a")
        s.execute("m", StartSubTask("p2", "a"), actor="a")
        s.execute("m", StartSubTask("p2", "b"), actor="a")
        s.update_phase_progress("m", "p1", total=500, actor="a")
    rng = random.Random(42)
    for i in range(300):
        clock.advance(0.1)
        kind = rng.random()
        if kind < 0.35:
            args: dict[str, object] = {"progress": rng.choice([None, rng.uniform(0, 100), 100 / 3, 12.5])}
            args["done"] = rng.choice([None, rng.randint(0, 520)])
            args["add"] = rng.choice([None, 0, rng.randint(1, 40)])
            target = ("p1", None)
        elif kind < 0.5:
            args = {"progress": rng.uniform(0, 100), "done": None, "add": None}
            target = (rng.choice(["p1", "p3"]), None)
        else:
            args = {"progress": rng.choice([rng.uniform(0, 100), 33.333333333333336, 1e-9]), "done": None,
                    "add": None}
            target = ("p2", rng.choice(["a", "b", "c", "zz"]))
        results = [s.storage.merge_progress("m", target[0], target[1], ts=clock(), actor=f"w{i}", **args)  # type: ignore[arg-type]
                   for s in services]
        assert results[0] == results[1], (i, target, args)
        if i == 150:
            for s in services:
                s.update_phase_progress("m", "p1", total=2000, actor="a")
    a, b = ref.load("m"), store.load("m")
    for pid in a.phases:
        assert b.phases[pid].to_dict() == a.phases[pid].to_dict()
    assert b.seq == a.seq
    assert [(e.seq, e.type, e.payload) for e in store.events("m", 0, 10_000)] == [
        (e.seq, e.type, e.payload) for e in ref.events("m", 0, 10_000)]


def test_merge_progress_answers(svc: MigrationService, store: Storage, clock: FakeClock) -> None:
    init(svc)
    ts = clock()
    assert store.merge_progress("m1", "extract", None, progress=5, done=None, add=None, ts=ts, actor="a") \
        is MergeResult.FALLBACK  # pending: the rules decide
    svc.execute("m1", StartPhase("extract"), actor="a")
    assert store.merge_progress("m1", "extract", None, progress=5, done=None, add=None, ts=ts, actor="a") \
        is MergeResult.APPLIED
    assert store.merge_progress("m1", "extract", None, progress=4, done=None, add=None, ts=ts, actor="a") \
        is MergeResult.STALE
    assert store.merge_progress("m1", "extract", "t1", progress=4, done=None, add=None, ts=ts, actor="a") \
        is MergeResult.FALLBACK  # sub-task not started
    assert store.merge_progress("m1", "extract", "nope", progress=4, done=None, add=None, ts=ts, actor="a") \
        is MergeResult.FALLBACK
    assert store.merge_progress("m1", "nope", None, progress=4, done=None, add=None, ts=ts, actor="a") \
        is MergeResult.FALLBACK
    svc.update_phase_progress("m1", "extract", done=10, total=20, actor="a")
    assert store.merge_progress("m1", "extract", None, progress=None, done=None, add=11, ts=ts, actor="a") \
        is MergeResult.FALLBACK  # would pass the total
    assert store.merge_progress("m1", "extract", None, progress=None, done=None, add=5, ts=ts, actor="a") \
        is MergeResult.APPLIED
    phase = store.load("m1").phases["extract"]
    assert (phase.done, phase.total, phase.progress) == (15, 20, 75.0)
    last = store.events("m1")[-1]
    assert last.type == "phase.progress"
    assert last.payload == {"phase": "extract", "progress": 75.0, "done": 15, "total": 20}
    assert last.ts == ts and last.actor == "a"


def test_counters_add_up_and_log_an_event(svc: MigrationService, store: Storage, clock: FakeClock) -> None:
    init(svc)
    out = store.increment_counters("m1", {"successful_operations": 5, "total_data_migrated": 1 << 40},
                                   ts=clock(), actor="w")
    assert out == {"successful_operations": 5, "failed_operations": 0, "total_data_migrated": 1 << 40}
    out = store.increment_counters("m1", {"failed_operations": 2, "successful_operations": 1}, ts=clock(), actor="w")
    assert out == {"successful_operations": 6, "failed_operations": 2, "total_data_migrated": 1 << 40}
    assert store.events("m1")[-1].payload == {"increment": {"failed_operations": 2, "successful_operations": 1}}
    m = store.load("m1").metrics
    assert (m.successful_operations, m.failed_operations, m.total_data_migrated) == (6, 2, 1 << 40)
    svc.update_metrics("m1", {"migration_speed": 12.5, "resourceUtilization": {"cpu": 40}}, actor="w")
    m = store.load("m1").metrics
    assert m.successful_operations == 6 and m.gauges["migration_speed"] == 12.5
    assert m.gauges["resource_utilization"] == {"cpu": 40.0}


def test_events_after_and_limit(svc: MigrationService, store: Storage) -> None:
    init(svc)
    svc.execute("m1", StartPhase("extract"), actor="w")
    for p in range(1, 30):
        svc.update_phase_progress("m1", "extract", p, actor="w")
    assert [e.seq for e in store.events("m1", after=5, limit=3)] == [6, 7, 8]
    assert store.events("m1", after=31) == []
    assert len(store.events("m1", after=0, limit=1000)) == 31


def test_alerts_newest_first_acknowledge_and_counts(svc: MigrationService, store: Storage, clock: FakeClock) -> None:
    init(svc)
    ids = []
    for i, level in enumerate(["info", "warning", "error", "critical", "warning"]):
        clock.advance(1)
        ids.append(svc.create_alert("m1", level, f"message {i} ✓", actor="w").id)
    assert [a.id for a in store.alerts("m1")] == ids[::-1]
    assert [a.id for a in store.alerts("m1", limit=2)] == ids[:2:-1][:2]
    svc.acknowledge_alert("m1", ids[4], "ops", actor="ops")
    unacked = store.alerts("m1", unacknowledged_only=True)
    assert [a.id for a in unacked] == ids[3::-1]
    got = store.get_alert("m1", ids[4])
    assert got.acknowledged_by == "ops" and got.message == "message 4 ✓"
    with pytest.raises(AlertNotFound):
        store.get_alert("m1", "missing")
    state = store.load("m1")
    assert state.alert_counts == {"info": 1, "warning": 2, "error": 1, "critical": 1}
    assert state.unacknowledged_alerts == 4


def test_alerts_past_the_cap_are_refused_and_nothing_is_written(store: Storage, clock: FakeClock) -> None:
    from migratrack.core.plan import Limits
    from migratrack.errors import LimitExceeded

    svc = MigrationService(store, clock, limits=Limits(max_alerts=3))
    init(svc)
    assert store.count_alerts("m1") == 0
    first = svc.create_alert("m1", "info", "one", actor="w", op_id="op-1")
    svc.create_alert("m1", "info", "two", actor="w")
    svc.create_alert("m1", "info", "three", actor="w")
    assert store.count_alerts("m1") == 3
    seq = store.load("m1").seq
    with pytest.raises(LimitExceeded, match=r"keeps 3 alerts, the most allowed \(3\).*MIGRATRACK_MAX_ALERTS"):
        svc.create_alert("m1", "error", "four", actor="w")
    assert store.count_alerts("m1") == 3 and store.load("m1").seq == seq  # no alert, no event
    # a repeat of a keyed create answers the alert it made; the automatic rules are never refused
    assert svc.create_alert("m1", "info", "one", actor="w", op_id="op-1").id == first.id
    svc.create_alert("m1", "critical", "stalled", actor="dispatcher", source="rule:stall")
    assert [a.message for a in store.alerts("m1", limit=1)] == ["stalled"]
    with pytest.raises(MigrationNotFound):
        store.count_alerts("nope")


def test_control_follows_pause_resume_cancel(svc: MigrationService, store: Storage) -> None:
    init(svc)
    assert store.control("m1").value == "running"
    svc.execute("m1", Pause("risky step"), actor="ops")
    assert store.control("m1").value == "paused"
    svc.execute("m1", Resume(), actor="ops")
    svc.execute("m1", Cancel(), actor="ops")
    assert store.control("m1").value == "cancelled"
    state = store.load("m1")
    assert state.cancelled_at is not None and len(state.pauses) == 1


def test_tokens(store: Storage) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    store.save_token(TokenRecord("a", "admin", "admin", "h1", t0))
    store.save_token(TokenRecord("b", "ci", "operator", "h2", t0 + timedelta(seconds=1)))
    found = store.find_token("h2")
    assert found is not None and found.name == "ci" and found.role == "operator"
    assert store.find_token("nope") is None
    store.save_token(TokenRecord("b", "ci", "operator", "h3", t0 + timedelta(seconds=1), revoked_at=t0))
    assert store.find_token("h2") is None
    revoked = store.find_token("h3")
    assert revoked is not None and revoked.revoked_at == t0
    assert [t.id for t in store.list_tokens()] == ["a", "b"]


def test_purge_finished_drops_only_finished_migrations(svc: MigrationService, store: Storage,
                                                       clock: FakeClock) -> None:
    svc.initialize("done", [{"id": "only"}], actor="a")
    svc.execute("done", StartPhase("only"), actor="a")
    svc.execute("done", CompletePhase("only"), actor="a")
    clock.advance(1)
    svc.initialize("cancelled", [{"id": "only"}], actor="a")
    svc.execute("cancelled", Cancel(), actor="a")
    clock.advance(1)
    svc.initialize("active", [{"id": "only"}], actor="a")
    svc.execute("active", StartPhase("only"), actor="a")
    clock.advance(days=40)
    svc.initialize("recent", [{"id": "only"}], actor="a")
    svc.execute("recent", StartPhase("only"), actor="a")
    svc.execute("recent", CompletePhase("only"), actor="a")
    assert store.purge_finished(clock() - timedelta(days=30)) == ["done", "cancelled"]
    assert store.list_ids() == ["active", "recent"]
    assert store.purge_finished(clock() - timedelta(days=30)) == []


def test_subscribe_replays_then_follows(svc: MigrationService, store: Storage) -> None:
    init(svc)
    svc.execute("m1", StartPhase("extract"), actor="w")

    async def scenario() -> list[tuple[int, str]]:
        seen: list[tuple[int, str]] = []

        async def read() -> None:
            async for e in store.subscribe("m1", after=1, poll_interval=0.05):
                seen.append((e.seq, e.type))
                if len(seen) == 4:
                    return

        task = asyncio.create_task(read())
        await asyncio.sleep(0.3)
        await asyncio.to_thread(svc.update_phase_progress, "m1", "extract", 10, actor="w")
        await asyncio.to_thread(svc.update_metrics, "m1", None, {"successful_operations": 1}, actor="w")
        await asyncio.to_thread(svc.update_phase_progress, "m1", "extract", 20, actor="w")
        await asyncio.wait_for(task, 5)
        return seen

    assert asyncio.run(scenario()) == [(2, "phase.started"), (3, "phase.progress"), (4, "metrics.updated"),
                                       (5, "phase.progress")]


def test_merge_many_matches_one_merge_at_a_time(store: Storage, clock: FakeClock) -> None:
    """Batches give the same answers, state and events as the reference store's single merges."""
    from migratrack.storage.base import ProgressMerge

    plan = [{"id": "p1"}, {"id": "p2", "sub_tasks": ["a", "b"]}, {"id": "p3"}]
    ref = open_storage("memory://")
    services = [MigrationService(s, clock) for s in (ref, store)]
    for s in services:
        s.initialize("m", plan, actor="a")
        s.execute("m", StartPhase("p1"), actor="a")
        s.execute("m", StartPhase("p2"), actor="a")
        s.execute("m", StartSubTask("p2", "a"), actor="a")
        s.update_phase_progress("m", "p1", total=300, actor="a")
    rng = random.Random(7)
    for i in range(40):
        clock.advance(0.1)
        batch = []
        for _ in range(rng.randint(1, 8)):
            kind = rng.random()
            if kind < 0.5:
                batch.append(ProgressMerge("p1", None, rng.choice([None, rng.uniform(0, 100)]),
                                           rng.choice([None, rng.randint(0, 320)]),
                                           rng.choice([None, rng.randint(1, 9)])))
            elif kind < 0.9:
                batch.append(ProgressMerge("p2", rng.choice(["a", "b", "zz"]), rng.uniform(0, 100)))
            else:
                batch.append(ProgressMerge(rng.choice(["p3", "nope"]), None, rng.uniform(0, 100)))
        expected = [ref.merge_progress("m", b.phase_id, b.sub_task_id, progress=b.progress, done=b.done,
                                       add=b.add, ts=clock(), actor=f"w{i}") for b in batch]
        assert store.merge_many("m", batch, ts=clock(), actor=f"w{i}") == expected, i
    a, b = ref.load("m"), store.load("m")
    assert {p: ph.to_dict() for p, ph in b.phases.items()} == {p: ph.to_dict() for p, ph in a.phases.items()}
    assert [(e.seq, e.type, e.actor, e.payload) for e in store.events("m", 0, 10_000)] == [
        (e.seq, e.type, e.actor, e.payload) for e in ref.events("m", 0, 10_000)]
    assert store.merge_many("m", [], ts=clock(), actor="w") == []


#: what each store declares it is: (embedded, has_change_feed)
DECLARED = {"memory": (True, False), "sqlite": (True, False), "redis": (False, True), "postgresql": (False, True)}


def test_each_store_declares_what_it_is(store: Storage, store_url: str) -> None:
    """The server runs embedded stores on its event loop and follows a change feed instead of
    polling: each store must say which it is, as a plain bool, whatever its class is called."""
    declared = (store.embedded, store.has_change_feed)
    assert all(type(flag) is bool for flag in declared)
    assert declared == DECLARED[store_url.split("://", 1)[0]]


def test_a_change_feed_wakes_a_reader_on_the_write(svc: MigrationService, store: Storage) -> None:
    """A store with ``has_change_feed`` hands a subscriber the new event at once, however long
    the poll interval; one without it waits for the next poll (so the server polls it itself)."""
    init(svc)
    after = store.load("m1", sub_tasks=None).seq

    async def first_new_event(wait: float) -> int | None:
        feed = store.subscribe("m1", after=after, poll_interval=60)
        waiter = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.3)  # the reader is waiting before the write
        await asyncio.to_thread(svc.execute, "m1", StartPhase("extract"), actor="w")
        try:
            return (await asyncio.wait_for(waiter, wait)).seq
        except TimeoutError:
            return None
        finally:
            await feed.aclose()  # type: ignore[attr-defined]

    if store.has_change_feed:
        assert asyncio.run(first_new_event(5.0)) == after + 1
    else:
        assert asyncio.run(first_new_event(1.0)) is None
