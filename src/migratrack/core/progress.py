"""Roll-ups: sub-tasks into their phase, phases into the migration."""

from __future__ import annotations

from collections.abc import Sequence

from migratrack.core.models import MigrationState, PhaseState, SubTaskState
from migratrack.core.states import Control, MigrationStatus, Status


def _weights(estimates: Sequence[float | None]) -> list[float]:
    """Estimates as weights; unknown ones get the mean of the known ones; none known: equal."""
    known = [e for e in estimates if e is not None and e > 0]
    if not known:
        return [1.0] * len(estimates)
    mean = sum(known) / len(known)
    return [e if e is not None and e > 0 else mean for e in estimates]


def sub_task_progress(sub: SubTaskState) -> float:
    return 100.0 if sub.status.finished else sub.progress


def phase_progress(phase: PhaseState) -> float:
    """The phase's progress as shown: reported progress or the sub-task roll-up, whichever is ahead."""
    if phase.status is Status.COMPLETED:
        return 100.0
    if not phase.sub_tasks:
        return phase.progress
    subs = list(phase.sub_tasks.values())
    weights = _weights([s.estimated_seconds for s in subs])
    rolled = sum(w * sub_task_progress(s) for w, s in zip(weights, subs, strict=True)) / sum(weights)
    return max(phase.progress, min(100.0, rolled))


def phase_done_fraction(phase: PhaseState) -> float:
    """0..1 as counted for overall progress: skipped counts as done."""
    if phase.status.finished:
        return 1.0
    return phase_progress(phase) / 100.0


def overall_progress(state: MigrationState) -> float:
    phases = list(state.phases.values())
    if not phases:
        return 0.0
    weights = _weights([p.estimated_seconds for p in phases])
    total = sum(w * phase_done_fraction(p) for w, p in zip(weights, phases, strict=True))
    return round(100.0 * total / sum(weights), 4)


def migration_status(state: MigrationState) -> MigrationStatus:
    if state.control is Control.CANCELLED:
        return MigrationStatus.CANCELLED
    statuses = [p.status for p in state.phases.values()]
    if statuses and all(s.finished for s in statuses):
        return MigrationStatus.COMPLETED
    if state.control is Control.PAUSED:
        return MigrationStatus.PAUSED
    if Status.FAILED in statuses and Status.IN_PROGRESS not in statuses:
        return MigrationStatus.FAILED
    if all(s is Status.PENDING for s in statuses):
        return MigrationStatus.PENDING
    return MigrationStatus.RUNNING
