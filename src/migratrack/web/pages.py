"""The dashboard: server-rendered pages under ``/admin/migration``, with a little plain JavaScript.

Pages are read with a browser session (``web/session.py``), never with a token in a URL. The
page follows the migration through ``/admin/migration/{id}/stream`` (the event log as server-sent
events, authenticated by the session cookie) and re-reads ``live.json`` to apply what changed;
controls post forms with the session's CSRF token and need the role the JSON API needs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Header, Path, Query, Request
from jinja2 import Environment, PackageLoader
from sse_starlette import ServerSentEvent
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from migratrack.alerts import records
from migratrack.core.commands import BY_VERB, Target
from migratrack.core.models import Event
from migratrack.core.states import Condition, Control
from migratrack.core.views import Dashboard, Overview, PhaseView
from migratrack.errors import MigrationNotFound, MigratrackError
from migratrack.render import text
from migratrack.render.pictures import catch_up, pictures
from migratrack.render.series import SeriesBuilder
from migratrack.service import MigrationService
from migratrack.web import static_assets
from migratrack.web.api import MAX_SEQ
from migratrack.web.auth import Role, actor_label, check_scope
from migratrack.web.errors import status_of
from migratrack.web.session import (
    Session,
    clear_cookie,
    csrf_ok,
    current,
    same_origin,
    sessions_of,
    set_cookie,
)
from migratrack.web.sse import EventHub, _sse, _Stream

#: migrations per page of the list
PER_PAGE = 50
#: sub-tasks per request when a phase is expanded
SUB_PAGE = 200
#: events per page of the audit log
AUDIT_PAGE = 100
#: events sent with a polled snapshot, so the activity list misses none while the stream is down
POLL_EVENTS = 500

#: how soon a browser reconnects a dropped stream (it sends Last-Event-ID and misses nothing)
RECONNECT_MS = 1000

#: pages forbid inline script: only the versioned file from this server runs
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

router = APIRouter(include_in_schema=False)

env = Environment(loader=PackageLoader("migratrack.web", "templates"), autoescape=True, trim_blocks=True,
                  lstrip_blocks=True)
env.globals.update(asset=static_assets.url, text=text, quote=quote, Condition=Condition)


def _svc(request: Request) -> MigrationService:
    svc: MigrationService = request.app.state.service
    return svc


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    session: Session | None = context.get("session")
    html = env.get_template(template).render(request=request, **context)
    response = HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP,
                                                                "Cache-Control": "no-store"})
    if session is not None and context.get("new_session"):
        set_cookie(request, response, session)
    return response


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _session(request: Request) -> tuple[Session | None, bool]:
    """The request's session; with authentication off, a new one (every browser is admin)."""
    s = current(request)
    if s is None and sessions_of(request).open:
        return sessions_of(request).anonymous(), True
    mid = request.path_params.get("mid")
    if s is not None and mid is not None:
        check_scope(s.principal, mid)  # a token limited to some migrations sees those only
    return s, False


def _can(session: Session, role: Role) -> bool:
    return session.principal.role.allows(role)


def _safe_next(value: str | None) -> str:
    # only a path on this server: never an open redirect
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin/migration"


# -- login -------------------------------------------------------------------------------------

@router.get("/")
@router.get("/dashboard")
def root() -> RedirectResponse:
    return RedirectResponse("/admin/migration", status_code=303)


