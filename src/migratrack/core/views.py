"""Read models: the overview and the dashboard, typed and JSON-ready (pydantic)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from migratrack.core.eta import Estimate, estimate
from migratrack.core.graph import longest_finish
from migratrack.core.models import Alert, MigrationState, PhaseState
from migratrack.core.progress import migration_status, overall_progress, phase_progress
from migratrack.core.resources import utilization
from migratrack.core.rules import active_seconds, derived_error_rate
from migratrack.core.speed import DataSample, migration_speed
from migratrack.core.states import AlertLevel, Condition, Control, MigrationStatus, Status


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class EstimateView(_Model):
    completion: datetime | None = Field(description="expected completion; null while unknown")
    earliest: datetime | None
    latest: datetime | None
    remaining_seconds: float | None
    critical_path: list[str]
    calibration: float = Field(description="actual/planned duration over measured phases, plan-weighted")
    driver: str | None = Field(default=None, description="the phase that drives the estimate")
    method: str | None = Field(
        default=None, description="estimator speaking for the driving phase: plan, prior, typical, average, "
                                  "recent, flowing or trend")
    reason: str | None = Field(default=None, description="why that estimator, in a sentence")
    confidence: str | None = Field(
        default=None, description="high, medium or low: the p10-p90 interval's width relative to the time left")
    unknown_reason: str | None = Field(default=None, description="why the estimate is unknown; null when known")

    @classmethod
    def of(cls, e: Estimate) -> EstimateView:
        return cls(
            completion=e.completion, earliest=e.earliest, latest=e.latest,
            remaining_seconds=e.remaining_seconds, critical_path=list(e.critical_path),
            calibration=e.calibration, driver=e.driver, method=e.method, reason=e.reason,
            confidence=e.confidence, unknown_reason=e.unknown_reason,
        )

    def explanation(self) -> str | None:
        """One line for people: what drives the estimate and how sure it is, or why it is unknown."""
        if self.completion is None:
            return self.unknown_reason
        if self.driver is None:
            return None
        return f"driven by {self.driver} ({self.method}: {self.reason}); confidence {self.confidence}"


class PhaseBrief(_Model):
    id: str
    name: str
    status: Status
    condition: Condition = Field(description="the status refined: blocked, waiting_for_approval, paused...")
    progress: float


class PhaseError(_Model):
    phase: str
    error: str


class Overview(_Model):
    migration_id: str
    name: str
    status: MigrationStatus
    control: Control
    overall_progress: float = Field(description="percent, phases weighted by estimated duration")
    phase_counts: dict[str, int] = Field(description="number of phases per status")
    total_phases: int
    current_phases: list[PhaseBrief]
    waiting_for_approval: list[str] = Field(
        description="phases whose dependencies are done but which wait for someone to approve them")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    elapsed_seconds: float = Field(description="wall-clock seconds since the first phase started")
    active_seconds: float = Field(description="elapsed seconds less the time spent paused")
    paused_seconds: float
    estimated_completion: datetime | None
    estimate: EstimateView
    errors: list[PhaseError]
    alert_counts: dict[str, int]
    unacknowledged_alerts: int
    last_seq: int = Field(description="sequence number of the last event")


class SubTaskView(_Model):
    id: str
    name: str
    status: Status
    progress: float
    estimated_seconds: float | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    error: str | None


class PhaseView(_Model):
    id: str
    name: str
    description: str
    status: Status
    condition: Condition = Field(description="the status refined: blocked, waiting_for_approval, paused...")
    progress: float = Field(description="effective percent: reported progress or the sub-task roll-up")
    done: int
    total: int | None
    dependencies: list[str]
    blocked_by: list[str] = Field(description="dependencies not yet completed or skipped")
    requires_approval: bool
    approved_by: str | None
    approved_at: datetime | None
    estimated_seconds: float | None
    actual_seconds: float | None = Field(description="active seconds spent, all attempts")
    attempts: int
    started_at: datetime | None
    completed_at: datetime | None
    skip_reason: str | None
    errors: list[str]
    warnings: list[str]
    metadata: dict[str, Any]
    sub_tasks: list[SubTaskView]
    sub_task_count: int = Field(default=0, description="number of sub-tasks (also when the list is left out)")
    sub_tasks_finished: int = Field(default=0, description="sub-tasks completed or skipped")


class AlertView(_Model):
    id: str
    level: AlertLevel
    message: str
    phase: str | None
    source: str
    actor: str | None
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None

    @classmethod
    def of(cls, a: Alert) -> AlertView:
        return cls(**a.to_dict())


class MetricsView(_Model):
    total_data_migrated: int
    migration_speed: float | None = Field(
        description="bytes/s: a finished migration's average; else as reported; else data added in the last "
                    "60 s over the active part of that window (core/speed.py)")
    error_rate: float | None = Field(description="percent: failed/(successful+failed) when counts are known")
    successful_operations: int
    failed_operations: int
    average_operation_time: float | None
    resource_utilization: dict[str, float] = Field(
        description="cpu and memory (percent of a host), network and storage (bytes/s): as set, or the live "
                    "samplers' shares added up (then also workers: how many)")
    cost_metrics: dict[str, float]


class TimelineEntry(_Model):
    phase: str
    name: str
    status: Status
    planned_start: datetime | None
    planned_end: datetime | None
    actual_start: datetime | None
    actual_end: datetime | None


class Dashboard(_Model):
    overview: Overview
    phases: list[PhaseView]
    recent_alerts: list[AlertView]
    metrics: MetricsView
    timeline: list[TimelineEntry]


#: phase metadata key the alert dispatcher sets while it sees the phase stalled (alerts/stall.py)
STALL_MARK = "_stalled"


def phase_condition(state: MigrationState, p: PhaseState) -> Condition:
    """What ``p`` is doing, as an operator reads it: its status refined by its dependencies, its
    approval gate, the migration's control state and a stall the alert dispatcher saw."""
    if p.status is Status.IN_PROGRESS:
        if state.control is Control.CANCELLED:
            return Condition.CANCELLED
        if state.control is Control.PAUSED:
            return Condition.PAUSED
        return Condition.STALLED if p.metadata.get(STALL_MARK) else Condition.RUNNING
    if p.status is not Status.PENDING:
        return Condition(p.status.value)
    if state.control is Control.CANCELLED:
        return Condition.CANCELLED
    if any(not state.phases[d].status.finished for d in p.dependencies if d in state.phases):
        return Condition.BLOCKED
    if p.requires_approval and p.approved_at is None:
        return Condition.WAITING_FOR_APPROVAL
    return Condition.READY


