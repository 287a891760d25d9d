"""The JSON API under /api/migrations: thin handlers that translate HTTP to service calls."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import MISSING, fields
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, get_type_hints
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, create_model
from starlette.concurrency import run_in_threadpool

from migratrack.core.commands import ADDRESS_FIELDS, BY_VERB, COMMANDS, Command, Target
from migratrack.core.models import MAX_COUNT
from migratrack.core.rules import Change
from migratrack.core.views import Dashboard, EstimateView, Overview
from migratrack.errors import MigrationNotFound
from migratrack.service import MigrationService, ProgressUpdate
from migratrack.storage import MergeResult
from migratrack.web.auth import (
    Principal,
    RequireAdmin,
    RequireOperator,
    RequireViewer,
    Role,
    TokenManager,
    actor_label,
    actor_of,
    check_role,
    check_scope,
    check_unscoped,
    issue_ticket,
)
from migratrack.web.errors import ErrorBody
from migratrack.web.group import GroupCommit
from migratrack.web.lean import LeanRoute
from migratrack.web.replay import HEADER as IDEMPOTENCY_HEADER
from migratrack.web.replay import Replay, Replays, op_id_of
from migratrack.web.schemas import (
    AckIn,
    AlertIn,
    AlertOut,
    AuditPage,
    BatchIn,
    ChangeOut,
    CommandBody,
    ControlIn,
    ControlOut,
    Created,
    CreateMigration,
    EventView,
    MetricsIn,
    MigrationSummary,
    ProgressIn,
    PurgeIn,
    PurgeOut,
    StreamTicket,
    SubTaskProgressIn,
    TokenCreated,
    TokenIn,
    TokenOut,
)

T = TypeVar("T")

#: the largest sequence number a cursor may name (stores keep 64-bit integers)
MAX_SEQ = MAX_COUNT

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no token, or an unknown or revoked one"},
    403: {"model": ErrorBody, "description": "the token's role does not allow this"},
    404: {"model": ErrorBody, "description": "no such migration, phase, sub-task or alert"},
    409: {"model": ErrorBody, "description": "the migration's state forbids this (the rule's message)"},
    413: {"model": ErrorBody, "description": "request body over 1 MiB"},
    422: {"model": ErrorBody, "description": "malformed JSON or a wrong value; names the field"},
    503: {"model": ErrorBody, "description": "the store is unreachable; retry"},
}

router = APIRouter(prefix="/api/migrations", tags=["migrations"], responses=ERRORS)
#: the progress routes, the bulk of a server's traffic
hot_router = APIRouter(prefix="/api/migrations", tags=["migrations"], responses=ERRORS, route_class=LeanRoute)
tokens_router = APIRouter(prefix="/api/tokens", tags=["tokens"], responses=ERRORS)
#: store maintenance an admin may do through the server
maintenance_router = APIRouter(prefix="/api", tags=["maintenance"], responses=ERRORS)

MigrationId = Annotated[str, Path(min_length=1, max_length=200, description="migration id",
                                  examples=["db-move-2026"])]
PhaseId = Annotated[str, Path(min_length=1, max_length=200, description="phase id", examples=["copy"])]
SubId = Annotated[str, Path(min_length=1, max_length=200, description="sub-task id", examples=["orders"])]
IdemKey = Annotated[str | None, Header(
    alias=IDEMPOTENCY_HEADER, max_length=200,
    description="a retried write with the same key (from the same token, with the same request) is applied "
                "once and answered as the first was; the key is kept in the store for its dedupe window "
                "(24 h by default). The same key with another request gets 422.")]


async def service(request: Request) -> MigrationService:
    svc: MigrationService = request.app.state.service
    return svc


async def call(request: Request, fn: Callable[[], T]) -> T:
    """Run a store operation in a worker thread, never on the event loop: a slow write (or
    another process holding SQLite's write lock, or a paused Redis) must not hold up every
    other request, ``/healthz`` included."""
    return await run_in_threadpool(fn)


def replays(request: Request) -> Replays:
    r: Replays = request.app.state.replays
    return r


T_Out = TypeVar("T_Out", bound=BaseModel)


def keyed(request: Request, key: str | None, who: Principal, body: BaseModel | None, out: type[T_Out],
          write: Callable[[str | None], T_Out]) -> T_Out:
    """Run ``write(op_id)`` for a request that may carry an Idempotency-Key: a repeat of a request
    that was answered gets that answer again; anything else is written once per key."""
    r = replays(request)
    replay = r.begin(key, who, request, body)
    if replay is not None and replay.response is not None:
        return out.model_validate(replay.response)
    answer = write(op_id_of(replay))
    r.finish(replay, answer)
    return answer


Svc = Annotated[MigrationService, Depends(service)]


def _change(svc: MigrationService, mid: str, c: object) -> ChangeOut:
    return ChangeOut(last_seq=c.last_seq if isinstance(c, Change) else 0, control=svc.control(mid))


# -- migrations ------------------------------------------------------------------------------

@router.get("", response_model=list[MigrationSummary], summary="List migrations (status, progress, ETA)",
            description="Oldest first, a page at a time: the `Link` header (rel=\"next\") names the next "
                        "page while there is one.")
def list_migrations(svc: Svc, response: Response, who: Principal = RequireViewer,
                    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 100,
                    after: Annotated[str | None, Query(min_length=1, max_length=200,
                                                       description="the page after this migration id")] = None,
                    ) -> list[MigrationSummary]:
    ids = [mid for mid in svc.list_ids() if who.may(mid)]  # ids are cheap; overviews are not
    if after is not None:
        ids = ids[ids.index(after) + 1:] if after in ids else []
    out = []
    for mid in ids[:limit]:
        try:
            out.append(MigrationSummary.of(svc.overview(mid)))
        except MigrationNotFound:  # deleted meanwhile
            continue
    if len(ids) > limit:
        response.headers["Link"] = f'</api/migrations?after={quote(ids[limit - 1], safe="")}&limit={limit}>; rel="next"'
    return out


@router.post("", response_model=Created, status_code=201, summary="Create a migration from a plan",
             responses={200: {"model": Created, "description": "existed with the same plan: resumed"}})
def create_migration(request: Request, response: Response, body: CreateMigration, svc: Svc,
                     who: Principal = RequireOperator) -> Created:
    check_scope(who, body.id)
    if body.replace:
        check_role(who, Role.ADMIN)
    phases = [p.model_dump(exclude_none=True) for p in body.phases]
    state, created = svc.initialize(body.id, phases, name=body.name, replace=body.replace,
                                    actor=actor_of(request, who), metadata=body.metadata or None)
    if not created:
        response.status_code = 200
    return Created(migration_id=state.id, created=created, state=state_dict(svc, state.id))


def state_dict(svc: MigrationService, mid: str) -> dict[str, Any]:
    s = svc.state(mid)
    return {**s.header_dict(), "seq": s.seq, "metrics": s.metrics.to_dict(),
            "phases": [p.to_dict() for p in s.phases.values()]}


@router.get("/{mid}", response_model=Overview, summary="Overview: status, overall progress, ETA")
def overview(mid: MigrationId, svc: Svc, _: Principal = RequireViewer) -> Overview:
    return svc.overview(mid)


@router.get("/{mid}/dashboard", response_model=Dashboard, summary="Everything a dashboard shows")
def dashboard(mid: MigrationId, svc: Svc, alerts: Annotated[int, Query(ge=0, le=500)] = 20,
              _: Principal = RequireViewer) -> Dashboard:
    return svc.dashboard(mid, alerts=alerts)


@router.get("/{mid}/estimate", response_model=EstimateView, summary="Completion estimate with its interval")
def estimate(mid: MigrationId, svc: Svc, _: Principal = RequireViewer) -> EstimateView:
    return EstimateView.of(svc.estimate(mid))


@router.get("/{mid}/state", response_model=dict[str, Any], summary="The migration as stored (raw)")
def raw_state(mid: MigrationId, svc: Svc, _: Principal = RequireViewer) -> dict[str, Any]:
    return state_dict(svc, mid)


# -- commands: one route per class of core/commands.py ----------------------------------------

_ADDRESS_PARAMS: dict[str, Any] = {"phase": PhaseId, "sub_task": SubId}


def _field_names(cls: type[Command]) -> set[str]:
    return {f.name for f in fields(cls)}


def _body_model(cls: type[Command]) -> type[BaseModel] | None:
    """A command's request body: its arguments, validated by the constraints on its fields."""
    hints = get_type_hints(cls, include_extras=True)
    spec: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in ADDRESS_FIELDS:
            spec[f.name] = (hints[f.name], ... if f.default is MISSING else f.default)
    if not spec:
        return None
    model: type[BaseModel] = create_model(f"{cls.__name__}In", __base__=CommandBody, **spec)
    return model


def _command_route(cls: type[Command]) -> None:
    """Register ``POST /api/migrations/{mid}/<the command's path>``, which runs the command."""
    body_model = _body_model(cls)
    optional_body = body_model is not None and not any(f.is_required() for f in body_model.model_fields.values())
    names = _field_names(cls)

    def handler(request: Request, mid: str, svc: MigrationService, who: Principal, body: BaseModel | None = None,
                key: str | None = None, **address: str) -> ChangeOut:
        args: dict[str, Any] = {**address, **(body.model_dump(exclude_none=True) if body is not None else {})}
        if "by" in names and args.get("by") is None:
            args["by"] = who.name  # who approves, when the request does not say: the token's name
        return keyed(request, key, who, body, ChangeOut, lambda op_id: _change(
            svc, mid, svc.execute(mid, cls(**args), actor=actor_of(request, who), op_id=op_id)))

    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("request", kw, annotation=Request),
        inspect.Parameter("mid", kw, annotation=MigrationId),
        *(inspect.Parameter(n, kw, annotation=_ADDRESS_PARAMS[n]) for n in ADDRESS_FIELDS if n in names),
        inspect.Parameter("svc", kw, annotation=Svc),
    ]
    if body_model is not None:
        if optional_body:
            params.append(inspect.Parameter("body", kw, annotation=Annotated[body_model | None, Body()],
                                            default=None))
        else:
            params.append(inspect.Parameter("body", kw, annotation=body_model))
    params.append(inspect.Parameter("key", kw, annotation=IdemKey, default=None))
    require = RequireAdmin if cls.role == Role.ADMIN.value else RequireOperator
    params.append(inspect.Parameter("who", kw, annotation=Principal, default=require))
    handler.__signature__ = inspect.Signature(params, return_annotation=ChangeOut)  # type: ignore[attr-defined]
    router.add_api_route("/{mid}/" + cls.path(), handler, methods=["POST"], response_model=ChangeOut,
                         summary=cls.summary, name=f"{cls.target.value}_{cls.verb}")


