"""Read models that cost what they show: the summary (phases with their sub-tasks counted by
status, never listed) and a page of one phase's sub-tasks. What a dashboard of a migration with
100,000 sub-tasks reads first, and what it reads when someone opens a phase."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from migratrack.core.models import MigrationState, PhaseState, SubTaskState
from migratrack.core.progress import migration_status
from migratrack.core.states import Condition, Control, MigrationStatus, Status
from migratrack.core.views import SubTaskView, phase_condition


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class PhaseSummary(_Model):
    id: str
    name: str
    status: Status
    condition: Condition
    progress: float = Field(description="percent: reported progress, or the share of sub-tasks finished, "
                                        "whichever is ahead")
    done: int
    total: int | None
    sub_tasks: int = Field(description="how many sub-tasks the phase has")
    sub_task_counts: dict[str, int] = Field(description="sub-tasks per status")


class Summary(_Model):
    migration_id: str
    name: str
    status: MigrationStatus
    control: Control
    phase_counts: dict[str, int]
    phases: list[PhaseSummary]
    last_seq: int


class SubTaskPage(_Model):
    phase: str
    status: Status | None = Field(description="the status the page is filtered by, if any")
    items: list[SubTaskView]
    next_after: str | None = Field(description="pass as `after` for the next page; null: this was the last")


def _phase_progress(p: PhaseState, counts: dict[str, int]) -> float:
    """Without the sub-tasks, a phase's roll-up counts its finished sub-tasks (equal weights; the
    dashboard's roll-up weighs them by estimate and counts partial progress)."""
    if p.status is Status.COMPLETED:
        return 100.0
    n = sum(counts.values())
    if not n:
        return p.progress
    finished = sum(v for k, v in counts.items() if Status(k).finished)
    return round(max(p.progress, 100.0 * finished / n), 4)


def build_summary(state: MigrationState) -> Summary:
    """From a load without sub-tasks: every phase's row, its counts kept by the rules."""
    phases = []
    for p in state.phases.values():
        counts = dict(p.sub_task_counts or {s.value: 0 for s in Status})
        phases.append(PhaseSummary(
            id=p.id, name=p.name, status=p.status, condition=phase_condition(state, p),
            progress=_phase_progress(p, counts), done=p.done, total=p.total,
            sub_tasks=sum(counts.values()), sub_task_counts=counts,
        ))
    counts = {s.value: 0 for s in Status}
    for p in state.phases.values():
        counts[p.status.value] += 1
    return Summary(migration_id=state.id, name=state.name, status=migration_status(state), control=state.control,
                   phase_counts=counts, phases=phases, last_seq=state.seq)


def sub_task_view(s: SubTaskState) -> SubTaskView:
    return SubTaskView(id=s.id, name=s.name, status=s.status, progress=s.progress,
                       estimated_seconds=s.estimated_seconds, started_at=s.started_at,
                       completed_at=s.completed_at, duration_seconds=s.duration_seconds, error=s.error)


def build_page(phase_id: str, status: Status | None, subs: Sequence[SubTaskState], limit: int) -> SubTaskPage:
    """``subs``: up to ``limit + 1`` sub-tasks read; the one past the limit tells there is more."""
    items = [sub_task_view(s) for s in subs[:limit]]
    more = len(subs) > limit
    return SubTaskPage(phase=phase_id, status=status, items=items,
                       next_after=items[-1].id if more and items else None)
