"""The domain's data: plans (what the author declares) and state (what the store keeps).

Durations are seconds everywhere inside; the seed's minutes appear only at the edges
(plan input given as numbers, and the seed-compatible shapes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from migratrack.core.plan import DEFAULT_LIMITS, Limits, check_phase, check_plan, check_sub_task
from migratrack.core.states import AlertLevel, Control, Status
from migratrack.errors import InvalidInput

JSON = dict[str, Any]


@dataclass(slots=True)
class SubTask:
    """A declared sub-task of a phase (input)."""

    id: str
    name: str | None = None
    estimated_duration: float | timedelta | None = None
    metadata: JSON = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: Any, phase_id: str) -> SubTask:
        """A SubTask, a mapping or an id alone, validated by the plan's model (``core/plan.py``)."""
        spec = check_sub_task(value, phase_id)
        return cls(id=spec.id, name=spec.name, estimated_duration=spec.estimated_duration,
                   metadata=dict(spec.metadata))


@dataclass(slots=True)
class Phase:
    """A declared phase (input). ``estimated_duration`` is minutes (as in the seed) or a timedelta."""

    id: str
    name: str | None = None
    description: str = ""
    dependencies: list[str] = field(default_factory=list)
    estimated_duration: float | timedelta | None = None
    sub_tasks: list[SubTask | str | Mapping[str, Any]] = field(default_factory=list)
    metadata: JSON = field(default_factory=dict)
    requires_approval: bool = False

    @classmethod
    def coerce(cls, value: Any) -> Phase:
        """A Phase or a mapping with the seed's fields, validated by the plan's model (``core/plan.py``)."""
        spec = check_phase(value)
        return cls(
            id=spec.id, name=spec.name, description=spec.description, dependencies=list(spec.dependencies),
            estimated_duration=spec.estimated_duration,
            sub_tasks=[SubTask(s.id, s.name, s.estimated_duration, dict(s.metadata)) for s in spec.sub_tasks],
            metadata=dict(spec.metadata), requires_approval=spec.requires_approval,
        )


