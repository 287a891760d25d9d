"""``GET /metrics``: the Prometheus exposition, and the middleware that counts the server's requests.

Readable with a viewer token, or without one from the scraper addresses in
``MIGRATRACK_METRICS_SCRAPERS`` (addresses or networks): Prometheus' own scrape config can send a
bearer token (``authorization: {credentials: ...}``), but not every scraper can.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool

from migratrack.errors import ConfigurationError
from migratrack.metrics.prometheus import MigrationCollector, RequestMetrics, RequestStats, registry_for
from migratrack.settings import Settings
from migratrack.web.auth import Role, bearer, check_unscoped, principal_of
from migratrack.web.errors import ErrorBody
from migratrack.web.requestid import RequestContext

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

router = APIRouter(tags=["metrics"])


def parse_scrapers(value: str | Iterable[str] | None) -> list[Network]:
    """``10.0.0.5, 10.1.0.0/16`` -> networks; a bad entry is a ConfigurationError naming it."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    out: list[Network] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"MIGRATRACK_METRICS_SCRAPERS: {item!r} is not an IP address or network (e.g. 10.0.0.5 or "
                "10.1.0.0/16)") from None
    return out


def _is_scraper(request: Request) -> bool:
    networks: list[Network] = request.app.state.metrics_scrapers
    if not networks or request.client is None:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    return any(address in n for n in networks)


@router.get("/metrics", summary="Prometheus exposition (viewer token, or a configured scraper address)",
            response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "the Prometheus text format (OpenMetrics when asked for)"},
                       401: {"model": ErrorBody, "description": "no token (and not a configured scraper address), "
                                                               "or an unknown or revoked one"},
                       403: {"model": ErrorBody, "description": "the token's role does not allow this"}})
async def metrics(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Response:
    if not _is_scraper(request):
        who = await principal_of(request, credentials, Role.VIEWER)
        check_unscoped(who, "read the metrics of every migration")
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    # a scrape reads the store: never on the event loop
    body = await run_in_threadpool(request.app.state.metrics_collector.expose, encoder)
    return Response(body, media_type=content_type)


def _publish_while_serving(app: FastAPI, settings: Settings) -> None:
    """Wrap the app's lifespan: the CloudWatch publisher runs in a thread while the server serves."""
    from migratrack.metrics.cloudwatch import run_publisher

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        stop = threading.Event()
        thread = threading.Thread(target=run_publisher, args=(a.state.service, stop), kwargs={"settings": settings},
                                  name="migratrack-cloudwatch", daemon=True)
        thread.start()
        try:
            async with inner(a) as state:
                yield state
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 30)

    app.router.lifespan_context = lifespan


def install(app: FastAPI, scrapers: str | Iterable[str] | None = None, settings: Settings | None = None) -> None:
    """Add ``/metrics``, the request-counting middleware and each request's log context (request id,
    migration, phase) to ``app`` (call it last in create_app: the middleware is then outermost and
    times everything the server does), and the CloudWatch publisher to its lifespan when
    ``MIGRATRACK_CLOUDWATCH`` is on."""
    s = settings or Settings.from_env()
    if scrapers is None:
        scrapers = s.metrics_scrapers
    if s.cloudwatch:
        _publish_while_serving(app, s)
    stats = RequestStats()
    app.state.metrics_scrapers = parse_scrapers(scrapers)
    app.state.request_stats = stats
    collector = MigrationCollector(app.state.service, requests=stats)
    app.state.metrics_collector = collector
    app.state.metrics_registry = registry_for(app.state.service, collector=collector)
    app.include_router(router)
    app.add_middleware(RequestContext)
    app.add_middleware(RequestMetrics, stats=stats)
