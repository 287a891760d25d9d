"""Property tests: random command sequences keep the domain's invariants, on every embedded store."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migratrack import MigrationProgressTracker, MigratrackError
from migratrack.core.commands import (
    CompletePhase,
    CompleteSubTask,
    FailPhase,
    FailSubTask,
    Pause,
    Resume,
    RetryPhase,
    SkipPhase,
    StartPhase,
    StartSubTask,
)
from migratrack.core.progress import phase_progress
from migratrack.core.rules import ERROR_RATE_ALERTED
from migratrack.service import MigrationService
from migratrack.storage import Storage, open_storage

PLAN: list[dict[str, Any]] = [
    {"id": "a", "estimated_duration": 5, "sub_tasks": [{"id": "s1", "estimated_duration": 1}, "s2"]},
    {"id": "b", "dependencies": ["a"], "estimated_duration": 10},
    {"id": "c", "dependencies": ["a"]},
    {"id": "d", "dependencies": ["b", "c"], "estimated_duration": 2},
]
PHASES = [p["id"] for p in PLAN]
SUBS = ["s1", "s2"]
COUNTERS = ["successful_operations", "failed_operations", "total_data_migrated"]
DEPS = {p["id"]: p.get("dependencies", []) for p in PLAN}

phase_ids = st.sampled_from(PHASES)
percent = st.one_of(st.floats(min_value=0, max_value=100), st.integers(0, 100),
                    st.sampled_from([float("nan"), float("inf"), -1.0, 100.5]))
commands = st.one_of(
    st.tuples(st.just("start"), phase_ids),
    st.tuples(st.just("complete"), phase_ids),
    st.tuples(st.just("fail"), phase_ids),
    st.tuples(st.just("retry"), phase_ids),
    st.tuples(st.just("skip"), phase_ids),
    st.tuples(st.just("progress"), phase_ids, percent),
    st.tuples(st.just("counts"), phase_ids, st.integers(0, 120), st.one_of(st.none(), st.integers(0, 100))),
    st.tuples(st.just("add"), phase_ids, st.integers(0, 30)),
    st.tuples(st.just("sub_start"), st.sampled_from(SUBS)),
    st.tuples(st.just("sub_progress"), st.sampled_from(SUBS), percent),
    st.tuples(st.just("sub_complete"), st.sampled_from(SUBS)),
    st.tuples(st.just("sub_fail"), st.sampled_from(SUBS)),
    st.tuples(st.just("increment"), st.sampled_from(COUNTERS), st.integers(0, 1000)),
    st.tuples(st.just("pause")),
    st.tuples(st.just("resume")),
    st.tuples(st.just("tick"), st.integers(1, 600)),
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path_factory.mktemp('prop')}/p.db"
    s = open_storage(url)
    yield s
    s.close()


def apply(svc: MigrationService, mid: str, clock: Clock, cmd: tuple[Any, ...]) -> None:
    kind, *args = cmd
    a = "w"
    if kind == "start":
        svc.execute(mid, StartPhase(args[0]), actor=a)
    elif kind == "complete":
        svc.execute(mid, CompletePhase(args[0]), actor=a)
    elif kind == "fail":
        svc.execute(mid, FailPhase(args[0], "boom"), actor=a)
    elif kind == "retry":
        svc.execute(mid, RetryPhase(args[0]), actor=a)
    elif kind == "skip":
        svc.execute(mid, SkipPhase(args[0], "not needed"), actor=a)
    elif kind == "progress":
        svc.update_phase_progress(mid, args[0], args[1], actor=a)
    elif kind == "counts":
        svc.update_phase_progress(mid, args[0], done=args[1], total=args[2], actor=a)
    elif kind == "add":
        svc.update_phase_progress(mid, args[0], add=args[1], actor=a)
    elif kind == "sub_start":
        svc.execute(mid, StartSubTask("a", args[0]), actor=a)
    elif kind == "sub_progress":
        svc.update_sub_task_progress(mid, "a", args[0], args[1], actor=a)
    elif kind == "sub_complete":
        svc.execute(mid, CompleteSubTask("a", args[0]), actor=a)
    elif kind == "sub_fail":
        svc.execute(mid, FailSubTask("a", args[0], "sub boom"), actor=a)
    elif kind == "increment":
        svc.update_metrics(mid, increments={args[0]: args[1]}, actor=a)
    elif kind == "pause":
        svc.execute(mid, Pause(), actor=a)
    elif kind == "resume":
        svc.execute(mid, Resume(), actor=a)
    elif kind == "tick":
        clock.now += timedelta(seconds=args[0])


def fingerprint(svc: MigrationService, mid: str) -> Any:
    s = svc.state(mid)
    return ({pid: p.to_dict() for pid, p in s.phases.items()}, s.metrics.to_dict(), s.header_dict(), s.seq)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cmds=st.lists(commands, min_size=1, max_size=40))
def test_random_commands_keep_the_invariants(store: Storage, cmds: list[tuple[Any, ...]]) -> None:
    clock = Clock()
    svc = MigrationService(store, clock)
    mid = uuid.uuid4().hex
    svc.initialize(mid, PLAN, actor="init")
    sums = dict.fromkeys(COUNTERS, 0)
    last_overall = 0.0
    for cmd in cmds:
        before = fingerprint(svc, mid)
        try:
            apply(svc, mid, clock, cmd)
        except MigratrackError:
            # a rejected call writes nothing
            assert fingerprint(svc, mid) == before, cmd
        else:
            if cmd[0] == "increment":
                sums[cmd[1]] += cmd[2]
        state = svc.state(mid)
        overview = svc.overview(mid)
        # progress stays in [0, 100]
        for p in state.phases.values():
            assert 0 <= p.progress <= 100
            assert 0 <= phase_progress(p) <= 100
            assert all(0 <= s.progress <= 100 for s in p.sub_tasks.values())
        assert 0 <= overview.overall_progress <= 100
        # no phase runs (or ran) while a dependency is unfinished
        for pid, p in state.phases.items():
            if p.status.value in ("in_progress", "completed", "failed") and p.started_at is not None:
                assert all(state.phases[d].status.finished for d in DEPS[pid]), (pid, cmd)
        # a completed phase shows 100 and its sub-tasks are all finished
        for p in state.phases.values():
            if p.status.value == "completed":
                assert phase_progress(p) == 100
                assert all(s.status.finished for s in p.sub_tasks.values())
        # overall progress never drops, except across a retry
        if cmd[0] != "retry":
            assert overview.overall_progress >= last_overall - 1e-9, cmd
        last_overall = overview.overall_progress
        # the estimate is an interval around its point, never in the past
        est = svc.estimate(mid)
        if est.completion is not None:
            assert est.earliest is not None and est.latest is not None
            assert est.earliest <= est.completion <= est.latest
            assert est.completion >= clock.now or est.completion == state.finished_at
            assert all(not state.phases[p].status.finished for p in est.critical_path)
        # counters are the sum of the increments
        m = state.metrics
        assert (m.successful_operations, m.failed_operations, m.total_data_migrated) == tuple(sums.values())
    # the event log is gap-free and ends at the state's sequence number
    events = svc.events(mid, limit=100_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].seq == svc.state(mid).seq
    assert all(e.ts <= clock.now for e in events)


tracker_calls = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 50)),
    st.tuples(st.just("percent"), st.floats(0, 100)),
    st.tuples(st.just("ops"), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.just("flush")),
), max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=tracker_calls, coalesce=st.sampled_from([0.0, 0.05, 60.0]))
def test_tracker_coalescing_loses_no_increment(store: Storage, calls: list[tuple[Any, ...]], coalesce: float) -> None:
    mid = uuid.uuid4().hex
    t = MigrationProgressTracker(mid, storage=store, coalesce=coalesce, actor="prop")
    t.initialize_migration([{"id": "p"}])
    t.start_phase("p")
    added = ok = failed = 0
    top = 0.0
    for call in calls:
        if call[0] == "add":
            t.add_progress("p", call[1])
            added += call[1]
        elif call[0] == "percent":
            t.update_phase_progress("p", call[1])
            top = max(top, call[1])
        elif call[0] == "ops":
            t.record(succeeded=call[1], failed=call[2])
            ok, failed = ok + call[1], failed + call[2]
        else:
            t.flush()
    t.close()
    state = MigrationService(store).state(mid)
    assert state.phases["p"].done == added
    assert state.phases["p"].progress == top
    assert (state.metrics.successful_operations, state.metrics.failed_operations) == (ok, failed)
    events = MigrationService(store).events(mid, limit=100_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Storage, Storage]]:
    memory = open_storage("memory://")
    sqlite = open_storage(f"sqlite:///{tmp_path_factory.mktemp('diff')}/d.db")
    yield memory, sqlite
    memory.close()
    sqlite.close()


@settings(max_examples=50, deadline=None)
@given(cmds=st.lists(commands, min_size=1, max_size=40))
def test_every_store_gives_the_same_answers(both: tuple[Storage, Storage], cmds: list[tuple[Any, ...]]) -> None:
    mid = uuid.uuid4().hex
    runs = []
    for store in both:
        clock = Clock()
        svc = MigrationService(store, clock)
        svc.initialize(mid, PLAN, actor="init")
        outcomes = []
        for cmd in cmds:
            try:
                apply(svc, mid, clock, cmd)
                outcomes.append(None)
            except MigratrackError as exc:
                outcomes.append(type(exc).__name__)
        state = svc.state(mid)
        events = [(e.seq, e.type, e.actor, e.ts, {k: v for k, v in e.payload.items() if k != "id"})
                  for e in svc.events(mid, limit=100_000)]
        runs.append((outcomes, {p: ph.to_dict() for p, ph in state.phases.items()}, state.metrics.to_dict(),
                     state.header_dict(), events, svc.overview(mid).model_dump(), svc.estimate(mid)))
    assert runs[0] == runs[1]


tracker_commands = st.lists(st.one_of(
    st.tuples(st.sampled_from(["start", "complete", "fail", "retry", "skip"]), phase_ids),
    st.tuples(st.just("percent"), phase_ids, st.floats(0, 100)),
    st.tuples(st.just("add"), phase_ids, st.integers(0, 20)),
    st.tuples(st.just("meta"), phase_ids, st.integers(0, 3)),
    st.tuples(st.sampled_from(["sub_start", "sub_complete", "sub_fail"]), st.sampled_from(SUBS)),
    st.tuples(st.just("sub_percent"), st.sampled_from(SUBS), st.floats(0, 100)),
    st.tuples(st.just("ops"), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.just("flush")),
), max_size=50)


def drive(t: MigrationProgressTracker, cmd: tuple[Any, ...]) -> None:
    kind, *args = cmd
    calls = {
        "start": lambda: t.start_phase(args[0]),
        "complete": lambda: t.complete_phase(args[0]),
        "fail": lambda: t.fail_phase(args[0], "boom"),
        "retry": lambda: t.retry_phase(args[0]),
        "skip": lambda: t.skip_phase(args[0], "no"),
        "percent": lambda: t.update_phase_progress(args[0], args[1]),
        "add": lambda: t.add_progress(args[0], args[1]),
        "meta": lambda: t.update_phase_progress(args[0], metadata={"step": args[1]}),
        "sub_start": lambda: t.start_sub_task("a", args[0]),
        "sub_complete": lambda: t.complete_sub_task("a", args[0]),
        "sub_fail": lambda: t.fail_sub_task("a", args[0], "sub boom"),
        "sub_percent": lambda: t.update_sub_task_progress("a", args[0], args[1]),
        "ops": lambda: t.record(succeeded=args[0], failed=args[1]),
        "flush": t.flush,
    }
    with contextlib.suppress(MigratrackError):  # rejected reports and transitions write nothing, in both runs
        calls[kind]()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cmds=tracker_commands)
def test_coalescing_ends_in_the_same_state_as_writing_every_call(
    store: Storage, cmds: list[tuple[Any, ...]]
) -> None:
    mid = uuid.uuid4().hex
    direct_store = open_storage("memory://")
    finals = []
    for storage, coalesce in ((store, 3600.0), (direct_store, 0.0)):
        clock = Clock()
        t = MigrationProgressTracker(mid, storage=storage, coalesce=coalesce, actor="w", clock=clock)
        try:
            t.initialize_migration(PLAN)
            for cmd in cmds:
                drive(t, cmd)
        finally:
            t.close()
        s = MigrationService(storage).state(mid)
        # coalesced counter increments are judged together: a failure rate that crossed the
        # alert threshold only between two writes raises no alert (and sets no flag)
        s.metadata.pop(ERROR_RATE_ALERTED, None)
        finals.append(({p: ph.to_dict() for p, ph in s.phases.items()}, s.metrics.to_dict(), s.header_dict()))
    assert finals[0] == finals[1]