@router.get("/login")
def login_page(request: Request, code: str | None = None, next: str | None = None) -> Response:
    if code:
        session = sessions_of(request).redeem(code)
        if session is None:
            return _page(request, "login.html", 401, next=_safe_next(next),
                         error="this login link was used already or has expired; paste a token, or restart "
                               "'migratrack serve' for a new link")
        response = RedirectResponse(_safe_next(next), status_code=303)
        set_cookie(request, response, session)
        return response
    return _page(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login")
def login(request: Request, token: Annotated[str, Form(max_length=500)] = "",
          next: Annotated[str, Form(max_length=2000)] = "") -> Response:
    if not same_origin(request):
        return _page(request, "login.html", 403, next=_safe_next(next), error="cross-site login refused")
    session = sessions_of(request).login(token) if token.strip() else None
    if session is None:
        return _page(request, "login.html", 401, next=_safe_next(next),
                     error="unknown or revoked token; create one with 'migratrack token create'")
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookie(request, response, session)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    session = current(request)
    if session is not None and csrf_ok(request, session, csrf):
        sessions_of(request).end(session.id)
    response = RedirectResponse("/login", status_code=303)
    clear_cookie(request, response)
    return response


# -- the list ----------------------------------------------------------------------------------

def _overviews(svc: MigrationService, ids: list[str]) -> list[Overview]:
    out = []
    for mid in ids:
        try:
            out.append(svc.overview(mid))
        except MigrationNotFound:  # deleted meanwhile
            continue
    return out


@router.get("/admin/migration")
def migrations(request: Request, page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> Response:
    session, new = _session(request)
    if session is None:
        return _login_redirect(request)
    svc = _svc(request)
    ids = [i for i in reversed(svc.list_ids()) if session.principal.may(i)]  # newest first
    pages = max(1, -(-len(ids) // PER_PAGE))
    page = min(page, pages)
    overviews = _overviews(svc, ids[(page - 1) * PER_PAGE: page * PER_PAGE])
    rows = [{"o": o, "eta": text.eta(o)} for o in overviews]
    return _page(request, "list.html", session=session, new_session=new, rows=rows, page=page, pages=pages,
                 total=len(ids))


# -- one migration -----------------------------------------------------------------------------

def _controls(session: Session, o: Overview) -> dict[str, bool]:
    admin = _can(session, Role.ADMIN)
    return {
        "admin": admin,
        "ack": _can(session, Role.OPERATOR),
        "pause": admin and o.control is Control.RUNNING and o.status.value not in ("completed", "cancelled"),
        "resume": admin and o.control is Control.PAUSED,
        "cancel": admin and o.control is not Control.CANCELLED and o.status.value != "completed",
    }


def _header(d: Dashboard) -> dict[str, str]:
    o, m = d.overview, d.metrics
    eta, reason = text.eta(o, d.phases)
    cost = ", ".join(f"{k.replace('_', ' ')}: {v:,.2f}" for k, v in m.cost_metrics.items()) or "—"
    resources = ", ".join(f"{k}: {v:.0f}%" for k, v in m.resource_utilization.items()) or "—"
    return {
        "progress": f"{o.overall_progress:.1f}%",
        "status": o.status.value + ("" if o.control is Control.RUNNING else f" ({o.control.value})"),
        "eta": eta,
        "eta_reason": reason or "",
        "elapsed": text.duration(o.elapsed_seconds),
        "paused": text.duration(o.paused_seconds),
        "speed": text.speed(m.migration_speed),
        "error_rate": text.percent(m.error_rate),
        "data": text.data_size(m.total_data_migrated),
        "operations": f"{m.successful_operations:,} ok, {m.failed_operations:,} failed",
        "cost": cost,
        "resources": resources,
        "alerts": f"{o.unacknowledged_alerts} unacknowledged",
    }


def _phase_row(p: PhaseView, subs: tuple[int, int]) -> dict[str, Any]:
    return {
        "id": p.id,
        "progress": round(p.progress, 2),
        "progress_text": f"{p.progress:.1f}%",
        "status": p.status.value,
        "condition": p.condition.value,
        "condition_label": text.condition_label(p),
        "count": f"{p.done:,} / {p.total:,}" if p.total is not None else (f"{p.done:,}" if p.done else ""),
        "actual": text.duration(p.actual_seconds),
        "errors": len(p.errors),
        "warnings": len(p.warnings),
        "last_error": p.errors[-1] if p.errors else "",
        "sub_done": subs[0],
        "sub_total": subs[1],
        "approvable": p.condition is Condition.WAITING_FOR_APPROVAL,
    }


def _alert_row(a: Any) -> dict[str, Any]:
    return {"id": a.id, "level": a.level.value, "message": a.message, "phase": a.phase or "",
            "created": text.when(a.created_at), "acknowledged": a.acknowledged_at is not None,
            "acknowledged_by": a.acknowledged_by or ""}


def _event_row(e: Event) -> dict[str, Any]:
    detail = " ".join(f"{k}={v}" for k, v in e.payload.items() if k not in ("id", "created_at", "phases"))
    return {"seq": e.seq, "type": e.type, "ts": text.when(e.ts), "actor": e.actor, "detail": detail[:300]}


@dataclass(frozen=True)
class _Snap:
    d: Dashboard
    #: phase id -> (sub-tasks finished, sub-tasks)
    subs: dict[str, tuple[int, int]]
    seq: int
    at: float
    #: seconds it took to build
    cost: float


class _Snapshots:
    """What the page shows of each migration, shared by every browser watching it: rebuilt when
    its log has moved, or after a second (elapsed time and the ETA move with the clock)."""

    def __init__(self, size: int = 64) -> None:
        self._snaps: OrderedDict[str, _Snap] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, svc: MigrationService, mid: str) -> _Snap:
        seq = svc.last_seq(mid)
        with self._lock:
            snap = self._snaps.get(mid)
        if snap is not None:
            age = time.monotonic() - snap.at
            # the same log, or a huge migration rebuilt moments ago: building it again and again
            # would keep a core busy (the page asks again when the answer is behind its events)
            if (snap.seq == seq and age < 1.0) or age < 2 * snap.cost:
                return snap
        started = time.monotonic()
        d = svc.dashboard(mid, alerts=20, sub_tasks=False)
        subs = {p.id: (p.sub_tasks_finished, p.sub_task_count) for p in d.phases}
        now = time.monotonic()
        snap = _Snap(d, subs, d.overview.last_seq, now, now - started)
        with self._lock:
            self._snaps.pop(mid, None)
            self._snaps[mid] = snap
            while len(self._snaps) > self.size:
                self._snaps.popitem(last=False)
        return snap


def _snapshot(request: Request, mid: str) -> _Snap:
    snaps: _Snapshots | None = getattr(request.app.state, "page_snapshots", None)
    if snaps is None:
        snaps = request.app.state.page_snapshots = _Snapshots()
    return snaps.get(_svc(request), mid)


class _Charts:
    """Per-process replay of each viewed migration's event log, kept between requests so a
    refresh reads only the events that are new (the least recently viewed are dropped)."""

    def __init__(self, size: int = 32) -> None:
        self._builders: OrderedDict[str, SeriesBuilder] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def builder(self, svc: MigrationService, mid: str) -> SeriesBuilder:
        replaced = mid in self._builders and svc.last_seq(mid) < self._builders[mid].last_seq
        with self._lock:
            b = self._builders.pop(mid, None)
            if b is None or replaced:  # a migration replaced under the same id starts its log again
                b = SeriesBuilder.for_state(svc.state(mid))
            self._builders[mid] = b
            while len(self._builders) > self.size:
                self._builders.popitem(last=False)
        catch_up(b, lambda after, n: svc.events_after(mid, after, n))
        return b


def _charts(request: Request) -> _Charts:
    charts: _Charts | None = getattr(request.app.state, "page_charts", None)
    if charts is None:
        charts = request.app.state.page_charts = _Charts()
    return charts


def _now() -> datetime:
    return datetime.now(UTC)


def _detail_context(request: Request, session: Session, mid: str) -> dict[str, Any]:
    svc = _svc(request)
    snap = _snapshot(request, mid)
    d = snap.d
    pics = pictures(d, _charts(request).builder(svc, mid), _now())
    last = d.overview.last_seq
    recent = svc.events_after(mid, max(0, last - 20), 20)
    return {"d": d, "o": d.overview, "h": _header(d),
            "phases": [(p, _phase_row(p, snap.subs[p.id])) for p in d.phases],
            "alerts": [_alert_row(a) for a in d.recent_alerts], "events": [_event_row(e) for e in reversed(recent)],
            "pics": pics, "can": _controls(session, d.overview), "session": session,
            "rendered": text.when(_now())}


MidPath = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("/admin/migration/{mid}")
def migration(request: Request, mid: MidPath) -> Response:
    session, new = _session(request)
    if session is None:
        return _login_redirect(request)
    try:
        context = _detail_context(request, session, mid)
    except MigrationNotFound:
        return _page(request, "missing.html", 404, session=session, new_session=new, mid=mid)
    flash, session.flash = session.flash, []
    return _page(request, "migration.html", new_session=new, flash=flash, **context)


def _out_of_scope(session: Session, mid: str | None) -> JSONResponse | None:
    """403 when the session's token is limited to other migrations than ``mid``."""
    if mid is None or session.principal.may(mid):
        return None
    return JSONResponse({"detail": f"your token is limited to other migrations than {mid!r}",
                         "error": "Forbidden"}, 403)


def _json_session(request: Request) -> Session | JSONResponse:
    session = current(request)
    if session is None:
        if sessions_of(request).open:
            return sessions_of(request).anonymous()
        return JSONResponse({"detail": "log in again: the session ended", "error": "Unauthorized"}, 401)
    return _out_of_scope(session, request.path_params.get("mid")) or session


@router.get("/admin/migration/{mid}/live.json")
def live(request: Request, mid: MidPath,
         after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None) -> Response:
    """What the page shows that changes, preformatted, and the events after ``after``."""
    session = _json_session(request)
    if isinstance(session, JSONResponse):
        return session
    svc = _svc(request)
    try:
        snap = _snapshot(request, mid)
        d = snap.d
        events = svc.events_after(mid, after, POLL_EVENTS) if after is not None else []
    except MigrationNotFound:
        return JSONResponse({"detail": f"no migration {mid!r}", "error": "NotFound"}, 404)
    body = {
        "last_seq": d.overview.last_seq,
        "control": d.overview.control.value,
        "header": _header(d),
        "overall": round(d.overview.overall_progress, 2),
        "phases": [_phase_row(p, snap.subs[p.id]) for p in d.phases],
        "alerts": [_alert_row(a) for a in d.recent_alerts],
        "can": _controls(session, d.overview),
        "events": [_event_row(e) for e in events],
        "more_events": len(events) == POLL_EVENTS,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/admin/migration/{mid}/pictures")
def pictures_fragment(request: Request, mid: MidPath) -> Response:
    session = _json_session(request)
    if isinstance(session, JSONResponse):
        return session
    svc = _svc(request)
    try:
        d = _snapshot(request, mid).d
    except MigrationNotFound:
        return JSONResponse({"detail": f"no migration {mid!r}", "error": "NotFound"}, 404)
    pics = pictures(d, _charts(request).builder(svc, mid), _now())
    return _page(request, "_pictures.html", pics=pics)


@router.get("/admin/migration/{mid}/phases/{pid}/subtasks")
def sub_tasks(request: Request, mid: MidPath, pid: MidPath,
              offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
              limit: Annotated[int, Query(ge=1, le=1000)] = SUB_PAGE) -> Response:
    """A page of a phase's sub-tasks, as an HTML fragment (the page fetches it on expand)."""
    session, _ = _session(request)
    if session is None:
        return _login_redirect(request)
    svc = _svc(request)
    try:
        state = svc.storage.load(mid, sub_tasks=pid)  # that phase's sub-tasks only
    except MigrationNotFound:
        return _page(request, "missing.html", 404, session=session, mid=mid)
    phase = state.phases.get(pid)
    if phase is None:
        return _page(request, "missing.html", 404, session=session, mid=mid, phase=pid)
    subs = list(phase.sub_tasks.values())
    rows = subs[offset: offset + limit]
    more = offset + limit if offset + limit < len(subs) else None
    return _page(request, "_subtasks.html", mid=mid, pid=pid, rows=rows, offset=offset, total=len(subs),
                 more=more, limit=limit)


@router.get("/admin/migration/{mid}/audit")
def audit(request: Request, mid: MidPath, after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None) -> Response:
    session, new = _session(request)
    if session is None:
        return _login_redirect(request)
    svc = _svc(request)
    try:
        last = svc.overview(mid).last_seq
        start = max(0, last - AUDIT_PAGE) if after is None else after
        events = svc.events(mid, start, AUDIT_PAGE)
    except MigrationNotFound:
        return _page(request, "missing.html", 404, session=session, mid=mid)
    older = max(0, start - AUDIT_PAGE) if start > 0 else None
    newer = events[-1].seq if events and events[-1].seq < last else None
    return _page(request, "audit.html", session=session, new_session=new, mid=mid,
                 events=[_event_row(e) for e in events], older=older, newer=newer, last=last)


@router.get("/admin/migration/{mid}/stream")
async def stream(request: Request, mid: MidPath,
                 after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
                 ) -> Response:
    """The event log as server-sent events for the page: the session cookie authenticates it, and
    a reconnecting browser's Last-Event-ID wins over the ``after`` it first asked for."""
    session = await asyncio.to_thread(_json_session, request)  # the session is checked in the store
    if isinstance(session, JSONResponse):
        return session
    start = after or 0
    if last_event_id and last_event_id.isdigit() and int(last_event_id) <= MAX_SEQ:
        start = int(last_event_id)
    svc = _svc(request)
    if not await asyncio.to_thread(svc.exists, mid):
        return JSONResponse({"detail": f"no migration {mid!r}", "error": "NotFound"}, 404)
    hub: EventHub = request.app.state.hub

    async def gen() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(retry=RECONNECT_MS)  # a dropped page comes back within a second or so
        async for e in hub.stream(mid, start):
            event = _sse(e)
            event.event = None  # unnamed: the page's onmessage receives every type
            yield event

    return _Stream(gen(), ping=request.app.state.sse_ping, headers={"Cache-Control": "no-cache",
                                                                    "X-Accel-Buffering": "no"})


# -- actions -----------------------------------------------------------------------------------

def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _act(request: Request, mid: str, csrf: str, role: Role, what: str, run: Any) -> Response:
    """Check the session, the CSRF token and the role, run the action, and answer with its
    result: JSON for the page's script, else a redirect back with the result to show."""
    session = current(request)
    if session is None and sessions_of(request).open:
        session = sessions_of(request).anonymous()
    if session is None:
        return JSONResponse({"detail": "log in first", "error": "Unauthorized"}, 401)
    if (refused := _out_of_scope(session, mid)) is not None:
        return refused
    if not csrf_ok(request, session, csrf):
        return JSONResponse({"detail": "this form is stale or came from another site: reload the page and try "
                                       "again", "error": "CSRFFailed"}, 403)
    if not _can(session, role):
        return JSONResponse({"detail": f"{what} needs the {role.value} role; you are "
                                       f"{session.principal.role.value}", "error": "Forbidden"}, 403)
    actor = actor_label("dashboard", session.principal)
    try:
        message = run(actor, session)
        ok, status = True, 200
    except MigratrackError as exc:
        message, ok, status = str(exc), False, status_of(exc)
        if status >= 500:
            status = 503
    if _wants_json(request):
        return JSONResponse({"ok": ok, "message": message}, status)
    session.flash.append(("ok" if ok else "error", message))
    return RedirectResponse(f"/admin/migration/{quote(mid, safe='')}", status_code=303)


@router.post("/admin/migration/{mid}/control")
def control(request: Request, mid: MidPath, action: Annotated[str, Form(max_length=20)],
            csrf: Annotated[str, Form(max_length=200)] = "",
            reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    cls = BY_VERB.get((Target.MIGRATION, action)) if action in ("pause", "resume", "cancel") else None
    if cls is None:
        return JSONResponse({"detail": "action must be pause, resume or cancel", "error": "ValidationError"}, 422)
    args = {"reason": reason.strip()} if reason.strip() and action != "resume" else {}

    def run(actor: str, _: Session) -> str:
        _svc(request).execute(mid, cls(**args), actor=actor)
        return {"pause": "paused: workers wait at their next checkpoint", "resume": "resumed",
                "cancel": "cancelled: workers stop at their next checkpoint"}[action]

    return _act(request, mid, csrf, Role(cls.role), action, run)


@router.post("/admin/migration/{mid}/phases/{pid}/approve")
def approve(request: Request, mid: MidPath, pid: MidPath, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    cls = BY_VERB[(Target.PHASE, "approve")]

    def run(actor: str, session: Session) -> str:
        _svc(request).execute(mid, cls(phase=pid, by=session.principal.name), actor=actor)  # type: ignore[call-arg]
        return f"approved {pid}: it may start now"

    return _act(request, mid, csrf, Role(cls.role), "approving a phase", run)


@router.post("/admin/migration/{mid}/alerts/{aid}/ack")
def acknowledge(request: Request, mid: MidPath, aid: MidPath, csrf: Annotated[str, Form(max_length=200)] = "",
                ) -> Response:
    def run(actor: str, session: Session) -> str:
        _svc(request).acknowledge_alert(mid, aid, session.principal.label, actor=actor)
        return "alert acknowledged"

    return _act(request, mid, csrf, Role.OPERATOR, "acknowledging an alert", run)


@router.post("/admin/migration/{mid}/alerts/{aid}/silence")
def silence(request: Request, mid: MidPath, aid: MidPath, csrf: Annotated[str, Form(max_length=200)] = "",
            ) -> Response:
    """Mute alerts like this one (same migration, phase and message) for an hour: routing stops
    sending them; they are still stored and shown."""
    def run(actor: str, _: Session) -> str:
        svc = _svc(request)
        alert = svc.storage.get_alert(mid, aid)
        s = records.add_silence(svc.storage, now=svc.now(), duration=timedelta(hours=1), created_by=actor,
                                migration_id=mid, phase=alert.phase, contains=alert.message[:200],
                                comment="from the dashboard")
        return f"alerts like this one are silenced until {text.when(s.ends_at)}"

    return _act(request, mid, csrf, Role.OPERATOR, "silencing an alert", run)