for _command in COMMANDS:
    _command_route(_command)


# -- phases ------------------------------------------------------------------------------------

def _lean(path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@router.post`` for a hot route: the same kind of route, filled by ``web/lean.py``'s
    plan, in a router of its own that the app includes first (matched before the others)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        hot_router.add_api_route(path, fn, methods=["POST"], **kwargs)
        return fn

    return register


def group_commit(request: Request) -> GroupCommit:
    group: GroupCommit | None = getattr(request.app.state, "group", None)
    if group is None:
        group = request.app.state.group = GroupCommit(request.app.state.service)
    return group


async def _progress(request: Request, svc: MigrationService, mid: str, update: ProgressUpdate, actor: str,
                    key: str | None, who: Principal, body: BaseModel,
                    write: Callable[[str | None], object]) -> ControlOut:
    """A single progress report: on an embedded store, a plain merge joins the group commit of
    this turn of the event loop; anything else (or what the store answers FALLBACK to) is
    written on its own. With an Idempotency-Key, once per key."""
    replay: Replay | None = None
    if key:
        replay = await call(request, lambda: replays(request).begin(key, who, request, body))
        if replay is not None and replay.response is not None:
            return ControlOut.model_validate(replay.response)
    answer: ControlOut | None = None
    if request.app.state.group_commit:
        merge = MigrationService.as_merge(update, op_id_of(replay))
        if merge is not None:
            result, control = await group_commit(request).submit(mid, actor, merge)
            if result is not MergeResult.FALLBACK:
                answer = ControlOut(control=control)

    def run() -> ControlOut:
        out = answer
        if out is None:
            write(op_id_of(replay))
            out = ControlOut(control=svc.control(mid))
        replays(request).finish(replay, out)
        return out

    if answer is not None and replay is None:
        return answer
    return await call(request, run)


@_lean("/{mid}/phases/{phase}/progress", response_model=ControlOut,
       summary="Report a phase's progress (percent or done/total); answers the control state")
async def phase_progress(request: Request, mid: MigrationId, phase: PhaseId, body: ProgressIn, svc: Svc,
                         key: IdemKey = None, who: Principal = RequireOperator) -> ControlOut:
    actor = actor_of(request, who)
    update = ProgressUpdate(phase, None, body.progress, body.done, body.total, body.add, body.metadata or {})
    return await _progress(request, svc, mid, update, actor, key, who, body, lambda op_id: svc.update_phase_progress(
        mid, phase, body.progress, body.metadata, done=body.done, total=body.total, add=body.add, actor=actor,
        op_id=op_id))


@_lean("/{mid}/phases/{phase}/subtasks/{sub}/progress", response_model=ControlOut,
       summary="Report a sub-task's progress; answers the control state")
async def sub_task_progress(request: Request, mid: MigrationId, phase: PhaseId, sub: SubId,
                            body: SubTaskProgressIn, svc: Svc, key: IdemKey = None,
                            who: Principal = RequireOperator) -> ControlOut:
    actor = actor_of(request, who)
    return await _progress(request, svc, mid, ProgressUpdate(phase, sub, body.progress), actor, key, who, body,
                           lambda op_id: svc.update_sub_task_progress(mid, phase, sub, body.progress, actor=actor,
                                                                      op_id=op_id))


# -- alerts, metrics, control, batch -----------------------------------------------------------

@router.get("/{mid}/alerts", response_model=list[AlertOut], summary="Alerts, newest first")
def list_alerts(mid: MigrationId, svc: Svc, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                unacknowledged: bool = False, _: Principal = RequireViewer) -> list[AlertOut]:
    return [AlertOut.of(a) for a in svc.alerts(mid, limit=limit, unacknowledged_only=unacknowledged)]


@router.get("/{mid}/alerts/{alert}", response_model=AlertOut, summary="One alert")
def get_alert(mid: MigrationId, alert: Annotated[str, Path(min_length=1, max_length=200)], svc: Svc,
              _: Principal = RequireViewer) -> AlertOut:
    return AlertOut.of(svc.storage.get_alert(mid, alert))


@router.post("/{mid}/alerts", response_model=AlertOut, status_code=201, summary="Raise an alert")
def create_alert(request: Request, mid: MigrationId, body: AlertIn, svc: Svc, key: IdemKey = None,
                 who: Principal = RequireOperator) -> AlertOut:
    actor = actor_of(request, who)
    return keyed(request, key, who, body, AlertOut, lambda op_id: AlertOut.of(svc.create_alert(
        mid, body.level, body.message, body.phase, actor=actor, op_id=op_id)))


@router.post("/{mid}/alerts/{alert}/ack", response_model=AlertOut, summary="Acknowledge an alert")
def acknowledge_alert(request: Request, mid: MigrationId, alert: Annotated[str, Path(min_length=1, max_length=200)],
                      svc: Svc, body: Annotated[AckIn | None, Body()] = None,
                      who: Principal = RequireOperator) -> AlertOut:
    # the acknowledgement names the token; a `by` the client gives is kept as a claim beside it
    by = actor_label(body.by if body else None, who)
    return AlertOut.of(svc.acknowledge_alert(mid, alert, by, actor=actor_of(request, who)))


def _metrics(request: Request, mid: str, body: MetricsIn, svc: MigrationService, key: str | None,
             who: Principal) -> ControlOut:
    actor = actor_of(request, who)

    def write(op_id: str | None) -> ControlOut:
        svc.update_metrics(mid, body.values, {str(k): v for k, v in body.increment.items()}, actor=actor,
                           op_id=op_id)
        return ControlOut(control=svc.control(mid))

    return keyed(request, key, who, body, ControlOut, write)


@router.patch("/{mid}/metrics", response_model=ControlOut,
              summary="Update metrics: set values (a partial MigrationMetrics) and add to counters")
def update_metrics(request: Request, mid: MigrationId, body: MetricsIn, svc: Svc, key: IdemKey = None,
                   who: Principal = RequireOperator) -> ControlOut:
    return _metrics(request, mid, body, svc, key, who)


@router.post("/{mid}/metrics", response_model=ControlOut, summary="Update metrics (same as PATCH)")
def post_metrics(request: Request, mid: MigrationId, body: MetricsIn, svc: Svc, key: IdemKey = None,
                 who: Principal = RequireOperator) -> ControlOut:
    return _metrics(request, mid, body, svc, key, who)


@router.post("/{mid}/control", response_model=ControlOut, summary="Pause, resume or cancel (admin)")
def control(request: Request, mid: MigrationId, body: ControlIn, svc: Svc, key: IdemKey = None,
            who: Principal = RequireAdmin) -> ControlOut:
    cls = BY_VERB[(Target.MIGRATION, body.action)]
    args = {"reason": body.reason} if body.reason is not None and "reason" in _field_names(cls) else {}

    def write(op_id: str | None) -> ControlOut:
        svc.execute(mid, cls(**args), actor=actor_of(request, who), op_id=op_id)
        return ControlOut(control=svc.control(mid))

    return keyed(request, key, who, body, ControlOut, write)


@_lean("/{mid}/batch", response_model=ControlOut,
       summary="Apply a list of progress updates and counter increments in order (what the SDK sends)",
       description="Each update is applied on its own, in order. If one is refused (unknown phase, "
                   "phase not in progress) the others are still applied and the response is the first "
                   "refusal's error.")
async def batch(request: Request, mid: MigrationId, body: BatchIn, svc: Svc, key: IdemKey = None,
                who: Principal = RequireOperator) -> ControlOut:
    actor = actor_of(request, who)
    updates = [ProgressUpdate(phase=u.phase, sub_task=u.sub_task, progress=u.progress, done=u.done, total=u.total,
                              add=u.add, metadata=u.metadata or {}) for u in body.updates]

    def apply(op_id: str | None) -> ControlOut:
        increments: dict[str, int] = {str(k): v for k, v in body.increments.items()}
        svc.apply_updates(mid, updates, increments or None, actor=actor, op_id=op_id)
        return ControlOut(control=svc.control(mid))

    return await call(request, lambda: keyed(request, key, who, body, ControlOut, apply))


@router.post("/{mid}/stream-ticket", response_model=StreamTicket,
             summary="A short-lived, read-only ticket that opens this migration's event stream",
             description="For a browser's EventSource, which cannot send an Authorization header: open "
                         "`GET …/events?ticket=…` within two minutes. The ticket reads this migration "
                         "only; revoking the token voids it.")
async def stream_ticket(request: Request, mid: MigrationId, svc: Svc, who: Principal = RequireViewer) -> StreamTicket:
    manager: TokenManager | None = request.app.state.tokens

    def issue() -> tuple[str, int]:
        if not svc.exists(mid):
            raise MigrationNotFound(mid)
        record = manager.record(who.token_id) if manager is not None else None
        # without authentication the stream needs no ticket: this one is never checked
        return issue_ticket(record.token_hash if record is not None else "00" * 32, who, mid)

    ticket, expires = await call(request, issue)
    return StreamTicket(ticket=ticket, expires_at=datetime.fromtimestamp(expires, UTC),
                        url=f"/api/migrations/{quote(mid, safe='')}/events?ticket={ticket}")


@router.get("/{mid}/control", response_model=ControlOut, summary="The control state alone (cheap)")
def get_control(mid: MigrationId, svc: Svc, _: Principal = RequireViewer) -> ControlOut:
    return ControlOut(control=svc.control(mid))


@router.get("/{mid}/audit", response_model=AuditPage, summary="The audit trail (event log), paged")
def audit(mid: MigrationId, svc: Svc,
          after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="events after this seq")] = 0,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100, _: Principal = RequireViewer) -> AuditPage:
    events = svc.events(mid, after, limit)
    next_after = events[-1].seq if len(events) == limit else None
    return AuditPage(events=[EventView.of(e) for e in events], next_after=next_after)


