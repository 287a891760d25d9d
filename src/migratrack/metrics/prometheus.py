"""Prometheus exposition: a collector that reads the store at scrape time.

Nothing is counted beside the store: every scrape reads each migration's version from the store,
loads those that changed since the last scrape, and reports what the dashboard would show at that
instant (the same view functions), so a restart, a second server or a worker writing straight to
the store changes nothing in what a scrape sees. Only the server's
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
from functools import partial

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString, parse_version
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from migratrack.core.eta import estimate
from migratrack.core.models import Event, MigrationState, PhaseState
from migratrack.core.progress import migration_status, overall_progress, phase_progress
from migratrack.core.resources import utilization
from migratrack.core.rules import derived_error_rate
from migratrack.core.speed import SAMPLE_EVENTS, DataSample, data_samples, migration_speed, needs_samples
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
#
# What a scrape costs (bench/bench_metrics.py): loading the states, working out the figures, and
# writing some 70 lines of text per migration (5 of every 7 the phase state sets). Two things
# keep it small without counting anything beside the store:
#
# * What depends on the state alone (status, progress, phases, counters, alerts: all but a few
#   lines per migration) is kept per migration with its rendered lines, keyed by the store's
#   version of the migration (``Storage.versions``: creation time and last event number; every
#   change appends an event). A scrape reads the versions in one query and loads only the
#   migrations that changed since the last scrape; the figures that move with time (speed, the
#   estimate, live resource shares, cost) are worked out again at every scrape from the kept state.
# * The text formats Prometheus asks for (0.0.4 text, OpenMetrics 1.x) are written here from those
#   kept lines, byte for byte what prometheus-client's encoders write (tests/web/test_metrics.py
#   compares them); any other negotiated format goes through prometheus-client's encoder.

_G, _C = "gauge", "counter"
_M, _MP = ("migration",), ("migration", "phase")


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    doc: str
    type: str
    labels: tuple[str, ...]
    #: True: worked out again at every scrape (depends on the time); False: kept per version
    timed: bool = False

    @property
    def sample(self) -> str:
        return PREFIX + self.name + ("_total" if self.type == _C else "")

    def family(self) -> Metric:
        cls = CounterMetricFamily if self.type == _C else GaugeMetricFamily
        return cls(PREFIX + self.name, self.doc, labels=list(self.labels))


_SPECS: tuple[_Spec, ...] = (
    _Spec("migrations", "Stored migrations by status", _G, ("status",)),
    _Spec("migration_info", "A stored migration and its name (always 1)", _G, ("migration", "name")),
    _Spec("migration_status", "The migration's status: 1 for the current one, 0 for the others", _G,
          (*_M, "status")),
    _Spec("migration_progress_ratio", "Overall progress, 0..1 (phases weighted by estimated duration)", _G, _M),
    _Spec("phase_progress_ratio", "A phase's progress, 0..1 (reported, or rolled up from its sub-tasks)", _G, _MP),
    _Spec("phase_status", "A phase's status: 1 for the current one, 0 for the others", _G, (*_MP, "status")),
    _Spec("error_ratio", "failed / (successful + failed) operations, 0..1; absent while unknown", _G, _M),
    _Spec("operations", "Operations reported by the migration's workers", _C, (*_M, "result")),
    _Spec("data_migrated_bytes", "Data migrated", _C, _M),
    _Spec("speed_bytes_per_second",
          "Migration speed: a finished migration's average, else reported, else the last minute's", _G, _M, True),
    _Spec("estimated_remaining_seconds", "Estimated active seconds to completion; absent while unknown", _G, _M,
          True),
    _Spec("alerts", "Alerts raised, by level", _C, (*_M, "level")),
    _Spec("alerts_unacknowledged", "Alerts not yet acknowledged", _G, _M),
    _Spec("resource_utilization", "Resource utilisation reported for the migration (resourceUtilization; units in "
                                  "docs/metrics.md: cpu and memory percent, network and storage bytes/s)", _G,
          (*_M, "resource"), True),
    _Spec("cost", "Cost in the configured currency: actual, projected at completion, estimated (as reported)", _G,
          (*_M, "kind"), True),
    _Spec("cost_per_gigabyte", "Actual cost per GB (10^9 bytes) migrated", _G, _M, True),
)
(_COUNTS, _INFO, _STATUS, _PROGRESS, _PHASE_PROGRESS, _PHASE_STATUS, _ERROR, _OPERATIONS, _DATA, _SPEED, _REMAINING,
 _ALERTS, _UNACKED, _RESOURCES, _COST, _COST_PER_GB) = range(len(_SPECS))

#: one family's samples: (label values in the spec's order, value)
_Rows = list[tuple[tuple[str, ...], float]]


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return value


def _line_template(spec: _Spec) -> str:
    """``name{a="{0}",b="{1}"} `` with the labels sorted by name, as both text formats write them."""
    order = sorted(range(len(spec.labels)), key=spec.labels.__getitem__)
    labels = ",".join(f'{spec.labels[i]}="{{{i}}}"' for i in order)
    return spec.sample + "{{" + labels + "}} "


_TEMPLATES = {spec.name: _line_template(spec) for spec in _SPECS}
#: the values most samples have (the state sets), as Go prints them
_GO: dict[float, str] = {0: "0.0", 1: "1.0"}
#: prometheus-client's float formatting (untyped there)
_go_float: Callable[[float], str] = floatToGoString


def _render(spec: _Spec, rows: _Rows) -> str:
    """Sample lines, byte for byte as prometheus-client's text encoders write them."""
    if not rows:
        return ""
    template, go = _TEMPLATES[spec.name], _GO
    return "".join([template.format(*map(_escape, values)) + (go.get(value) or _go_float(value)) + "\n"
                    for values, value in rows])


