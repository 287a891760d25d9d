"""``GET /metrics``: the Prometheus exposition, and the middleware that counts the server's requests.

Readable with a viewer token, or without one from the scraper addresses in
``MIGRATRACK_METRICS_SCRAPERS`` (addresses or networks): Prometheus' own scrape config can send a
bearer token (``authorization: {credentials: ...}``), but not every scraper can.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool

from migratrack.errors import ConfigurationError
from migratrack.metrics.prometheus import RequestMetrics, RequestStats, registry_for
from migratrack.settings import Settings
from migratrack.web.auth import Role, bearer, principal_of

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
                             "description": "the Prometheus text format (OpenMetrics when asked for)"}})
async def metrics(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Response:
    if not _is_scraper(request):
        principal_of(request, credentials, Role.VIEWER)
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    # a scrape reads every migration: never on the event loop
    body = await run_in_threadpool(encoder, request.app.state.metrics_registry)
    return Response(body, media_type=content_type)


def install(app: FastAPI, scrapers: str | Iterable[str] | None = None) -> None:
    """Add ``/metrics`` and the request-counting middleware to ``app`` (call it last in
    create_app: the middleware is then outermost and times everything the server does)."""
    if scrapers is None:
        scrapers = Settings.from_env().metrics_scrapers
    stats = RequestStats()
    app.state.metrics_scrapers = parse_scrapers(scrapers)
    app.state.request_stats = stats
    app.state.metrics_registry = registry_for(app.state.service, stats)
    app.include_router(router)
    app.add_middleware(RequestMetrics, stats=stats)