# -- tokens ------------------------------------------------------------------------------------

def _tokens(request: Request) -> TokenManager:
    manager: TokenManager | None = request.app.state.tokens
    if manager is None:
        # a token made while anyone may call the server would outlive that mode: never
        raise HTTPException(403, "token routes are off while the server runs without authentication "
                                 "(--insecure-no-auth); create tokens with 'migratrack token create'")
    return manager


def _token_out(t: Any) -> TokenOut:
    return TokenOut(id=t.id, name=t.name, role=t.role, created_at=t.created_at, revoked_at=t.revoked_at,
                    created_by=t.created_by, revoked_by=t.revoked_by, migrations=t.migrations)


@tokens_router.get("", response_model=list[TokenOut], summary="List tokens (admin); never the tokens themselves")
def list_tokens(request: Request, who: Principal = RequireAdmin) -> list[TokenOut]:
    check_unscoped(who, "manage tokens")
    return [_token_out(t) for t in _tokens(request).records()]


@tokens_router.post("", response_model=TokenCreated, status_code=201, summary="Create a token (admin)")
def create_token(request: Request, body: TokenIn, who: Principal = RequireAdmin) -> TokenCreated:
    check_unscoped(who, "manage tokens")
    token, t = _tokens(request).create(body.name, body.role, by=who.label, migrations=body.migrations)
    return TokenCreated(token=token, **_token_out(t).model_dump())


@tokens_router.delete("/{token_id}", response_model=TokenOut, summary="Revoke a token (admin)")
def revoke_token(request: Request, token_id: Annotated[str, Path(min_length=1, max_length=200)],
                 who: Principal = RequireAdmin) -> TokenOut:
    check_unscoped(who, "manage tokens")
    return _token_out(_tokens(request).revoke(token_id, by=who.label))


# -- maintenance -------------------------------------------------------------------------------

@maintenance_router.post("/purge", response_model=PurgeOut, summary="Drop finished migrations older than an age "
                                                                      "(admin)",
                         description="Completed or cancelled migrations that ended longer ago than `older_than` "
                                     "are dropped with their events and alerts; active ones never are. Each purge "
                                     "is logged on the `migratrack.audit` logger with the token that asked.")
def purge(request: Request, body: PurgeIn, svc: Svc, who: Principal = RequireAdmin) -> PurgeOut:
    from migratrack.admin import StoreAdmin

    check_unscoped(who, "purge migrations")
    done = StoreAdmin(svc).purge(body.older_than, dry_run=body.dry_run, actor=actor_of(request, who))
    return PurgeOut(cutoff=done.cutoff, dry_run=done.dry_run, migration_ids=done.migration_ids)