@dataclass(slots=True)
class SubTaskState:
    id: str
    name: str
    status: Status = Status.PENDING
    progress: float = 0.0
    estimated_seconds: float | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    metadata: JSON = field(default_factory=dict)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()

    def to_dict(self) -> JSON:
        return {
            "id": self.id, "name": self.name, "status": self.status.value,
            "progress": self.progress, "estimated_seconds": self.estimated_seconds,
            "started_at": _iso(self.started_at), "completed_at": _iso(self.completed_at),
            "error": self.error, "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SubTaskState:
        return cls(
            id=d["id"], name=d["name"], status=Status(d["status"]),
            progress=float(d["progress"]), estimated_seconds=d.get("estimated_seconds"),
            started_at=_dt(d.get("started_at")), completed_at=_dt(d.get("completed_at")),
            error=d.get("error"), metadata=dict(d.get("metadata") or {}),
        )


@dataclass(slots=True)
class PhaseState:
    id: str
    name: str
    description: str = ""
    dependencies: list[str] = field(default_factory=list)
    estimated_seconds: float | None = None
    requires_approval: bool = False
    status: Status = Status.PENDING
    #: reported progress (percent), max-merged; the effective progress also rolls up sub-tasks
    progress: float = 0.0
    done: int = 0
    total: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    #: seconds spent in progress by earlier attempts (a retry starts a new attempt)
    prior_active_seconds: float = 0.0
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    metadata: JSON = field(default_factory=dict)
    approved_by: str | None = None
    approved_at: datetime | None = None
    skip_reason: str | None = None
    sub_tasks: dict[str, SubTaskState] = field(default_factory=dict)
    #: how many of its sub-tasks are in each status, kept by the rules as sub-tasks move: what a
    #: transition checks and a summary shows without reading the sub-tasks. None: not known (a
    #: phase stored before the counts were kept; the store counts its sub-tasks when it loads them)
    sub_task_counts: dict[str, int] | None = field(default=None, compare=False)

    def to_dict(self, *, with_sub_tasks: bool = True) -> JSON:
        d: JSON = {
            "id": self.id, "name": self.name, "description": self.description,
            "dependencies": list(self.dependencies), "estimated_seconds": self.estimated_seconds,
            "requires_approval": self.requires_approval, "status": self.status.value,
            "progress": self.progress, "done": self.done, "total": self.total,
            "started_at": _iso(self.started_at), "completed_at": _iso(self.completed_at),
            "prior_active_seconds": self.prior_active_seconds, "attempts": self.attempts,
            "errors": list(self.errors), "warnings": list(self.warnings),
            "metadata": self.metadata, "approved_by": self.approved_by,
            "approved_at": _iso(self.approved_at), "skip_reason": self.skip_reason,
        }
        if self.sub_task_counts is not None:
            d["sub_task_counts"] = dict(self.sub_task_counts)
        if with_sub_tasks:
            d["sub_tasks"] = [s.to_dict() for s in self.sub_tasks.values()]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PhaseState:
        subs = [SubTaskState.from_dict(s) for s in d.get("sub_tasks", [])]
        return cls(
            id=d["id"], name=d["name"], description=d.get("description", ""),
            dependencies=list(d.get("dependencies", [])),
            estimated_seconds=d.get("estimated_seconds"),
            requires_approval=bool(d.get("requires_approval", False)),
            status=Status(d["status"]), progress=float(d.get("progress", 0.0)),
            done=int(d.get("done", 0)), total=d.get("total"),
            started_at=_dt(d.get("started_at")), completed_at=_dt(d.get("completed_at")),
            prior_active_seconds=float(d.get("prior_active_seconds", 0.0)),
            attempts=int(d.get("attempts", 0)),
            errors=list(d.get("errors", [])), warnings=list(d.get("warnings", [])),
            metadata=dict(d.get("metadata") or {}), approved_by=d.get("approved_by"),
            approved_at=_dt(d.get("approved_at")), skip_reason=d.get("skip_reason"),
            sub_tasks={s.id: s for s in subs},
            sub_task_counts=dict(d["sub_task_counts"]) if d.get("sub_task_counts") is not None
            else (count_statuses(subs) if "sub_tasks" in d else None),
        )


#: counters add up across workers (sum-merged)
COUNTERS = ("successful_operations", "failed_operations", "total_data_migrated")
#: plain gauges (last write wins)
GAUGES = ("migration_speed", "error_rate", "average_operation_time")
RESOURCE_FIELDS = ("cpu", "memory", "network", "storage")
COST_FIELDS = ("estimated_cost", "actual_cost", "cost_per_gb")


@dataclass(slots=True)
class Metrics:
    successful_operations: int = 0
    failed_operations: int = 0
    total_data_migrated: int = 0
    #: gauges as last reported: migration_speed, error_rate, average_operation_time,
    #: resource_utilization.{cpu,memory,network,storage}, cost_metrics.{estimated_cost,...}
    gauges: JSON = field(default_factory=dict)

    def to_dict(self) -> JSON:
        return {
            "successful_operations": self.successful_operations,
            "failed_operations": self.failed_operations,
            "total_data_migrated": self.total_data_migrated,
            "gauges": self.gauges,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Metrics:
        return cls(
            successful_operations=int(d.get("successful_operations", 0)),
            failed_operations=int(d.get("failed_operations", 0)),
            total_data_migrated=int(d.get("total_data_migrated", 0)),
            gauges=dict(d.get("gauges") or {}),
        )


@dataclass(slots=True)
class Pause:
    started_at: datetime
    ended_at: datetime | None = None

    def overlap(self, start: datetime, end: datetime) -> float:
        """Seconds of this pause inside [start, end]."""
        stop = self.ended_at or end
        lo, hi = max(self.started_at, start), min(stop, end)
        return max(0.0, (hi - lo).total_seconds())


@dataclass(slots=True)
class MigrationState:
    """Everything a store keeps about one migration, but its event log and alerts."""

    id: str
    name: str
    created_at: datetime
    phases: dict[str, PhaseState] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    control: Control = Control.RUNNING
    pauses: list[Pause] = field(default_factory=list)
    #: intervals the script said it was throttled (``throttle``/``unthrottle``): work goes on, slowed
    #: by something outside it, and the estimate's rates leave them out as they leave out pauses
    throttles: list[Pause] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancelled_at: datetime | None = None
    metadata: JSON = field(default_factory=dict)
    #: sequence number of the last event written
    seq: int = 0
    #: per-level counts of alerts, maintained by the store
    alert_counts: dict[str, int] = field(default_factory=dict)
    unacknowledged_alerts: int = 0
    #: how many phases are in each status, kept by the rules as phases move (None: not known, a
    #: migration stored before the counts were kept); what tells a transition the migration is done
    #: without reading every phase
    phase_counts: dict[str, int] | None = field(default=None, compare=False)
    #: True when the store loaded only part of the migration (``Storage.load(..., phases=...)``):
    #: the header, the metrics, the phases named and those they depend on; the counts stand in for
    #: the rest
    partial: bool = field(default=False, compare=False)
    #: the time this state was read at, by the clock that stamps the migration's writes: the
    #: write's time inside ``transact``; in ``load``, the store's clock where it has one (None
    #: otherwise: the reader's clock is the clock). Never before the migration's last event.
    as_of: datetime | None = field(default=None, compare=False)

    def phase(self, phase_id: str) -> PhaseState:
        from migratrack.errors import PhaseNotFound

        try:
            return self.phases[phase_id]
        except KeyError:
            # a partial state knows only some phases: naming them would mislead
            raise PhaseNotFound(self.id, phase_id, () if self.partial else list(self.phases)) from None

    def sub_task(self, phase_id: str, sub_task_id: str) -> SubTaskState:
        from migratrack.errors import SubTaskNotFound

        phase = self.phase(phase_id)
        try:
            return phase.sub_tasks[sub_task_id]
        except KeyError:
            counts = phase.sub_task_counts
            whole = not self.partial or (counts is not None and len(phase.sub_tasks) == sum(counts.values()))
            raise SubTaskNotFound(phase_id, sub_task_id, list(phase.sub_tasks) if whole else ()) from None

    def header_dict(self) -> JSON:
        """The migration's own fields (no phases, no metrics) as JSON."""
        return {
            "id": self.id, "name": self.name, "created_at": _iso(self.created_at),
            "control": self.control.value,
            "pauses": [[_iso(p.started_at), _iso(p.ended_at)] for p in self.pauses],
            **({"throttles": [[_iso(p.started_at), _iso(p.ended_at)] for p in self.throttles]}
               if self.throttles else {}),
            "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
            "cancelled_at": _iso(self.cancelled_at), "metadata": self.metadata,
            **({"phase_counts": dict(self.phase_counts)} if self.phase_counts is not None else {}),
        }

    def apply_header(self, d: Mapping[str, Any]) -> None:
        self.name = d["name"]
        self.created_at = _dt(d["created_at"]) or self.created_at
        self.control = Control(d.get("control", "running"))
        self.pauses = [Pause(_dt(a) or self.created_at, _dt(b)) for a, b in d.get("pauses", [])]
        self.throttles = [Pause(_dt(a) or self.created_at, _dt(b)) for a, b in d.get("throttles", [])]
        self.started_at = _dt(d.get("started_at"))
        self.finished_at = _dt(d.get("finished_at"))
        self.cancelled_at = _dt(d.get("cancelled_at"))
        self.metadata = dict(d.get("metadata") or {})
        counts = d.get("phase_counts")
        self.phase_counts = dict(counts) if counts is not None else None

    @classmethod
    def from_header(cls, d: Mapping[str, Any]) -> MigrationState:
        created = _dt(d["created_at"])
        assert created is not None
        state = cls(id=d["id"], name=d["name"], created_at=created)
        state.apply_header(d)
        return state


@dataclass(slots=True)
class Alert:
    id: str
    level: AlertLevel
    message: str
    created_at: datetime
    phase: str | None = None
    #: "user" for create_alert(), "rule:<name>" for automatic alerts
    source: str = "user"
    actor: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None

    def to_dict(self) -> JSON:
        return {
            "id": self.id, "level": self.level.value, "message": self.message,
            "created_at": _iso(self.created_at), "phase": self.phase, "source": self.source,
            "actor": self.actor, "acknowledged_at": _iso(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        created = _dt(d["created_at"])
        assert created is not None
        return cls(
            id=d["id"], level=AlertLevel(d["level"]), message=d["message"], created_at=created,
            phase=d.get("phase"), source=d.get("source", "user"), actor=d.get("actor"),
            acknowledged_at=_dt(d.get("acknowledged_at")), acknowledged_by=d.get("acknowledged_by"),
        )


@dataclass(slots=True, frozen=True)
class NewEvent:
    """An event before the store numbers it."""

    type: str
    ts: datetime
    actor: str
    payload: JSON = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class Event:
    """An event in a migration's log: ``seq`` is gap-free and strictly increasing per migration."""

    migration_id: str
    seq: int
    type: str
    ts: datetime
    actor: str
    payload: JSON = field(default_factory=dict)

    def to_dict(self) -> JSON:
        return {
            "migration_id": self.migration_id, "seq": self.seq, "type": self.type,
            "ts": _iso(self.ts), "actor": self.actor, "payload": self.payload,
        }


_NO_STATUSES = {s.value: 0 for s in Status}


def count_statuses(items: Iterable[PhaseState] | Iterable[SubTaskState]) -> dict[str, int]:
    """How many of ``items`` (phases or sub-tasks) are in each status; every status is a key."""
    counts = dict(_NO_STATUSES)
    for item in items:
        counts[item.status] += 1  # a str enum: its member finds its value's key
    return counts


def recount(state: MigrationState) -> None:
    """Count a whole state's phases, and the sub-tasks of each phase: for a state that holds
    them all (a new plan, a full load)."""
    state.phase_counts = count_statuses(state.phases.values())
    for p in state.phases.values():
        p.sub_task_counts = count_statuses(p.sub_tasks.values())


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def check_progress(value: Any, what: str = "progress") -> float:
    """A percentage in [0, 100]; NaN, infinities, booleans and strings are rejected."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a number between 0 and 100, not {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidInput(f"{what} must be a finite number between 0 and 100, got {value!r}")
    if v < 0 or v > 100:
        raise InvalidInput(f"{what} must be between 0 and 100, got {value!r}")
    return v


#: the largest count (and event sequence number) taken: the largest integer that every JSON reader
#: (JavaScript's included) and Redis's Lua keep exactly
MAX_COUNT = 2**53 - 1


def check_count(value: Any, what: str, *, allow_zero: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a whole number, not {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise InvalidInput(f"{what} must be a whole number, got {value!r}")
        value = int(value)
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidInput(f"{what} must be {'non-negative' if allow_zero else 'positive'}, got {value!r}")
    if value > MAX_COUNT:
        raise InvalidInput(f"{what} must be at most {MAX_COUNT} (2^53 - 1), got {value!r}")
    return int(value)


def build_state(
    migration_id: str, phases: Iterable[Phase | Mapping[str, Any]], now: datetime, name: str | None = None,
    *, limits: Limits = DEFAULT_LIMITS,
) -> MigrationState:
    """Validate a plan (through the one model, ``core/plan.py``) and turn it into a fresh state.
    Raises InvalidPlan listing every problem; pure."""
    spec = check_plan(migration_id, phases, name, limits=limits)
    state = MigrationState(id=migration_id, name=name or migration_id, created_at=now)
    for p in spec.phases:
        subs = {s.id: SubTaskState(id=s.id, name=s.name or s.id, estimated_seconds=_seconds(s.estimated_duration),
                                   metadata=dict(s.metadata)) for s in p.sub_tasks}
        state.phases[p.id] = PhaseState(
            id=p.id, name=p.name or p.id, description=p.description,
            dependencies=list(dict.fromkeys(p.dependencies)),
            estimated_seconds=_seconds(p.estimated_duration),
            requires_approval=p.requires_approval, metadata=dict(p.metadata),
            sub_tasks=subs,
        )
    recount(state)
    return state


def _seconds(minutes: float | None) -> float | None:
    # rounded to a timedelta's resolution: a timedelta reaches the model as minutes, and
    # seconds / 60 * 60 is not always the seconds given
    return None if minutes is None else round(minutes * 60.0, 6)


def plan_signature(state: MigrationState) -> list[tuple[str, tuple[str, ...], tuple[str, ...], bool]]:
    """What must match for initialize_migration() to resume an existing migration. An approval
    gate is part of it: resuming must not silently drop (or add) a go/no-go."""
    return [
        (p.id, tuple(p.dependencies), tuple(p.sub_tasks), p.requires_approval) for p in state.phases.values()
    ]
