"""Prometheus exposition: a collector that reads the store at scrape time.

Nothing is counted beside the store: every scrape loads each migration and reports what the
dashboard would show at that instant (the same view functions), so a restart, a second server or
a worker writing straight to the store changes nothing in what a scrape sees. Only the server's
own request counts and latencies live in the process (:class:`RequestStats`, filled by the
:class:`RequestMetrics` middleware), since no store holds them.

Names follow Prometheus' conventions: the ``migratrack_`` prefix, base units in the name
(``_seconds``, ``_bytes``, ``_ratio`` for 0..1), ``_total`` for counters. Labels are bounded:
``migration`` and ``phase`` come from the plan, ``status``/``level``/``result`` from fixed
sets, ``route`` is a route template; sub-tasks are never labels. docs/metrics.md lists them all.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from migratrack.core.eta import estimate
from migratrack.core.models import MigrationState
from migratrack.core.progress import migration_status, overall_progress, phase_progress
from migratrack.core.resources import utilization
from migratrack.core.rules import derived_error_rate
from migratrack.core.speed import migration_speed
from migratrack.core.states import AlertLevel, MigrationStatus, Status
from migratrack.errors import MigrationNotFound, StorageError
from migratrack.metrics.cost import cost_metrics, migration_cost
from migratrack.service import MigrationService
from migratrack.storage.base import Storage

log = logging.getLogger("migratrack.metrics")

PREFIX = "migratrack_"

#: request latency buckets, seconds: the hot routes answer in about a millisecond
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: methods kept as labels; anything else is "other" (a client cannot grow the label set)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: the route label of a request no route matched (404s, refused hosts)
UNMATCHED = "unmatched"


# -- the hook the alert dispatcher fills -------------------------------------------------------------

#: channel -> deliveries that failed for good, read from the alert outbox; None until an outbox exists
DeliveryFailures = Callable[[Storage], Mapping[str, int]]


def alert_delivery_failures(storage: Storage) -> Mapping[str, int]:
    """Alert deliveries that failed, per channel, as the alert outbox in ``storage`` counts them.

    The hook for the alert dispatcher: it returns nothing until the outbox can say (then it reads
    the outbox, never a counter kept in this process). Exposed as
    ``migratrack_alert_delivery_failures_total{channel}``."""
    counts = getattr(storage, "delivery_failures", None)
    if callable(counts):
        result = counts()
        if isinstance(result, Mapping):
            return {str(k): int(v) for k, v in result.items()}
    return {}


# -- the server's own requests ----------------------------------------------------------------

@dataclass(slots=True)
class _Latency:
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0


class RequestStats:
    """Request counts per (method, route, status) and latencies per (method, route).

    Written from the event loop's thread only (the middleware), read by a scrape: plain dicts,
    no lock (a scrape that reads while a request is recorded is off by that one request)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], _Latency] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        self.counts[key] = self.counts.get(key, 0) + 1
        lat = self.latency.get((method, route))
        if lat is None:
            lat = self.latency[(method, route)] = _Latency()
        lat.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        lat.total += seconds

    def families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            PREFIX + "http_requests", "HTTP requests answered by this server process",
            labels=["method", "route", "status"])
        for (method, route, status), n in sorted(self.counts.items()):
            requests.add_metric([method, route, status], n)
        yield requests
        durations = HistogramMetricFamily(
            PREFIX + "http_request_duration_seconds",
            "Time from a request's arrival to the end of its response (an event stream: its whole life)",
            labels=["method", "route"])
        for (method, route), lat in sorted(self.latency.items()):
            running = 0
            cumulative: list[tuple[str, float]] = []
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), lat.buckets, strict=True):
                running += n
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
            durations.add_metric([method, route], cumulative, lat.total)
        yield durations