def _phase_actual(state: MigrationState, p: PhaseState, now: datetime) -> float | None:
    if p.started_at is None:
        return None
    return p.prior_active_seconds + active_seconds(state, p.started_at, p.completed_at or now)


def build_overview(state: MigrationState, now: datetime, est: Estimate | None = None) -> Overview:
    est = est or estimate(state, now)
    counts = {s.value: 0 for s in Status}
    for p in state.phases.values():
        counts[p.status.value] += 1
    end = state.finished_at or state.cancelled_at or now
    started = state.started_at
    elapsed = (end - started).total_seconds() if started else 0.0
    active = active_seconds(state, started, end) if started else 0.0
    paused_total = sum(p.overlap(state.created_at, end) for p in state.pauses)  # none after the end
    errors = [PhaseError(phase=p.id, error=e) for p in state.phases.values() for e in p.errors]
    return Overview(
        migration_id=state.id, name=state.name, status=migration_status(state), control=state.control,
        overall_progress=overall_progress(state), phase_counts=counts, total_phases=len(state.phases),
        current_phases=[
            PhaseBrief(id=p.id, name=p.name, status=p.status, condition=phase_condition(state, p),
                       progress=round(phase_progress(p), 4))
            for p in state.phases.values() if p.status is Status.IN_PROGRESS
        ],
        waiting_for_approval=[
            p.id for p in state.phases.values()
            if phase_condition(state, p) is Condition.WAITING_FOR_APPROVAL
        ],
        created_at=state.created_at, started_at=started, finished_at=state.finished_at,
        elapsed_seconds=max(0.0, elapsed), active_seconds=active, paused_seconds=paused_total,
        estimated_completion=est.completion, estimate=EstimateView.of(est),
        errors=errors[-50:], alert_counts={lvl.value: state.alert_counts.get(lvl.value, 0) for lvl in AlertLevel},
        unacknowledged_alerts=state.unacknowledged_alerts, last_seq=state.seq,
    )


