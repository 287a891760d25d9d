"""The seed's routes, speaking its camelCase shapes (durations in minutes, as the seed has them).

``/api/migration/progress``: GET overview, POST every tracker action, PUT completion estimate.
``/api/migration/dashboard``: GET the dashboard, POST pause/resume/cancel and alert actions.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from migratrack.core.commands import (
    Cancel,
    Command,
    CompletePhase,
    CompleteSubTask,
    FailPhase,
    FailSubTask,
    Pause,
    Resume,
    RetryPhase,
    SkipPhase,
    SkipSubTask,
    StartPhase,
    StartSubTask,
)
from migratrack.core.states import AlertLevel, Control, MigrationStatus, Status
from migratrack.core.values import Metadata
from migratrack.core.views import AlertView, Dashboard, MetricsView, Overview, PhaseView
from migratrack.errors import InvalidInput, NotFound
from migratrack.service import MigrationService
from migratrack.web.api import ERRORS, service
from migratrack.web.auth import Principal, RequireOperator, RequireViewer, Role, actor_of, check_role, check_scope
from migratrack.web.schemas import Percent

router = APIRouter(prefix="/api/migration", tags=["seed-compatible"], responses=ERRORS)
Svc = Annotated[MigrationService, Depends(service)]
MigrationIdQuery = Annotated[str | None, Query(alias="migrationId", min_length=1, max_length=200,
                                              description="default: the most recently created migration")]


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60.0, 4)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class SeedSubTask(_Out):
    id: str
    name: str
    status: Status
    progress: float
    estimatedDuration: float | None = Field(description="minutes")
    actualDuration: float | None = Field(description="minutes")
    startTime: datetime | None
    endTime: datetime | None
    error: str | None


class SeedPhase(_Out):
    id: str
    name: str
    description: str
    status: Status
    progress: float
    subTasks: list[SeedSubTask]
    dependencies: list[str]
    estimatedDuration: float | None = Field(description="minutes")
    actualDuration: float | None = Field(description="minutes")
    startTime: datetime | None
    endTime: datetime | None
    errors: list[str]
    warnings: list[str]
    metadata: dict[str, Any]

    @classmethod
    def of(cls, p: PhaseView) -> SeedPhase:
        return cls(
            id=p.id, name=p.name, description=p.description, status=p.status, progress=p.progress,
            subTasks=[SeedSubTask(
                id=s.id, name=s.name, status=s.status, progress=s.progress,
                estimatedDuration=_minutes(s.estimated_seconds), actualDuration=_minutes(s.duration_seconds),
                startTime=s.started_at, endTime=s.completed_at, error=s.error) for s in p.sub_tasks],
            dependencies=p.dependencies, estimatedDuration=_minutes(p.estimated_seconds),
            actualDuration=_minutes(p.actual_seconds), startTime=p.started_at, endTime=p.completed_at,
            errors=p.errors, warnings=p.warnings, metadata=p.metadata)


class SeedResources(_Out):
    cpu: float = Field(description="percent")
    memory: float = Field(description="percent")
    network: float = Field(description="bytes per second")
    storage: float = Field(description="bytes")


class SeedCosts(_Out):
    estimatedCost: float
    actualCost: float
    costPerGB: float


class SeedMetrics(_Out):
    totalDataMigrated: int = Field(description="bytes")
    migrationSpeed: float = Field(description="bytes per second")
    errorRate: float = Field(description="percent")
    successfulOperations: int
    failedOperations: int
    averageOperationTime: float = Field(description="milliseconds")
    resourceUtilization: SeedResources
    costMetrics: SeedCosts

    @classmethod
    def of(cls, m: MetricsView) -> SeedMetrics:
        r, c = m.resource_utilization, m.cost_metrics
        return cls(
            totalDataMigrated=m.total_data_migrated, migrationSpeed=m.migration_speed or 0.0,
            errorRate=m.error_rate or 0.0, successfulOperations=m.successful_operations,
            failedOperations=m.failed_operations, averageOperationTime=m.average_operation_time or 0.0,
            resourceUtilization=SeedResources(cpu=r.get("cpu", 0.0), memory=r.get("memory", 0.0),
                                              network=r.get("network", 0.0), storage=r.get("storage", 0.0)),
            costMetrics=SeedCosts(estimatedCost=c.get("estimated_cost", 0.0), actualCost=c.get("actual_cost", 0.0),
                                  costPerGB=c.get("cost_per_gb", 0.0)))


class SeedAlert(_Out):
    id: str
    type: AlertLevel
    message: str
    phase: str | None
    timestamp: datetime
    acknowledged: bool
    acknowledgedBy: str | None

    @classmethod
    def of(cls, a: AlertView) -> SeedAlert:
        return cls(id=a.id, type=a.level, message=a.message, phase=a.phase, timestamp=a.created_at,
                   acknowledged=a.acknowledged_at is not None, acknowledgedBy=a.acknowledged_by)


class SeedOverview(_Out):
    migrationId: str
    name: str
    status: MigrationStatus
    isPaused: bool
    overallProgress: float = Field(description="percent")
    totalPhases: int
    completedPhases: int
    inProgressPhases: int
    failedPhases: int
    pendingPhases: int
    skippedPhases: int
    currentPhase: str | None = Field(description="the first phase in progress")
    startTime: datetime | None
    endTime: datetime | None
    elapsedTime: float = Field(description="minutes since the first phase started")
    estimatedCompletion: datetime | None
    errors: list[str]
    unacknowledgedAlerts: int

    @classmethod
    def of(cls, o: Overview) -> SeedOverview:
        n = o.phase_counts
        return cls(
            migrationId=o.migration_id, name=o.name, status=o.status, isPaused=o.control is Control.PAUSED,
            overallProgress=o.overall_progress, totalPhases=o.total_phases,
            completedPhases=n.get("completed", 0), inProgressPhases=n.get("in_progress", 0),
            failedPhases=n.get("failed", 0), pendingPhases=n.get("pending", 0), skippedPhases=n.get("skipped", 0),
            currentPhase=o.current_phases[0].id if o.current_phases else None, startTime=o.started_at,
            endTime=o.finished_at, elapsedTime=round(o.elapsed_seconds / 60.0, 4),
            estimatedCompletion=o.estimated_completion, errors=[f"{e.phase}: {e.error}" for e in o.errors],
            unacknowledgedAlerts=o.unacknowledged_alerts)


class SeedTimelineEntry(_Out):
    phaseId: str
    name: str
    status: Status
    plannedStart: datetime | None
    plannedEnd: datetime | None
    actualStart: datetime | None
    actualEnd: datetime | None


class SeedDashboard(_Out):
    overview: SeedOverview
    phases: list[SeedPhase]
    metrics: SeedMetrics
    alerts: list[SeedAlert]
    timeline: list[SeedTimelineEntry]

    @classmethod
    def of(cls, d: Dashboard) -> SeedDashboard:
        return cls(
            overview=SeedOverview.of(d.overview), phases=[SeedPhase.of(p) for p in d.phases],
            metrics=SeedMetrics.of(d.metrics), alerts=[SeedAlert.of(a) for a in d.recent_alerts],
            timeline=[SeedTimelineEntry(phaseId=t.phase, name=t.name, status=t.status, plannedStart=t.planned_start,
                                        plannedEnd=t.planned_end, actualStart=t.actual_start,
                                        actualEnd=t.actual_end) for t in d.timeline])


class SeedEstimate(_Out):
    migrationId: str
    estimatedCompletion: datetime | None = Field(description="null while unknown")
    earliestCompletion: datetime | None
    latestCompletion: datetime | None
    remainingTime: float | None = Field(description="minutes")
    criticalPath: list[str]


ProgressAction = Literal[
    "initializeMigration", "startPhase", "updatePhaseProgress", "completePhase", "failPhase", "skipPhase",
    "retryPhase", "startSubTask", "updateSubTaskProgress", "completeSubTask", "failSubTask", "skipSubTask",
    "createAlert", "updateMetrics",
]


class SeedProgressIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"action": "updatePhaseProgress", "migrationId": "aws-conversion-2024", "phaseId": "infrastructure-setup",
         "progress": 50, "metadata": {"currentTask": "Creating VPC"}},
        {"action": "createAlert", "migrationId": "aws-conversion-2024", "type": "warning",
         "message": "High resource usage detected", "phaseId": "infrastructure-setup"},
    ]})

    action: ProgressAction
    migrationId: str = Field(min_length=1, max_length=200)
    phaseId: str | None = Field(default=None, min_length=1, max_length=200)
    subTaskId: str | None = Field(default=None, min_length=1, max_length=200)
    progress: Percent | None = None
    metadata: Metadata | None = None
    error: str | None = Field(default=None, min_length=1, max_length=10_000)
    type: AlertLevel | None = Field(default=None, description="alert level for createAlert")
    message: str | None = Field(default=None, min_length=1, max_length=10_000,
                                description="alert text, or the reason for skipPhase/skipSubTask")
    metrics: dict[str, Any] | None = Field(default=None, description="a partial MigrationMetrics for updateMetrics")
    phases: list[dict[str, Any]] | None = Field(default=None, description="the plan, for initializeMigration")
    name: str | None = Field(default=None, max_length=500)


class SeedResult(_Out):
    success: bool
    action: str
    migrationId: str
    control: Control = Field(description="running, paused or cancelled")
    alertId: str | None = None
    created: bool | None = Field(default=None, description="initializeMigration: false when resumed")


class SeedDashboardIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"action": "pause", "migrationId": "aws-conversion-2024", "reason": "maintenance window"},
        {"action": "acknowledgeAlert", "migrationId": "aws-conversion-2024", "alertId": "5f1c0e9a2b3d4e6f"},
    ]})

    action: Literal["pause", "resume", "cancel", "acknowledgeAlert", "createAlert"]
    migrationId: str | None = Field(default=None, min_length=1, max_length=200)
    alertId: str | None = Field(default=None, min_length=1, max_length=200)
    type: AlertLevel | None = None
    message: str | None = Field(default=None, min_length=1, max_length=10_000)
    phaseId: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=10_000)
    by: str | None = Field(default=None, max_length=200)


class SeedEstimateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    migrationId: str | None = Field(default=None, min_length=1, max_length=200)


def _pick(svc: MigrationService, mid: str | None, who: Principal) -> str:
    if mid:
        check_scope(who, mid)
        return mid
    ids = [i for i in svc.list_ids() if who.may(i)]
    if not ids:
        raise NotFound("there are no migrations yet; create one (POST /api/migrations, or the "
                       "initializeMigration action)")
    return ids[-1]


def _need(value: str | None, field: str, action: str) -> str:
    if value is None:
        raise InvalidInput(f"{field} is required for action {action!r}")
    return value


@router.get("/progress", response_model=SeedOverview, summary="Migration overview (seed shape)")
def get_progress(svc: Svc, migrationId: MigrationIdQuery = None, who: Principal = RequireViewer) -> SeedOverview:
    return SeedOverview.of(svc.overview(_pick(svc, migrationId, who)))


@router.post("/progress", response_model=SeedResult, summary="Any tracker action (seed shape)")
def post_progress(request: Request, body: SeedProgressIn, svc: Svc,
                  who: Principal = RequireOperator) -> SeedResult:
    a, mid = body.action, body.migrationId
    check_scope(who, mid)
    actor = actor_of(request, who)
    alert_id: str | None = None
    created: bool | None = None
    if a == "initializeMigration":
        _, created = svc.initialize(mid, _need_list(body.phases, a), name=body.name, actor=actor)
    elif a == "createAlert":
        alert = svc.create_alert(mid, _need(body.type, "type", a), _need(body.message, "message", a), body.phaseId,
                                 actor=actor)
        alert_id = alert.id
    elif a == "updateMetrics":
        if body.metrics is None:
            raise InvalidInput("metrics is required for action 'updateMetrics'")
        svc.update_metrics(mid, body.metrics, None, actor=actor)
    elif a == "updatePhaseProgress":
        if body.progress is None and not body.metadata:
            raise InvalidInput("progress is required for action 'updatePhaseProgress'")
        svc.update_phase_progress(mid, _need(body.phaseId, "phaseId", a), body.progress, body.metadata, actor=actor)
    elif a == "updateSubTaskProgress":
        if body.progress is None:
            raise InvalidInput("progress is required for action 'updateSubTaskProgress'")
        svc.update_sub_task_progress(mid, _need(body.phaseId, "phaseId", a), _need(body.subTaskId, "subTaskId", a),
                                     body.progress, actor=actor)
    else:
        svc.execute(mid, _seed_command(a, body), actor=actor)
    return SeedResult(success=True, action=a, migrationId=mid, control=svc.control(mid), alertId=alert_id,
                      created=created)


#: the seed's action names for commands, and where each command field is in the seed's body
SEED_COMMANDS: dict[str, tuple[type[Command], dict[str, str]]] = {
    "startPhase": (StartPhase, {}),
    "completePhase": (CompletePhase, {}),
    "failPhase": (FailPhase, {"error": "error"}),
    "skipPhase": (SkipPhase, {"reason": "message"}),
    "retryPhase": (RetryPhase, {}),
    "startSubTask": (StartSubTask, {}),
    "completeSubTask": (CompleteSubTask, {}),
    "failSubTask": (FailSubTask, {"error": "error"}),
    "skipSubTask": (SkipSubTask, {"reason": "message"}),
    "pause": (Pause, {"reason": "reason"}),
    "resume": (Resume, {}),
    "cancel": (Cancel, {"reason": "reason"}),
}
_ADDRESS = {"phase": "phaseId", "sub_task": "subTaskId"}


def _seed_command(action: str, body: BaseModel) -> Command:
    cls, names = SEED_COMMANDS[action]
    args: dict[str, Any] = {}
    for f in fields(cls):
        seed = _ADDRESS.get(f.name) or names.get(f.name, f.name)
        value = getattr(body, seed, None)
        if value is None and f.default is MISSING:
            raise InvalidInput(f"{seed} is required for action {action!r}")
        if value is not None:
            args[f.name] = value
    return cls(**args)


def _need_list(value: list[dict[str, Any]] | None, action: str) -> list[dict[str, Any]]:
    if not value:
        raise InvalidInput(f"phases is required for action {action!r}")
    return value


@router.put("/progress", response_model=SeedEstimate, summary="Completion estimate (seed shape)")
def put_progress(svc: Svc, body: Annotated[SeedEstimateIn | None, Body()] = None,
                 migrationId: MigrationIdQuery = None, who: Principal = RequireViewer) -> SeedEstimate:
    mid = _pick(svc, (body.migrationId if body else None) or migrationId, who)
    e = svc.estimate(mid)
    return SeedEstimate(migrationId=mid, estimatedCompletion=e.completion, earliestCompletion=e.earliest,
                        latestCompletion=e.latest, remainingTime=_minutes(e.remaining_seconds),
                        criticalPath=list(e.critical_path))


@router.get("/dashboard", response_model=SeedDashboard, summary="Complete dashboard data (seed shape)")
def get_dashboard(svc: Svc, migrationId: MigrationIdQuery = None, who: Principal = RequireViewer) -> SeedDashboard:
    return SeedDashboard.of(svc.dashboard(_pick(svc, migrationId, who)))


@router.post("/dashboard", response_model=SeedResult,
             summary="Dashboard actions: pause, resume, cancel (admin); createAlert, acknowledgeAlert (operator)")
def post_dashboard(request: Request, body: SeedDashboardIn, svc: Svc,
                   who: Principal = RequireOperator) -> SeedResult:
    a = body.action
    mid = _pick(svc, body.migrationId, who)
    actor = actor_of(request, who)
    alert_id: str | None = None
    if a in ("pause", "resume", "cancel"):
        check_role(who, Role.ADMIN)
        svc.execute(mid, _seed_command(a, body), actor=actor)
    elif a == "createAlert":
        alert_id = svc.create_alert(mid, _need(body.type, "type", a), _need(body.message, "message", a),
                                    body.phaseId, actor=actor).id
    else:
        alert_id = svc.acknowledge_alert(mid, _need(body.alertId, "alertId", a), body.by or who.name,
                                         actor=actor).id
    return SeedResult(success=True, action=a, migrationId=mid, control=svc.control(mid), alertId=alert_id)