#: the events that can add data (``data_samples`` reads no other)
_DATA_EVENTS = ("metrics.updated",)


def _compact(events: list[Event]) -> list[tuple[int, datetime, int]]:
    """Events as the speed window needs them: number, time, bytes added (as ``data_samples`` counts them)."""
    out = []
    for e in events:
        sample = data_samples((e,))
        out.append((e.seq, e.ts, sample[0].added if sample else 0))
    return out


class _Kept:
    """One migration at one version: its state, the families that depend on it alone (samples and
    rendered lines), and the speed window's samples read from its log."""

    __slots__ = ("rows", "since_after", "speed_samples", "speed_since", "state", "status", "text", "version", "window")

    def __init__(self, svc: MigrationService, state: MigrationState, version: tuple[str, int],
                 before: _Kept | None = None) -> None:
        self.version = version
        self.state = state
        mid = state.id
        status = migration_status(state)
        self.status = status.value
        rows: dict[int, _Rows] = {
            _INFO: [((mid, state.name), 1)],
            _STATUS: [((mid, s.value), 1 if s is status else 0) for s in MigrationStatus],
            _PROGRESS: [((mid,), overall_progress(state) / 100)],
        }
        phase_rows: _Rows = []
        status_rows: _Rows = []
        for p in state.phases.values():
            phase_rows.append(((mid, p.id), round(phase_progress(p), 4) / 100))
            status_rows.extend(((mid, p.id, ps.value), 1 if p.status is ps else 0) for ps in Status)
        rows[_PHASE_PROGRESS] = phase_rows
        rows[_PHASE_STATUS] = status_rows
        m = state.metrics
        rate = derived_error_rate(m.successful_operations, m.failed_operations, m.gauges)
        rows[_ERROR] = [] if rate is None else [((mid,), rate / 100)]
        rows[_OPERATIONS] = [((mid, "successful"), m.successful_operations), ((mid, "failed"), m.failed_operations)]
        rows[_DATA] = [((mid,), m.total_data_migrated)]
        rows[_ALERTS] = [((mid, level.value), state.alert_counts.get(level.value, 0)) for level in AlertLevel]
        rows[_UNACKED] = [((mid,), state.unacknowledged_alerts)]
        self.rows = rows
        self.text: dict[int, str] | None = None  # written at the first scrape in a text format
        self.window: list[tuple[int, datetime, int]] | None = None
        self.speed_samples: list[DataSample] | None = None
        self.speed_since: datetime | None = None
        self.since_after = -1
        if needs_samples(state):
            self._read_window(svc, state, before)

    def _read_window(self, svc: MigrationService, state: MigrationState, before: _Kept | None) -> None:
        """What ``MigrationService.speed_samples`` gives (the data added among the newest
        ``SAMPLE_EVENTS`` events, and the time of the first of them when the log goes further
        back), read as a range of event numbers: only the events that can add data are decoded,
        and only those written since the last scrape when it kept the range before them."""
        after = max(0, state.seq - SAMPLE_EVENTS)
        upto = after + SAMPLE_EVENTS  # what events(after, SAMPLE_EVENTS) reads: the sequence has no gaps
        kept: list[tuple[int, datetime, int]] = []
        start = after
        same = before is not None and before.window is not None and before.version[0] == self.version[0]
        if same and before is not None and before.window is not None and before.state.seq >= after:
            # complete up to the state it was read with; anything later is read again
            kept = [w for w in before.window if after < w[0] <= before.state.seq]
            start = before.state.seq
        self.window = kept + _compact(svc.storage.events_of_types(state.id, start, upto, _DATA_EVENTS))
        self.speed_samples = [DataSample(ts, added) for _, ts, added in self.window if added]
        if after == 0:
            self.speed_since = None
        elif same and before is not None and before.since_after == after:
            self.speed_since = before.speed_since
        else:
            first = svc.storage.events(state.id, after, 1)
            self.speed_since = first[0].ts if first else None
        self.since_after = after

    def lines(self, f: int) -> str:
        if self.text is None:
            self.text = {f: _render(_SPECS[f], r) for f, r in self.rows.items()}
        return self.text[f]

    def timed(self, svc: MigrationService, now: datetime) -> dict[int, _Rows]:
        """The families that move with time, at ``now``."""
        state, mid = self.state, self.state.id
        rows: dict[int, _Rows] = {_SPEED: [], _REMAINING: [], _COST: [], _COST_PER_GB: []}
        speed = migration_speed(state, now, self.speed_samples, since=self.speed_since)
        if speed is not None:
            rows[_SPEED].append(((mid,), speed))
        remaining = estimate(state, now).remaining_seconds
        if remaining is not None:
            rows[_REMAINING].append(((mid,), remaining))
        rows[_RESOURCES] = [((mid, name), value) for name, value in sorted(utilization(state.metrics.gauges,
                                                                                       now).items())]
        reported = {k: v for k, v in (state.metrics.gauges.get("cost_metrics") or {}).items()
                    if isinstance(v, int | float)}
        figures = cost_metrics(reported, migration_cost(state, now, remaining, svc.prices))
        for kind in ("actual", "projected", "estimated"):
            if f"{kind}_cost" in figures:
                rows[_COST].append(((mid, kind), figures[f"{kind}_cost"]))
        if "cost_per_gb" in figures:
            rows[_COST_PER_GB].append(((mid,), figures["cost_per_gb"]))
        return rows


