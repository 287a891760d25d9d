"""Plan validation: what initialize_migration accepts and how it refuses the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from migratrack import InvalidPlan, Phase, PlanMismatch, SubTask
from migratrack.core.commands import StartPhase
from migratrack.core.models import build_state
from migratrack.service import MigrationService

from .conftest import ACTOR, plan

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def build(phases: Any) -> Any:
    return build_state("m", phases, NOW)


def test_a_valid_plan_becomes_pending_phases_in_declared_order() -> None:
    state = build(plan())
    assert list(state.phases) == ["setup", "copy", "files", "cutover"]
    assert all(p.status.value == "pending" and p.progress == 0 for p in state.phases.values())
    assert list(state.phases["copy"].sub_tasks) == ["users", "orders"]
    assert state.phases["cutover"].requires_approval
    assert state.phases["copy"].dependencies == ["setup"]


def test_cycle_is_rejected_and_named() -> None:
    phases = [
        {"id": "a", "dependencies": ["c"]},
        {"id": "b", "dependencies": ["a"]},
        {"id": "c", "dependencies": ["b"]},
        {"id": "d"},
    ]
    with pytest.raises(InvalidPlan, match="cycle") as info:
        build(phases)
    message = str(info.value)
    # the closed path names every phase on the cycle and only those
    path = message.split("cycle:")[1].strip().split(" -> ")
    assert path[0] == path[-1]
    assert set(path) == {"a", "b", "c"}


def test_self_dependency_is_rejected() -> None:
    with pytest.raises(InvalidPlan, match="'a' depends on itself"):
        build([{"id": "a", "dependencies": ["a"]}])


def test_unknown_dependency_is_rejected_with_its_name() -> None:
    with pytest.raises(InvalidPlan, match="unknown phase 'ghost'"):
        build([{"id": "a"}, {"id": "b", "dependencies": ["ghost"]}])


def test_duplicate_phase_id_is_rejected() -> None:
    with pytest.raises(InvalidPlan, match="duplicate phase id 'a'"):
        build([{"id": "a"}, {"id": "a"}])


def test_duplicate_sub_task_id_is_rejected() -> None:
    with pytest.raises(InvalidPlan, match="duplicate sub-task id 's'"):
        build([{"id": "a", "sub_tasks": ["s", {"id": "s"}]}])


@pytest.mark.parametrize("value", [-1, -0.5, timedelta(minutes=-1), float("nan"), float("inf")])
def test_negative_or_non_finite_estimate_is_rejected(value: Any) -> None:
    with pytest.raises(InvalidPlan, match="estimated_duration"):
        build([{"id": "a", "estimated_duration": value}])


@pytest.mark.parametrize("value", ["10", True, [1]])
def test_estimate_of_the_wrong_kind_is_rejected(value: Any) -> None:
    with pytest.raises(InvalidPlan, match="minutes"):
        build([{"id": "a", "estimated_duration": value}])


def test_negative_sub_task_estimate_is_rejected() -> None:
    with pytest.raises(InvalidPlan, match="estimated_duration"):
        build([{"id": "a", "sub_tasks": [{"id": "s", "estimated_duration": -3}]}])


def test_numbers_are_minutes_and_timedeltas_are_durations() -> None:
    state = build([
        {"id": "a", "estimated_duration": 30},
        {"id": "b", "estimated_duration": timedelta(hours=1, seconds=30)},
        {"id": "c", "estimated_duration": 0.5},
        {"id": "d"},
    ])
    assert state.phases["a"].estimated_seconds == 1800
    assert state.phases["b"].estimated_seconds == 3630
    assert state.phases["c"].estimated_seconds == 30
    assert state.phases["d"].estimated_seconds is None


def test_a_timedelta_keeps_its_exact_seconds() -> None:
    # it reaches the model as minutes; 31 s / 60 * 60 is not 31.0 in floating point
    state = build([{"id": "a", "estimated_duration": timedelta(seconds=31)},
                   {"id": "b", "estimated_duration": timedelta(seconds=123, microseconds=456)}])
    assert state.phases["a"].estimated_seconds == 31
    assert state.phases["b"].estimated_seconds == 123.000456


def test_phase_objects_are_checked_by_the_same_rules_as_dicts() -> None:
    with pytest.raises(InvalidPlan) as info:
        build([Phase("a b", estimated_duration=-1, sub_tasks=[SubTask("s"), "s"]), Phase("c", dependencies=["x"])])
    assert str(info.value).splitlines() == [
        "plan: 4 problems",
        "plan: phases[0] ('a b').id: 'a b' is not a valid id: use 1 to 200 characters without '/', whitespace, "
        "control or text-direction characters",
        "plan: phases[0] ('a b').estimated_duration: must be a finite, non-negative duration in minutes, got -1",
        "plan: phases[0] ('a b').sub_tasks[1] ('s').id: duplicate sub-task id 's'",
        "plan: phases[1] ('c').dependencies[0]: depends on unknown phase 'x'; known phases: c",
    ]
    assert Phase.coerce({"id": "a", "estimatedDuration": timedelta(minutes=3), "subTasks": ["s"]}) == Phase(
        "a", estimated_duration=3.0, sub_tasks=[SubTask("s")])


def test_seed_camel_case_fields_are_accepted_and_state_fields_ignored() -> None:
    seed_phase = {
        "id": "infrastructure-setup", "name": "Infrastructure Setup", "description": "Set up AWS",
        "dependencies": [], "estimatedDuration": 30, "subTasks": [{"id": "vpc", "estimatedDuration": 5}],
        "requiresApproval": True, "metadata": {"owner": "ops"},
        # the seed's MigrationPhase also carries state; on input it is ignored
        "status": "completed", "progress": 80, "actualDuration": 12, "errors": ["x"], "warnings": ["y"],
    }
    phase = build([seed_phase]).phases["infrastructure-setup"]
    assert phase.name == "Infrastructure Setup"
    assert phase.description == "Set up AWS"
    assert phase.estimated_seconds == 1800
    assert phase.sub_tasks["vpc"].estimated_seconds == 300
    assert phase.requires_approval
    assert phase.metadata == {"owner": "ops"}
    assert phase.status.value == "pending" and phase.progress == 0
    assert phase.errors == [] and phase.warnings == []


def test_phase_objects_and_sub_task_objects_are_accepted() -> None:
    state = build([
        Phase("a", "Alpha", estimated_duration=timedelta(minutes=2), sub_tasks=[SubTask("s1", "One"), "s2"]),
        Phase("b", dependencies=["a"]),
    ])
    assert state.phases["a"].name == "Alpha"
    assert state.phases["a"].sub_tasks["s1"].name == "One"
    assert state.phases["a"].sub_tasks["s2"].name == "s2"
    assert state.phases["b"].name == "b"


def test_unknown_field_is_rejected_with_the_allowed_ones() -> None:
    with pytest.raises(InvalidPlan, match=r"unknown field 'estimate'.*allowed"):
        build([{"id": "a", "estimate": 3}])


@pytest.mark.parametrize("phases", [[], {"id": "a"}, "a,b", [42], [{"name": "no id"}], [{"id": ""}],
                                    [{"id": "a/b"}], [{"id": "a", "dependencies": "b"}]])
def test_malformed_plans_are_rejected(phases: Any) -> None:
    with pytest.raises(InvalidPlan):
        build(phases)


def test_rejected_plan_writes_nothing(service: MigrationService) -> None:
    with pytest.raises(InvalidPlan):
        service.initialize("m", [{"id": "a", "dependencies": ["b"]}, {"id": "b", "dependencies": ["a"]}],
                           actor=ACTOR)
    assert not service.storage.exists("m")
    assert service.storage.list_ids() == []


def test_initialize_records_an_event_and_resumes_with_the_same_plan(service: MigrationService) -> None:
    state, created = service.initialize("m", plan(), actor=ACTOR)
    assert created and state.seq == 1
    [event] = service.events("m")
    assert event.type == "migration.initialized"
    assert event.actor == ACTOR
    assert event.payload["phases"] == ["setup", "copy", "files", "cutover"]
    service.execute("m", StartPhase("setup"), actor=ACTOR)
    again, created = service.initialize("m", plan(), actor=ACTOR)
    assert not created
    assert again.phases["setup"].status.value == "in_progress"  # the run's state is kept


@pytest.mark.parametrize("change", ["drop_phase", "new_dependency", "new_sub_task", "new_gate", "no_gate"])
def test_initialize_with_a_different_plan_raises_plan_mismatch(service: MigrationService, change: str) -> None:
    service.initialize("m", plan(), actor=ACTOR)
    other = plan()
    if change == "drop_phase":
        other.pop()
    elif change == "new_dependency":
        other[2]["dependencies"] = ["setup", "copy"]
    elif change == "new_gate":
        other[0]["requires_approval"] = True  # resuming must not silently skip a go/no-go
    elif change == "no_gate":
        other[3]["requires_approval"] = False
    else:
        other[1]["sub_tasks"].append({"id": "payments"})
    with pytest.raises(PlanMismatch, match="different plan"):
        service.initialize("m", other, actor=ACTOR)
    assert service.state("m").phases.keys() == {p["id"] for p in plan()}


def test_a_changed_estimate_or_name_still_resumes(service: MigrationService) -> None:
    service.initialize("m", plan(), actor=ACTOR)
    other = plan()
    other[0]["estimated_duration"] = 99
    other[0]["name"] = "Set-up"
    _, created = service.initialize("m", other, actor=ACTOR)
    assert not created


def test_replace_discards_the_old_history(service: MigrationService) -> None:
    service.initialize("m", plan(), actor=ACTOR)
    service.execute("m", StartPhase("setup"), actor=ACTOR)
    _, created = service.initialize("m", [{"id": "only"}], replace=True, actor=ACTOR)
    assert created
    assert list(service.state("m").phases) == ["only"]
    assert [e.type for e in service.events("m")] == ["migration.initialized"]
