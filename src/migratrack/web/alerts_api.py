"""Alert delivery over HTTP: deliveries and their attempts, silences, the deadline, heartbeats,
who dispatches, and a channel's test. Viewers read; operators silence, set deadlines and send
heartbeats; admins test a channel.
(Acknowledgement is ``POST /api/migrations/{mid}/alerts/{alert}/ack`` in web/api.py.)

The server's own dispatcher runs here too (``dispatching``): a background task whose every
round runs in a worker thread, so the event loop never waits on the store or a receiver."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from migratrack.alerts import records
from migratrack.alerts.model import Delivery, DeliveryStatus
from migratrack.alerts.outbox import Lease, Outbox
from migratrack.alerts.rules import check_deadline
from migratrack.errors import ConfigurationError, InvalidInput, MigrationNotFound, MigratrackError
from migratrack.service import MigrationService
from migratrack.settings import Settings
from migratrack.storage.base import Storage, parse_duration
from migratrack.web.api import ERRORS, service
from migratrack.web.auth import (
    Principal,
    RequireAdmin,
    RequireOperator,
    RequireViewer,
    actor_of,
    check_scope,
    check_unscoped,
)

log = logging.getLogger("migratrack.alerts")

router = APIRouter(prefix="/api", tags=["alerts"], responses=ERRORS)

MigrationId = Annotated[str, Path(min_length=1, max_length=200, description="migration id")]


Svc = Annotated[MigrationService, Depends(service)]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttemptOut(_Out):
    at: datetime
    ok: bool
    detail: str = Field(description="the receiver's answer, e.g. 'HTTP 500 ...' or '250 OK'")
    by: str = Field(description="the dispatcher that made the attempt")


class DeliveryOut(_Out):
    id: str = Field(description="the idempotency key of the message, the same over every retry")
    channel: str
    kind: str = Field(description="firing, resolved, escalation or test")
    migration_id: str
    alert_ids: list[str]
    status: DeliveryStatus
    reason: str | None = Field(description="why a suppressed delivery was not sent")
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    title: str
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        ids = d.alert_ids if len(d.alert_ids) <= 100 else d.alert_ids[:100]
        return cls(id=d.id, channel=d.channel, kind=d.kind.value, migration_id=d.migration_id, alert_ids=ids,
                   status=d.status, reason=d.reason, created_at=d.created_at, next_attempt_at=d.next_attempt_at,
                   delivered_at=d.delivered_at, title=d.notice().title,
                   attempts=[AttemptOut.model_validate(a) for a in d.attempts])


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duration: str | None = Field(default=None, max_length=20, description="e.g. 2h; or give ends_at")
    ends_at: datetime | None = None
    migration_id: str | None = Field(default=None, max_length=200, description="default: every migration")
    phase: str | None = Field(default=None, max_length=200)
    max_level: str = Field(default="critical", description="alerts at this level or below are muted")
    contains: str | None = Field(default=None, max_length=500, description="text the message must contain")
    comment: str = Field(default="", max_length=1000)


class SilenceOut(_Out):
    id: str
    ends_at: datetime
    created_at: datetime
    created_by: str
    migration_id: str | None
    phase: str | None
    max_level: str
    contains: str | None
    comment: str


def _iso_text(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise ValueError("give the deadline as ISO 8601 text with its zone, e.g. 2026-12-01T06:00:00+00:00")
    return value


class DeadlineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deadline: Annotated[AwareDatetime, BeforeValidator(_iso_text)] | None = Field(
        description="ISO 8601 time with its zone; null clears it")


class DispatcherOut(_Out):
    holder: str | None = Field(description="the dispatcher holding the lease now, or null")


def _only_known_query(request: Request) -> None:
    # a misspelt filter (?migraton=) would otherwise list every delivery, silently
    unknown = sorted(set(request.query_params) - {"migration", "status", "limit"})
    if unknown:
        raise InvalidInput(f"unknown query parameter(s) {', '.join(unknown)}; known: migration, status, limit")
    repeated = sorted(k for k in set(request.query_params) if len(request.query_params.getlist(k)) > 1)
    if repeated:
        raise InvalidInput(f"give each query parameter once; repeated: {', '.join(repeated)}")


@router.get("/alerts/deliveries", response_model=list[DeliveryOut], summary="Alert deliveries, newest first",
            dependencies=[Depends(_only_known_query)])
def deliveries(svc: Svc, migration: Annotated[str | None, Query(max_length=200)] = None,
               status: DeliveryStatus | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               who: Principal = RequireViewer) -> list[DeliveryOut]:
    if migration is not None:
        check_scope(who, migration)
    else:
        check_unscoped(who, "read the deliveries of every migration (name one: ?migration=)")
    return [DeliveryOut.of(d) for d in Outbox(svc.storage).recent(migration_id=migration, status=status,
                                                                   limit=limit)]


@router.get("/migrations/{mid}/alerts/{alert}/deliveries", response_model=list[DeliveryOut],
            summary="Where one alert went: each channel's delivery with every attempt")
def alert_deliveries(mid: MigrationId, alert: Annotated[str, Path(min_length=1, max_length=200)], svc: Svc,
                     _: Principal = RequireViewer) -> list[DeliveryOut]:
    svc.storage.get_alert(mid, alert)  # 404 for an unknown alert
    return [DeliveryOut.of(d) for d in Outbox(svc.storage).for_alert(alert)]


@router.get("/alerts/silences", response_model=list[SilenceOut], summary="Silences in force")
def list_silences(svc: Svc, who: Principal = RequireViewer) -> list[SilenceOut]:
    return [SilenceOut.model_validate(s.to_dict()) for s in records.silences(svc.storage, now=svc.now())
            if who.migrations is None or (s.migration_id is not None and who.may(s.migration_id))]


@router.post("/alerts/silences", response_model=SilenceOut, status_code=201, summary="Mute matching alerts")
def add_silence(request: Request, body: SilenceIn, svc: Svc, who: Principal = RequireOperator) -> SilenceOut:
    if body.migration_id is not None:
        check_scope(who, body.migration_id)
    else:
        check_unscoped(who, "silence the alerts of every migration (name one: migration_id)")
    if (body.duration is None) == (body.ends_at is None):
        raise InvalidInput("give one of duration (e.g. 2h) or ends_at (an ISO time with its zone)")
    try:
        duration = parse_duration(body.duration) if body.duration else None
    except ConfigurationError as exc:
        raise InvalidInput(f"duration: {exc}") from None
    s = records.add_silence(svc.storage, now=svc.now(), ends_at=body.ends_at, duration=duration,
                            created_by=actor_of(request, who), migration_id=body.migration_id, phase=body.phase,
                            max_level=body.max_level, contains=body.contains, comment=body.comment)
    return SilenceOut.model_validate(s.to_dict())


@router.delete("/alerts/silences/{silence}", status_code=204, summary="End a silence now")
def remove_silence(silence: Annotated[str, Path(min_length=1, max_length=64)], svc: Svc,
                   who: Principal = RequireOperator) -> Response:
    if who.migrations is not None:
        found = next((s for s in records.silences(svc.storage) if s.id == silence), None)
        if found is None or found.migration_id is None or not who.may(found.migration_id):
            check_unscoped(who, "end a silence of other migrations")
    records.remove_silence(svc.storage, silence)
    return Response(status_code=204)


@router.put("/migrations/{mid}/deadline", status_code=204, summary="Set or clear the migration's deadline")
def put_deadline(request: Request, mid: MigrationId, body: DeadlineIn, svc: Svc,
                 who: Principal = RequireOperator) -> Response:
    deadline = check_deadline(body.deadline.isoformat()) if body.deadline else None
    records.set_deadline(svc, mid, deadline, actor=actor_of(request, who))
    return Response(status_code=204)


@router.post("/migrations/{mid}/heartbeat", status_code=204, summary="A worker's sign of life (stall detection)")
def heartbeat(request: Request, mid: MigrationId, svc: Svc, who: Principal = RequireOperator) -> Response:
    if not svc.storage.exists(mid):
        raise MigrationNotFound(mid)
    svc.heartbeat(mid, actor=actor_of(request, who))
    return Response(status_code=204)


@router.get("/alerts/dispatcher", response_model=DispatcherOut, summary="Who dispatches alerts now")
def dispatcher(svc: Svc, _: Principal = RequireViewer) -> DispatcherOut:
    return DispatcherOut(holder=Lease(svc.storage).holder(svc.now()))


@router.post("/alerts/channels/{channel}/test", response_model=DeliveryOut,
             summary="Send a test alert through a channel now (admin); the delivery with the receiver's answer",
             description="The channel is one of the server's alert routing configuration (its "
                         "MIGRATRACK_ALERTS_CONFIG and environment). The answer is 200 whether or not the "
                         "receiver took it: read `status` and the last attempt's `detail`. An unknown channel "
                         "is 404, naming the configured ones.")
def test_channel(request: Request, channel: Annotated[str, Path(min_length=1, max_length=200)], svc: Svc,
                 who: Principal = RequireAdmin) -> DeliveryOut:
    from migratrack.admin import StoreAdmin

    check_unscoped(who, "test an alert channel (every migration's alerts go through it)")
    admin = StoreAdmin(svc, settings=getattr(request.app.state, "settings", None))
    return DeliveryOut.of(admin.send_test(channel, actor=actor_of(request, who)))


def start_dispatching(storage: Storage, settings: Settings | None = None) -> asyncio.Task[None] | None:
    """The server's dispatcher, when wanted (see alerts/runner.py); a configuration error is
    logged and the server serves without it."""
    from migratrack.alerts.config import load_config
    from migratrack.alerts.dispatcher import Dispatcher
    from migratrack.alerts.runner import run_async, wanted

    try:
        settings = settings or Settings.from_env()
        config = load_config(settings)
        if not wanted(settings, config):
            return None
        return asyncio.get_running_loop().create_task(run_async(Dispatcher(storage, config)),
                                                      name="migratrack-alerts")
    except MigratrackError as exc:
        log.error("migratrack: alerts will not be dispatched by this server: %s", exc)
        return None


async def stop_dispatching(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