@dataclass(slots=True)
class _Scrape:
    """What one scrape read: each migration kept, with its time-dependent rows, in list order."""

    migrations: list[tuple[_Kept, dict[int, _Rows]]]
    tail: list[Metric]

    def counts(self) -> _Rows:
        n = {s.value: 0 for s in MigrationStatus}
        for kept, _ in self.migrations:
            n[kept.status] += 1
        return [((s,), v) for s, v in n.items()]

    def families(self) -> Iterator[Metric]:
        """prometheus-client's families, for its encoders."""
        for f, spec in enumerate(_SPECS):
            family = spec.family()
            name, labels = spec.sample, spec.labels
            if f == _COUNTS:
                rows = self.counts()
            elif spec.timed:
                rows = [r for _, timed in self.migrations for r in timed[f]]
            else:
                rows = [r for kept, _ in self.migrations for r in kept.rows[f]]
            family.samples = [Sample(name, dict(zip(labels, values, strict=True)), value) for values, value in rows]
            yield family
        yield from self.tail

    def text(self, headers: list[str]) -> str:
        """The migrations' families, written (``headers``: each family's HELP and TYPE lines)."""
        out: list[str] = []
        for f, spec in enumerate(_SPECS):
            out.append(headers[f])
            if f == _COUNTS:
                out.append(_render(spec, self.counts()))
            elif spec.timed:
                out.extend(_render(spec, timed[f]) for _, timed in self.migrations)
            else:
                out.extend(kept.lines(f) for kept, _ in self.migrations)
        return "".join(out)


