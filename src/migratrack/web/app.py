"""The ASGI application: ``create_app(storage=...)`` wires the store, the service, tokens and routes."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from migratrack import __version__
from migratrack.errors import StorageError, StorageUnavailable
from migratrack.service import Clock, MigrationService
from migratrack.settings import Settings
from migratrack.storage import Storage, open_storage
from migratrack.web import alerts_api, api, compat, errors, metrics, pages, reads, sse, static_assets
from migratrack.web.auth import TokenManager
from migratrack.web.hosts import LOOPBACK_HOSTS, HostCheck, SecurityHeaders
from migratrack.web.lean import HotRoutes
from migratrack.web.replay import Replays
from migratrack.web.schemas import Health
from migratrack.web.session import Sessions

#: seconds /readyz waits for the store
READY_TIMEOUT = 2.0

DESCRIPTION = """\
Track long, multi-phase migrations: phases, sub-tasks, progress, metrics, alerts, ETA, pause and resume.

**Authentication**: every route but `/healthz` takes `Authorization: Bearer <token>`.
Roles: `viewer` reads; `operator` also reports progress, alerts and metrics and creates migrations;
`admin` also pauses, resumes, cancels, approves and manages tokens. Create tokens with
`migratrack token create --role operator --name ci`.

**Errors** are JSON `{"detail": "...", "error": "<kind>"}`: 401/403 for tokens and roles, 404 for unknown ids,
409 when the migration's state forbids the command, 422 for malformed input (naming the field), 413 for bodies
over 1 MiB.
"""


#: FastAPI 0.16x asks OpenTelemetry on every request whether anyone listens (about 15 us); the
#: server's own metrics are Prometheus (/metrics) and its logs JSON (docs/operations.md)
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def create_app(
    storage: Storage | str | None = None,
    *,
    auth: bool = True,
    clock: Clock | None = None,
    sse_ping: float = sse.PING_SECONDS,
    poll_interval: float = 0.25,
    max_body: int = errors.MAX_BODY_BYTES,
    allowed_hosts: Iterable[str] = (),
) -> FastAPI:
    """The migratrack server on ``storage`` (a URL or a store; default from the environment).

    ``auth=False`` serves without tokens: only for a loopback address, the CLI enforces it.
    Requests must name the server by a loopback name or one of ``allowed_hosts`` in their Host."""
    owned = not isinstance(storage, Storage)
    settings = Settings.from_env()
    store = open_storage(storage if storage is not None else settings.storage_url)
    svc = MigrationService(store, clock, limits=settings.limits())
    hub = sse.EventHub(svc, poll_interval=poll_interval)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dispatching = alerts_api.start_dispatching(store, settings)
        try:
            yield
        finally:
            await alerts_api.stop_dispatching(dispatching)
            group = getattr(app.state, "group", None)
            if group is not None:
                await asyncio.to_thread(group.close)
            await hub.close()
            if owned:
                store.close()

    # the docs page's assets come from the package, not a CDN: it works offline, and no third
    # party sees the page where admins paste their tokens
    app = FastAPIOffline(title="migratrack", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                         docs_url="/docs", redoc_url=None, openapi_url="/openapi.json",
                         static_url="/docs-assets", **_NO_TELEMETRY)
    app.state.service = svc
    app.state.settings = settings
    app.state.storage = store
    app.state.tokens = TokenManager(store) if auth else None
    app.state.hub = hub
    app.state.sse_ping = sse_ping
    app.state.replays = Replays(svc)
    #: on an embedded store, single progress updates that arrive together share one transaction
    app.state.group_commit = store.embedded
    errors.install(app)
    app.include_router(api.hot_router)
    app.include_router(api.router)
    app.include_router(sse.router)
    app.include_router(compat.router)
    app.include_router(api.tokens_router)
    app.include_router(api.maintenance_router)
    app.include_router(reads.router)
    # the dashboard: pages with browser sessions (one-time login codes, cookies, CSRF)
    app.state.sessions = Sessions(app.state.tokens, store, settings.session_secret)
    app.include_router(pages.router)
    app.include_router(static_assets.router)
    app.include_router(alerts_api.router)

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Liveness (no auth)")
    def healthz() -> Health:
        return Health(status="ok", version=__version__)

    @app.get("/readyz", response_model=Health, tags=["health"],
             summary="Readiness (no auth): the store answers within 2 s",
             responses={503: {"model": errors.ErrorBody, "description": "the store does not answer"}})
    async def readyz() -> Health:
        try:
            await asyncio.wait_for(asyncio.to_thread(svc.exists, "readyz"), READY_TIMEOUT)
        except (TimeoutError, StorageError) as exc:
            raise StorageUnavailable(f"the store does not answer: {exc or 'timed out'}") from None
        return Health(status="ready", version=__version__)

    # innermost: whatever middleware is added around it sees the hot routes too
    app.add_middleware(HotRoutes, routes=api.hot_router.routes, handlers=app.exception_handlers)
    app.add_middleware(sse.PokeOnWrite, hub=hub)
    app.add_middleware(errors.BodyLimit, limit=max_body)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HostCheck, allowed=[*LOOPBACK_HOSTS, *allowed_hosts])  # added last: outermost
    metrics.install(app, settings=settings)  # /metrics, and request counting around everything above
    return app
