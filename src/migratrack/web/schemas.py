"""Request and response bodies of the JSON API (snake_case; the seed's camelCase lives in compat)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from migratrack.core.models import MAX_COUNT, Event
from migratrack.core.plan import Id, PlanSpec
from migratrack.core.states import AlertLevel, Control, MigrationStatus
from migratrack.core.values import Metadata
from migratrack.core.views import AlertView, Overview
from migratrack.web.auth import split_actor

Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False, strict=True)]  # strict: no true/false


def _a_number(value: Any) -> Any:
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a number, not true/false or text")
    return value


# a whole number: 3 or 3.0 (JSON does not tell them apart), never true/false, "3" or 3.5
Count = Annotated[int, Field(ge=0, le=MAX_COUNT), BeforeValidator(_a_number)]
#: the counters that add up across workers
Counter = Literal["successful_operations", "failed_operations", "total_data_migrated"]
Text = Annotated[str, Field(min_length=1, max_length=10_000)]
Number = Annotated[float, Field(allow_inf_nan=False)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommandBody(_In):
    """The base of the request bodies that ``web/api.py`` builds from the commands' fields."""


class CreateMigration(PlanSpec):
    """A plan, validated by the core's model as everywhere else, and the migration's id."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "id": "db-move-2026", "name": "Move orders DB",
        "phases": [
            {"id": "schema", "estimated_duration": 10},
            {"id": "copy", "dependencies": ["schema"], "estimated_duration": 120, "sub_tasks": ["orders", "users"]},
            {"id": "cutover", "dependencies": ["copy"], "requires_approval": True},
        ],
    }]})

    id: Id
    replace: bool = Field(default=False, description="discard an existing migration with this id (admin only)")


class Created(BaseModel):
    migration_id: str
    created: bool = Field(description="false when the migration existed with the same plan (resumed)")
    state: dict[str, Any] = Field(description="the migration as stored: header, phases, metrics")


class MigrationSummary(BaseModel):
    migration_id: str
    name: str
    status: MigrationStatus
    control: Control
    overall_progress: float
    estimated_completion: datetime | None
    created_at: datetime
    last_seq: int

    @classmethod
    def of(cls, o: Overview) -> MigrationSummary:
        return cls(migration_id=o.migration_id, name=o.name, status=o.status, control=o.control,
                   overall_progress=o.overall_progress, estimated_completion=o.estimated_completion,
                   created_at=o.created_at, last_seq=o.last_seq)


class ProgressIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"progress": 42.5}, {"done": 1200, "total": 5000}]})

    progress: Percent | None = Field(default=None, description="percent; a lower value than stored is ignored")
    done: Count | None = Field(default=None, description="items done (of total)")
    total: Count | None = None
    add: Count | None = Field(default=None, description="add to the done count (adds up across workers)")
    metadata: Metadata | None = None


class SubTaskProgressIn(_In):
    progress: Percent


class FailIn(_In):
    error: Text


class SkipIn(_In):
    reason: Text


class ApproveIn(_In):
    by: str | None = Field(default=None, max_length=200, description="who approves; default the token's name")


class AlertIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"level": "warning", "message": "replica lag above 30 s", "phase": "copy"}]})

    level: AlertLevel
    message: Text
    phase: Id | None = None


class AckIn(_In):
    by: str | None = Field(default=None, max_length=200, description="who acknowledges; default the token's name")


class MetricsIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"values": {"migration_speed": 26214400, "resource_utilization": {"cpu": 55}},
         "increment": {"successful_operations": 150, "total_data_migrated": 524288000}}]})

    values: dict[str, Number | dict[str, Number]] = Field(
        default_factory=dict, description="a partial MigrationMetrics (snake_case or camelCase), last write wins")
    increment: dict[Counter, Count] = Field(
        default_factory=dict, description="counters to add to: successful_operations, failed_operations, "
                                          "total_data_migrated")


class ControlIn(_In):
    action: Literal["pause", "resume", "cancel"]
    reason: str | None = Field(default=None, max_length=10_000)


class UpdateIn(_In):
    phase: Id
    sub_task: Id | None = None
    progress: Percent | None = None
    done: Count | None = None
    total: Count | None = None
    add: Count | None = None
    metadata: Metadata | None = None


class BatchIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "updates": [{"phase": "copy", "add": 5000}, {"phase": "copy", "sub_task": "orders", "progress": 80}],
        "increments": {"successful_operations": 5000}}]})

    updates: list[UpdateIn] = Field(default_factory=list, max_length=10_000,
                                    description="applied in order, each one atomically")
    increments: dict[Counter, Count] = Field(default_factory=dict, description="counter increments")


class ControlOut(BaseModel):
    control: Control = Field(description="running, paused or cancelled: a worker waits while paused")


class ChangeOut(BaseModel):
    last_seq: int = Field(description="sequence number of the last event written")
    control: Control = Field(description="running, paused or cancelled")


class EventView(BaseModel):
    migration_id: str
    seq: int
    type: str
    ts: datetime
    actor: str = Field(description="who: the token's identity, then any name the client claimed")
    identity: str = Field(description="the token (or, for a script writing to its store directly, "
                                      "the process) that made the change: never client-supplied")
    claimed_actor: str | None = Field(description="the name the client gave itself (X-Migratrack-Actor, "
                                                  "an acknowledgement's by): a claim, not proof")
    payload: dict[str, Any]

    @classmethod
    def of(cls, e: Event) -> EventView:
        identity, claim = split_actor(e.actor)
        return cls(migration_id=e.migration_id, seq=e.seq, type=e.type, ts=e.ts, actor=e.actor,
                   identity=identity, claimed_actor=claim, payload=e.payload)


class AuditPage(BaseModel):
    events: list[EventView]
    next_after: int | None = Field(description="pass as ?after= for the next page; null at the end")


#: alerts as the API returns them: the same model as the dashboard's
AlertOut = AlertView


class TokenIn(_In):
    name: str = Field(min_length=1, max_length=100, pattern=r"^\S+$")
    role: Literal["admin", "operator", "viewer"]
    migrations: list[Id] | None = Field(default=None, min_length=1, max_length=1000,
                                        description="limit the token to these migrations (default: all)")


class StreamTicket(BaseModel):
    ticket: str = Field(description="pass as ?ticket= to GET /api/migrations/{id}/events")
    expires_at: datetime = Field(description="the stream must be opened before this")
    url: str = Field(description="the stream's path with the ticket")


class TokenOut(BaseModel):
    id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    created_by: str | None = Field(default=None, description="the admin token (or local CLI user) that created it")
    revoked_by: str | None = Field(default=None, description="the admin token (or local CLI user) that revoked it")
    migrations: list[str] | None = Field(default=None, description="the migrations it may act on; null: all")


class TokenCreated(TokenOut):
    token: str = Field(description="the token itself; shown once, only its hash is stored")


class PurgeIn(_In):
    older_than: str = Field(min_length=1, max_length=20, pattern=r"^\d+(\.\d+)?[smhdw]?$",
                            description="age of the finished migrations to drop: 30d, 12h, 90m, 45s, 2w "
                                        "(more than zero)")
    dry_run: bool = Field(default=False, description="list what would be dropped, drop nothing")


class PurgeOut(BaseModel):
    cutoff: datetime = Field(description="finished migrations that ended before this are dropped")
    dry_run: bool
    migration_ids: list[str] = Field(description="what was dropped (with dry_run: what would be)")


class Health(BaseModel):
    status: Literal["ok", "ready"]
    version: str
