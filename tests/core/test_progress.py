"""Roll-ups and the derived migration status, on plain states."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from migratrack.core.models import MigrationState, build_state
from migratrack.core.progress import migration_status, overall_progress, phase_progress
from migratrack.core.states import Control, Status

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def state(phases: list[dict[str, Any]]) -> MigrationState:
    return build_state("m", phases, NOW)


def test_sub_tasks_count_equally_without_estimates() -> None:
    s = state([{"id": "p", "sub_tasks": ["a", "b", "c", "d"]}])
    p = s.phases["p"]
    p.status = Status.IN_PROGRESS
    p.sub_tasks["a"].status = Status.COMPLETED
    p.sub_tasks["b"].status = Status.SKIPPED
    p.sub_tasks["c"].status = Status.IN_PROGRESS
    p.sub_tasks["c"].progress = 40
    assert phase_progress(p) == pytest.approx(60)


def test_a_sub_task_without_an_estimate_weighs_the_mean_of_the_others() -> None:
    s = state([{"id": "p", "sub_tasks": [{"id": "a", "estimated_duration": 1}, {"id": "b", "estimated_duration": 3},
                                          "c"]}])
    p = s.phases["p"]
    p.status = Status.IN_PROGRESS
    p.sub_tasks["c"].status = Status.COMPLETED  # weight 2 of 6
    assert phase_progress(p) == pytest.approx(100 * 2 / 6)


def test_reported_progress_and_roll_up_whichever_is_ahead() -> None:
    s = state([{"id": "p", "sub_tasks": ["a", "b"]}])
    p = s.phases["p"]
    p.status = Status.IN_PROGRESS
    p.progress = 70
    p.sub_tasks["a"].progress = 20
    assert phase_progress(p) == 70
    p.sub_tasks["a"].status = Status.COMPLETED
    p.sub_tasks["b"].progress = 80
    assert phase_progress(p) == 90
    p.status = Status.COMPLETED
    assert phase_progress(p) == 100


def test_a_failed_sub_task_keeps_its_progress_in_the_roll_up() -> None:
    s = state([{"id": "p", "sub_tasks": ["a", "b"]}])
    p = s.phases["p"]
    p.sub_tasks["a"].status = Status.FAILED
    p.sub_tasks["a"].progress = 50
    assert phase_progress(p) == 25


def test_overall_weights_skipped_and_failed() -> None:
    s = state([{"id": "a", "estimated_duration": 30}, {"id": "b", "estimated_duration": 10},
               {"id": "c", "estimated_duration": 60}])
    s.phases["a"].status = Status.SKIPPED
    s.phases["b"].status = Status.FAILED
    s.phases["b"].progress = 50
    assert overall_progress(s) == pytest.approx(35)


@pytest.mark.parametrize("statuses,control,expected", [
    (["pending", "pending"], "running", "pending"),
    (["in_progress", "pending"], "running", "running"),
    (["completed", "pending"], "running", "running"),
    (["failed", "pending"], "running", "failed"),
    (["failed", "in_progress"], "running", "running"),
    (["completed", "skipped"], "running", "completed"),
    (["completed", "skipped"], "paused", "completed"),
    (["in_progress", "pending"], "paused", "paused"),
    (["failed", "pending"], "paused", "paused"),
    (["in_progress", "pending"], "cancelled", "cancelled"),
    (["completed", "completed"], "cancelled", "cancelled"),
])
def test_migration_status_is_derived(statuses: list[str], control: str, expected: str) -> None:
    s = state([{"id": "a"}, {"id": "b"}])
    for p, st in zip(s.phases.values(), statuses, strict=True):
        p.status = Status(st)
    s.control = Control(control)
    assert migration_status(s).value == expected