class RequestMetrics:
    """ASGI middleware: counts every HTTP request and times it, by route template (bounded)."""

    def __init__(self, app: ASGIApp, *, stats: RequestStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before it answers

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            method = scope["method"]
            self.stats.observe(method if method in METHODS else "other",
                               getattr(route, "path", UNMATCHED), status, time.perf_counter() - start)


# -- the migrations, read at scrape time -------------------------------------------------------------

class _Families:
    """The metric families of one scrape, filled migration by migration."""

    def __init__(self) -> None:
        g, c = GaugeMetricFamily, CounterMetricFamily
        m, mp = ["migration"], ["migration", "phase"]
        self.migrations = g(PREFIX + "migrations", "Stored migrations by status", labels=["status"])
        self.info = g(PREFIX + "migration_info", "A stored migration and its name (always 1)",
                      labels=["migration", "name"])
        self.status = g(PREFIX + "migration_status",
                        "The migration's status: 1 for the current one, 0 for the others", labels=[*m, "status"])
        self.progress = g(PREFIX + "migration_progress_ratio",
                          "Overall progress, 0..1 (phases weighted by estimated duration)", labels=m)
        self.phase_progress = g(PREFIX + "phase_progress_ratio",
                                "A phase's progress, 0..1 (reported, or rolled up from its sub-tasks)", labels=mp)
        self.phase_status = g(PREFIX + "phase_status",
                              "A phase's status: 1 for the current one, 0 for the others", labels=[*mp, "status"])
        self.error_ratio = g(PREFIX + "error_ratio",
                             "failed / (successful + failed) operations, 0..1; absent while unknown", labels=m)
        self.operations = c(PREFIX + "operations", "Operations reported by the migration's workers",
                            labels=[*m, "result"])
        self.data = c(PREFIX + "data_migrated_bytes", "Data migrated", labels=m)
        self.speed = g(PREFIX + "speed_bytes_per_second",
                       "Migration speed: a finished migration's average, else reported, else the last minute's",
                       labels=m)
        self.remaining = g(PREFIX + "estimated_remaining_seconds",
                           "Estimated active seconds to completion; absent while unknown", labels=m)
        self.alerts = c(PREFIX + "alerts", "Alerts raised, by level", labels=[*m, "level"])
        self.unacknowledged = g(PREFIX + "alerts_unacknowledged", "Alerts not yet acknowledged", labels=m)
        self.resources = g(PREFIX + "resource_utilization",
                           "Resource utilisation reported for the migration (resourceUtilization; units in "
                           "docs/metrics.md: cpu and memory percent, network and storage bytes/s)",
                           labels=[*m, "resource"])
        self.cost = g(PREFIX + "cost", "Cost in the configured currency: actual, projected at completion, "
                                       "estimated (as reported)", labels=[*m, "kind"])
        self.cost_per_gb = g(PREFIX + "cost_per_gigabyte", "Actual cost per GB (10^9 bytes) migrated", labels=m)
        self.counts: dict[str, int] = {s.value: 0 for s in MigrationStatus}

    def add(self, svc: MigrationService, state: MigrationState) -> None:
        now = svc.read_time(state)
        mid = state.id
        status = migration_status(state)
        self.counts[status.value] += 1
        self.info.add_metric([mid, state.name], 1)
        for s in MigrationStatus:
            self.status.add_metric([mid, s.value], 1 if s is status else 0)
        self.progress.add_metric([mid], overall_progress(state) / 100)
        for p in state.phases.values():
            self.phase_progress.add_metric([mid, p.id], round(phase_progress(p), 4) / 100)
            for ps in Status:
                self.phase_status.add_metric([mid, p.id, ps.value], 1 if p.status is ps else 0)
        m = state.metrics
        rate = derived_error_rate(m.successful_operations, m.failed_operations, m.gauges)
        if rate is not None:
            self.error_ratio.add_metric([mid], rate / 100)
        self.operations.add_metric([mid, "successful"], m.successful_operations)
        self.operations.add_metric([mid, "failed"], m.failed_operations)
        self.data.add_metric([mid], m.total_data_migrated)
        samples, since = svc.speed_samples(state)
        speed = migration_speed(state, now, samples, since=since)
        if speed is not None:
            self.speed.add_metric([mid], speed)
        remaining = estimate(state, now).remaining_seconds
        if remaining is not None:
            self.remaining.add_metric([mid], remaining)
        for level in AlertLevel:
            self.alerts.add_metric([mid, level.value], state.alert_counts.get(level.value, 0))
        self.unacknowledged.add_metric([mid], state.unacknowledged_alerts)
        for name, value in sorted(utilization(m.gauges, now).items()):
            self.resources.add_metric([mid, name], value)
        self._add_cost(svc, state, now, remaining)

    def _add_cost(self, svc: MigrationService, state: MigrationState, now: datetime, remaining: float | None) -> None:
        reported = {k: v for k, v in (state.metrics.gauges.get("cost_metrics") or {}).items()
                    if isinstance(v, int | float)}
        figures = cost_metrics(reported, migration_cost(state, now, remaining, svc.prices))
        for kind in ("actual", "projected", "estimated"):
            if f"{kind}_cost" in figures:
                self.cost.add_metric([state.id, kind], figures[f"{kind}_cost"])
        if "cost_per_gb" in figures:
            self.cost_per_gb.add_metric([state.id], figures["cost_per_gb"])

    def all(self) -> Iterable[Metric]:
        for s, n in self.counts.items():
            self.migrations.add_metric([s], n)
        return (self.migrations, self.info, self.status, self.progress, self.phase_progress, self.phase_status,
                self.error_ratio, self.operations, self.data, self.speed, self.remaining, self.alerts,
                self.unacknowledged, self.resources, self.cost, self.cost_per_gb)


class MigrationCollector(Collector):
    """Reads every migration from the service's store at each scrape."""

    def __init__(self, service: MigrationService, *, requests: RequestStats | None = None,
                 delivery_failures: DeliveryFailures = alert_delivery_failures) -> None:
        self.service = service
        self.requests = requests
        self.delivery_failures = delivery_failures

    def describe(self) -> list[Metric]:
        return []  # the families depend on the store's content: don't let register() collect() once

    def collect(self) -> Iterator[Metric]:
        start = time.perf_counter()
        families = _Families()
        up = 1
        try:
            for mid in self.service.list_ids():
                try:
                    families.add(self.service, self.service.state(mid))
                except MigrationNotFound:  # deleted between the listing and the read
                    continue
        except StorageError as exc:
            log.warning("metrics scrape: the store did not answer: %s", exc)
            up = 0
        yield from families.all()
        failures = CounterMetricFamily(PREFIX + "alert_delivery_failures",
                                       "Alert deliveries that failed for good, by channel", labels=["channel"])
        try:
            for channel, n in sorted(self.delivery_failures(self.service.storage).items()):
                failures.add_metric([channel], n)
        except Exception as exc:  # the hook is another module's code: a scrape still answers
            log.warning("metrics scrape: delivery failures not read: %s", exc)
        yield failures
        if self.requests is not None:
            yield from self.requests.families()
        yield GaugeMetricFamily(PREFIX + "store_up", "1 when this scrape read the store, else 0", value=up)
        yield GaugeMetricFamily(PREFIX + "scrape_duration_seconds", "Time this scrape took to read the store",
                                value=time.perf_counter() - start)


def registry_for(service: MigrationService, requests: RequestStats | None = None) -> CollectorRegistry:
    """A registry of its own (not the process-wide default): several apps in one process, as in the
    tests, each expose their own store."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MigrationCollector(service, requests=requests))
    return registry