class _Families:
    """A fixed list of families, as a collector (what prometheus-client's encoders take)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.items = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.items)


Encoder = Callable[[Collector], bytes]


def _fast_format(encoder: Encoder) -> tuple[object, ...] | None:
    """A key for the encoders whose sample lines :func:`_render` writes byte for byte: the 0.0.4 text
    format and OpenMetrics 1.x, with the escapings that leave legal names as they are; else None."""
    fn, kwargs = encoder, {}
    if isinstance(encoder, partial):
        if encoder.args:
            return None
        fn, kwargs = encoder.func, dict(encoder.keywords)
    escaping = kwargs.get("escaping", openmetrics.UNDERSCORES)
    if escaping not in (openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8):
        return None
    if fn is generate_latest and set(kwargs) <= {"escaping"}:
        return ("text", escaping)
    if fn is openmetrics.generate_latest and set(kwargs) <= {"escaping", "version"}:
        version = str(kwargs.get("version", "1.0.0"))
        try:
            if parse_version(version) < (2, 0, 0):
                return ("openmetrics", escaping, version)
        except (TypeError, ValueError):
            return None
    return None


def needs_sub_tasks(phase: PhaseState) -> bool:
    """Whether a phase's figures (its progress, the migration's, the estimate) depend on its
    sub-tasks, by the counts its row keeps: not when it has none, when it completed (100 %), nor
    while it and all its sub-tasks are pending (a sub-task moves only in a started phase, and a
    phase never returns to pending: their progress is 0)."""
    counts = phase.sub_task_counts
    if counts is None:
        return True
    present = {status for status, n in counts.items() if n}
    if not present or phase.status is Status.COMPLETED:
        return False
    return not (phase.status is Status.PENDING and present <= {Status.PENDING.value})


class MigrationCollector(Collector):
    """Reads the migrations from the service's store at each scrape (those changed since the last one)."""

    def __init__(self, service: MigrationService, *, requests: RequestStats | None = None,
                 delivery_failures: DeliveryFailures = alert_delivery_failures) -> None:
        self.service = service
        self.requests = requests
        self.delivery_failures = delivery_failures
        #: migration id -> what the last scrape kept of it; replaced whole by each scrape that read the store
        self._kept: dict[str, _Kept] = {}
        self._headers: dict[tuple[object, ...], list[str]] = {}

    def describe(self) -> list[Metric]:
        return []  # the families depend on the store's content: don't let register() collect() once

    def load(self, mid: str) -> MigrationState:
        """The migration as its figures need it: whole, but for the sub-tasks of the phases whose
        figures cannot depend on them (read per phase, only where :func:`needs_sub_tasks`)."""
        storage = self.service.storage
        state = storage.load(mid, sub_tasks=None)
        for pid, p in state.phases.items():
            if needs_sub_tasks(p):
                p.sub_tasks = storage.load(mid, sub_tasks=pid, phases=[pid]).phases[pid].sub_tasks
        return state

    def _read(self) -> _Scrape:
        start = time.perf_counter()
        svc = self.service
        kept_before, kept = self._kept, {}
        migrations: list[tuple[_Kept, dict[int, _Rows]]] = []
        store_now: datetime | None = None
        up = 1
        try:
            ids = svc.list_ids()
            versions = svc.storage.versions() if ids else {}
            for mid in ids:
                version = versions.get(mid)
                if version is None:  # deleted between the listing and the read
                    continue
                entry = kept_before.get(mid)
                if entry is not None and entry.version == version:
                    state = entry.state
                    if svc.clock_is_authority or state.as_of is None:
                        now = svc.now()
                    else:  # the store's clock, read once for every migration not loaded again
                        if store_now is None:
                            store_now = svc.storage.store_time() or svc.now()
                        now = store_now
                else:
                    try:
                        state = self.load(mid)
                    except MigrationNotFound:  # deleted between the listing and the read
                        continue
                    entry = _Kept(svc, state, version, entry)
                    now = svc.read_time(state)
                kept[mid] = entry
                try:
                    timed = entry.timed(svc, now)
                except StorageError:
                    raise
                except Exception:  # one migration's bad figure must not fail every migration's scrape
                    log.exception("metrics scrape: the time-dependent figures of %s were left out", mid)
                    timed = {f: [] for f, spec in enumerate(_SPECS) if spec.timed}
                migrations.append((entry, timed))
        except StorageError as exc:
            log.warning("metrics scrape: the store did not answer: %s", exc)
            up = 0
        if up:
            self._kept = kept
        tail: list[Metric] = []
        failures = CounterMetricFamily(PREFIX + "alert_delivery_failures",
                                       "Alert deliveries that failed for good, by channel", labels=["channel"])
        try:
            for channel, n in sorted(self.delivery_failures(svc.storage).items()):
                failures.add_metric([channel], n)
        except Exception as exc:  # the hook is another module's code: a scrape still answers
            log.warning("metrics scrape: delivery failures not read: %s", exc)
        tail.append(failures)
        if self.requests is not None:
            tail.extend(self.requests.families())
        tail.append(GaugeMetricFamily(PREFIX + "store_up", "1 when this scrape read the store, else 0", value=up))
        tail.append(GaugeMetricFamily(PREFIX + "scrape_duration_seconds", "Time this scrape took to read the store",
                                      value=time.perf_counter() - start))
        return _Scrape(migrations, tail)

    def collect(self) -> Iterator[Metric]:
        yield from self._read().families()

    def expose(self, encoder: Encoder = generate_latest) -> bytes:
        """One scrape, written by ``encoder`` (what ``choose_encoder`` picked for the request): the
        text formats directly from the kept lines, any other through the encoder itself."""
        key = _fast_format(encoder)
        if key is None:
            return encoder(self)
        headers = self._headers.get(key)
        if headers is None:
            headers = self._headers[key] = [
                encoder(_Families([spec.family()])).decode().removesuffix("# EOF\n") for spec in _SPECS]
        scrape = self._read()
        return (scrape.text(headers) + encoder(_Families(scrape.tail)).decode()).encode()


def registry_for(service: MigrationService, requests: RequestStats | None = None,
                 collector: MigrationCollector | None = None) -> CollectorRegistry:
    """A registry of its own (not the process-wide default): several apps in one process, as in the
    tests, each expose their own store."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector or MigrationCollector(service, requests=requests))
    return registry