def _metrics_view(state: MigrationState, now: datetime, samples: Sequence[DataSample] | None = None,
                  since: datetime | None = None) -> MetricsView:
    m = state.metrics
    g = m.gauges
    return MetricsView(
        total_data_migrated=m.total_data_migrated,
        migration_speed=migration_speed(state, now, samples, since=since),
        error_rate=derived_error_rate(m.successful_operations, m.failed_operations, g),
        successful_operations=m.successful_operations,
        failed_operations=m.failed_operations,
        average_operation_time=g.get("average_operation_time"),
        resource_utilization=utilization(g, now),
        cost_metrics=dict(g.get("cost_metrics") or {}),
    )


def _timeline(state: MigrationState, now: datetime) -> list[TimelineEntry]:
    origin = state.started_at or now
    deps = {pid: p.dependencies for pid, p in state.phases.items()}
    planned: dict[str, float] = {pid: p.estimated_seconds or 0.0 for pid, p in state.phases.items()}
    known = any(planned.values())
    finish = longest_finish(deps, lambda pid: planned[pid]) if known else {}
    out = []
    for pid, p in state.phases.items():
        ps = pe = None
        if known:
            try:
                pe = origin + timedelta(seconds=finish[pid])
                ps = pe - timedelta(seconds=planned[pid])
            except OverflowError:  # estimates that add up beyond the calendar: no planned dates
                ps = pe = None
        out.append(TimelineEntry(
            phase=pid, name=p.name, status=p.status, planned_start=ps, planned_end=pe,
            actual_start=p.started_at, actual_end=p.completed_at,
        ))
    return out


def build_dashboard(state: MigrationState, alerts: Sequence[Alert], now: datetime, est: Estimate | None = None,
                    samples: Sequence[DataSample] | None = None, since: datetime | None = None, *,
                    sub_tasks: bool = True) -> Dashboard:
    """``sub_tasks=False`` leaves each phase's sub-task list empty (a page that shows them on
    demand need not build 10,000 views to show the phases)."""
    est = est or estimate(state, now)
    phases = [
        PhaseView(
            id=p.id, name=p.name, description=p.description, status=p.status,
            condition=phase_condition(state, p), progress=round(phase_progress(p), 4), done=p.done, total=p.total,
            dependencies=list(p.dependencies),
            blocked_by=[d for d in p.dependencies if not state.phases[d].status.finished],
            requires_approval=p.requires_approval, approved_by=p.approved_by,
            approved_at=p.approved_at, estimated_seconds=p.estimated_seconds,
            actual_seconds=_phase_actual(state, p, now), attempts=p.attempts,
            started_at=p.started_at, completed_at=p.completed_at, skip_reason=p.skip_reason,
            errors=list(p.errors), warnings=list(p.warnings), metadata=dict(p.metadata),
            sub_tasks=[
                SubTaskView(
                    id=s.id, name=s.name, status=s.status, progress=s.progress,
                    estimated_seconds=s.estimated_seconds, started_at=s.started_at,
                    completed_at=s.completed_at, duration_seconds=s.duration_seconds, error=s.error,
                )
                for s in (p.sub_tasks.values() if sub_tasks else ())
            ],
            sub_task_count=len(p.sub_tasks),
            sub_tasks_finished=sum(1 for s in p.sub_tasks.values() if s.status.finished),
        )
        for p in state.phases.values()
    ]
    return Dashboard(
        overview=build_overview(state, now, est),
        phases=phases,
        recent_alerts=[AlertView.of(a) for a in alerts],
        metrics=_metrics_view(state, now, samples, since),
        timeline=_timeline(state, now),
    )
