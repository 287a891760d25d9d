"""Scoped loads and the rules' counts (storage/base.py, "Scoped loads"), on every store: a
transition reads what it touches, and the rules still hold."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import pytest

from migratrack.core.commands import (
    ApprovePhase,
    CompletePhase,
    CompleteSubTask,
    FailPhase,
    FailSubTask,
    RetryPhase,
    SkipPhase,
    SkipSubTask,
    StartPhase,
    StartSubTask,
)
from migratrack.core.models import NewEvent, build_state, count_statuses
from migratrack.errors import (
    ApprovalRequired,
    DependencyNotMet,
    InvalidInput,
    MigratrackError,
    PhaseNotFound,
    RuleViolation,
    SubTaskNotFound,
)
from migratrack.service import MigrationService
from migratrack.storage import Storage

FakeClock = Any
A = "tester"
PLAN = [
    {"id": "a", "sub_tasks": [f"s{i}" for i in range(6)]},
    {"id": "b", "sub_tasks": ["x", "y"]},
    {"id": "c", "dependencies": ["a", "b"]},
    {"id": "d", "dependencies": ["c"], "requires_approval": True},
    {"id": "e"},
]


@pytest.fixture
def svc(store: Storage, clock: FakeClock) -> MigrationService:
    s = MigrationService(store, clock)
    s.initialize("m", PLAN, actor=A)
    return s


def full_counts(store: Storage) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """The counts as a whole load sees them (every row counted)."""
    state = store.load("m")
    return (count_statuses(state.phases.values()),
            {pid: count_statuses(p.sub_tasks.values()) for pid, p in state.phases.items()})


def kept_counts(store: Storage) -> tuple[dict[str, int] | None, dict[str, dict[str, int] | None]]:
    """The counts the rules kept, as a scoped load reads them (no row counted)."""
    state = store.load("m", sub_tasks=None, phases=list(p["id"] for p in PLAN))  # type: ignore[misc]
    assert state.partial
    return state.phase_counts, {pid: p.sub_task_counts for pid, p in state.phases.items()}


def test_a_scoped_load_reads_the_header_the_phases_named_their_dependencies_and_one_sub_task(
        svc: MigrationService, store: Storage) -> None:
    svc.execute("m", StartPhase("a"), actor=A)
    state = store.load("m", sub_tasks=("a", "s3"), phases=["c"])
    assert state.partial
    assert set(state.phases) == {"c", "a", "b"}  # c and what it depends on
    state = store.load("m", sub_tasks=("a", "s3"), phases=["a"])
    assert list(state.phases) == ["a"]
    assert list(state.phases["a"].sub_tasks) == ["s3"]
    assert state.phases["a"].sub_task_counts == {**dict.fromkeys(count_statuses([]), 0), "pending": 6}
    assert state.phase_counts is not None and state.phase_counts["in_progress"] == 1
    assert state.seq == store.load("m").seq and state.name == "m"
    header = store.load("m", sub_tasks=None, phases=())
    assert header.phases == {} and header.partial
    # a phase's sub-tasks in whole, when asked for
    assert list(store.load("m", sub_tasks="a", phases=["a"]).phases["a"].sub_tasks) == [f"s{i}" for i in range(6)]


def test_the_counts_follow_every_transition(svc: MigrationService, store: Storage) -> None:
    rng = random.Random(7)
    commands = [StartPhase("a"), StartPhase("b"), StartPhase("e")]
    for cmd in commands:
        svc.execute("m", cmd, actor=A)
    subs = [("a", f"s{i}") for i in range(6)] + [("b", "x"), ("b", "y")]
    for _ in range(60):
        phase, sub = rng.choice(subs)
        verb = rng.choice([StartSubTask(phase, sub), CompleteSubTask(phase, sub), FailSubTask(phase, sub, "boom"),
                           SkipSubTask(phase, sub, "no"), RetryPhase(phase), FailPhase("e", "x"),
                           RetryPhase("e")])
        with contextlib.suppress(MigratrackError):  # not allowed from where it is: no count moves either
            svc.execute("m", verb, actor=A)
        phases, per_phase = full_counts(store)
        kept_phases, kept_per_phase = kept_counts(store)
        assert kept_phases == phases
        assert kept_per_phase == per_phase


def test_the_rules_still_hold_on_a_scoped_load(svc: MigrationService, store: Storage) -> None:
    with pytest.raises(DependencyNotMet):
        svc.execute("m", StartPhase("c"), actor=A)
    svc.execute("m", StartPhase("a"), actor=A)
    svc.execute("m", StartSubTask("a", "s1"), actor=A)
    svc.execute("m", CompleteSubTask("a", "s1"), actor=A)
    with pytest.raises(RuleViolation, match="s0, s2, s3, s4, s5") as caught:
        svc.execute("m", CompletePhase("a"), actor=A)
    assert "s1" not in str(caught.value)
    for i in (0, 2, 3, 4, 5):
        svc.execute("m", SkipSubTask("a", f"s{i}", "empty"), actor=A)
    svc.execute("m", CompletePhase("a"), actor=A)
    svc.execute("m", SkipPhase("b", "not needed"), actor=A)
    svc.execute("m", StartPhase("c"), actor=A)
    svc.execute("m", CompletePhase("c"), actor=A)
    with pytest.raises(ApprovalRequired):
        svc.execute("m", StartPhase("d"), actor=A)
    svc.execute("m", ApprovePhase("d", "boss"), actor=A)
    svc.execute("m", StartPhase("d"), actor=A)
    svc.execute("m", CompletePhase("d"), actor=A)
    assert store.load("m").finished_at is None  # e is still pending
    with pytest.raises(SubTaskNotFound, match="known sub-tasks: x, y"):
        svc.execute("m", StartSubTask("b", "nope"), actor=A)
    svc.execute("m", StartPhase("e"), actor=A)
    svc.execute("m", CompletePhase("e"), actor=A)
    state = store.load("m")
    assert state.finished_at is not None
    assert [e.type for e in store.events("m", after=state.seq - 3)][-3:] == \
        ["phase.completed", "migration.completed", "alert.created"]


def test_a_migration_stored_before_the_counts_gets_them_from_its_first_transitions(
        store: Storage, clock: FakeClock) -> None:
    state = build_state("m", PLAN, clock(), None)
    state.phase_counts = None  # as an earlier version stored it
    for p in state.phases.values():
        p.sub_task_counts = None
    store.create(state, [NewEvent("migration.initialized", clock(), A, {})])
    assert not store.load("m", sub_tasks=None, phases=["a"]).partial  # read whole, counted then
    svc = MigrationService(store, clock)
    svc.execute("m", StartPhase("a"), actor=A)  # writes the header: counts from now on
    svc.execute("m", StartSubTask("a", "s2"), actor=A)  # the phase's sub-tasks counted, and kept
    kept_phases, kept_per_phase = kept_counts(store)
    phases, per_phase = full_counts(store)
    assert kept_phases == phases
    assert kept_per_phase["a"] == per_phase["a"]
    assert kept_per_phase["a"] is not None and kept_per_phase["a"]["in_progress"] == 1
    with pytest.raises(RuleViolation, match="s0, s1, s2, s3, s4, s5"):
        svc.execute("m", CompletePhase("a"), actor=A)


def test_sub_tasks_come_a_page_at_a_time_in_plan_order_filtered_by_status(store: Storage, clock: FakeClock) -> None:
    svc = MigrationService(store, clock)
    svc.initialize("big", [{"id": "p", "sub_tasks": [f"t{i:03}" for i in range(250)]}], actor=A)
    svc.execute("big", StartPhase("p"), actor=A)
    failed = [f"t{i:03}" for i in range(0, 250, 7)]
    for sid in failed:
        svc.execute("big", StartSubTask("p", sid), actor=A)
        svc.execute("big", FailSubTask("p", sid, "disk full"), actor=A)
    seen: list[str] = []
    after = None
    while True:
        page = svc.sub_tasks("big", "p", after=after, limit=100)
        assert len(page.items) <= 100
        seen += [s.id for s in page.items]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [f"t{i:03}" for i in range(250)]
    page = svc.sub_tasks("big", "p", status="failed", limit=10)
    assert [s.id for s in page.items] == failed[:10] and page.next_after == failed[9]
    assert all(s.error == "disk full" for s in page.items)
    rest = svc.sub_tasks("big", "p", status="failed", after=page.next_after, limit=1000)
    assert [s.id for s in rest.items] == failed[10:] and rest.next_after is None
    assert svc.sub_tasks("big", "p", status="completed").items == []
    with pytest.raises(SubTaskNotFound):
        svc.sub_tasks("big", "p", after="nope")
    with pytest.raises(PhaseNotFound):
        svc.sub_tasks("big", "nope")
    with pytest.raises(InvalidInput, match="status must be one of"):
        svc.sub_tasks("big", "p", status="broken")
    with pytest.raises(InvalidInput, match="limit"):
        svc.sub_tasks("big", "p", limit=0)
    summary = svc.summary("big")
    [p] = summary.phases
    assert p.sub_tasks == 250
    assert p.sub_task_counts["failed"] == len(failed) and p.sub_task_counts["pending"] == 250 - len(failed)
    assert summary.phase_counts["in_progress"] == 1
