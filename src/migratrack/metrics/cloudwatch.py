"""The CloudWatch publisher: reads the store on an interval and pushes PutMetricData.

Like the Prometheus collector, it keeps no counters of its own: each cycle reads every running
migration's state (progress, error rate, data, speed) and the events written since the last cycle
(phase and control events, alerts, progress reports), turns them into data points stamped with the
store's time, and puts them in a bounded buffer. The buffer goes out in calls of at most 1,000
values, no more than ``calls_per_second`` calls a second. A failed call (the endpoint down, a
throttle, a missing permission) is logged and its points stay in the buffer, retried with
back-off: an outage loses no data point unless it outlasts the buffer (``max_buffer`` points;
the oldest go first, and that is logged). Nothing here raises into a migration: the publisher
runs in the server (``MIGRATRACK_CLOUDWATCH=1``) or beside the alert dispatcher
(:func:`run_publisher`), never in a worker.

Metric names and dimensions are in aws/spec.py and docs/aws.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from migratrack.aws import spec
from migratrack.core.models import Event, MigrationState
from migratrack.core.progress import migration_status, overall_progress, phase_progress
from migratrack.core.rules import derived_error_rate
from migratrack.core.speed import migration_speed
from migratrack.core.states import MigrationStatus
from migratrack.errors import MigrationNotFound
from migratrack.service import MigrationService
from migratrack.settings import Settings
from migratrack.storage import Storage

log = logging.getLogger("migratrack.metrics.cloudwatch")

#: PutMetricData takes at most 1,000 metric data points per call
MAX_PER_CALL = 1000
DEFAULT_INTERVAL = 60.0
MAX_BACKOFF = 300.0

Datum = dict[str, Any]


def _datum(name: str, value: float, unit: str, ts: datetime, **dimensions: str) -> Datum:
    return {"MetricName": name, "Value": float(value), "Unit": unit, "Timestamp": ts,
            "Dimensions": [{"Name": k, "Value": v[:255]} for k, v in dimensions.items()]}


def state_points(svc: MigrationService, state: MigrationState, now: datetime) -> list[Datum]:
    """The gauges of one migration at ``now``: overall and phase progress, error rate, data, speed."""
    mid = state.id
    out = [_datum(spec.OVERALL_PROGRESS, overall_progress(state), "Percent", now, MigrationId=mid)]
    for p in state.phases.values():
        out.append(_datum(spec.PHASE_PROGRESS, round(phase_progress(p), 4), "Percent", now, MigrationId=mid,
                          Phase=p.id))
    m = state.metrics
    rate = derived_error_rate(m.successful_operations, m.failed_operations, m.gauges)
    if rate is not None:
        out.append(_datum(spec.ERROR_RATE, rate, "Percent", now, MigrationId=mid))
        out.append(_datum(spec.ERROR_RATE, rate, "Percent", now))  # the alarm's series
    out.append(_datum(spec.TOTAL_DATA, m.total_data_migrated, "Bytes", now, MigrationId=mid))
    samples, since = svc.speed_samples(state)
    speed = migration_speed(state, now, samples, since=since)
    if speed is not None:
        out.append(_datum(spec.SPEED, speed, "Bytes/Second", now, MigrationId=mid))
    return out


def event_points(mid: str, events: Iterable[Event]) -> list[Datum]:
    """Phase events, control events, alerts and progress reports among ``events``, one point each
    (at the event's time)."""
    out: list[Datum] = []
    for e in events:
        kind, _, what = e.type.partition(".")
        if kind == "phase" and what in spec.PHASE_EVENT_TYPES:
            phase = str(e.payload.get("phase", ""))
            out.append(_datum(spec.PHASE_EVENTS, 1, "Count", e.ts, MigrationId=mid, Phase=phase, Event=what))
            if what == "failed":
                out.append(_datum(spec.PHASE_FAILURES, 1, "Count", e.ts))
        elif kind == "migration" and what in spec.CONTROL_ACTIONS:
            out.append(_datum(spec.CONTROL_EVENTS, 1, "Count", e.ts, MigrationId=mid, Action=what))
        elif e.type == "alert.created":
            out.append(_datum(spec.ALERTS, 1, "Count", e.ts, MigrationId=mid, Level=str(e.payload.get("level", ""))))
        if e.type in ("phase.progress", "subtask.progress"):
            out.append(_datum(spec.PROGRESS_UPDATES, 1, "Count", e.ts))
    return out


class CloudWatchPublisher:
    """Collects data points from the store and sends them to CloudWatch; see the module docstring."""

    def __init__(self, service: MigrationService, client: Any, *, namespace: str = spec.DEFAULT_NAMESPACE,
                 max_buffer: int = 100_000, calls_per_second: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.client = client
        self.namespace = namespace
        self.buffer: deque[Datum] = deque()
        self.max_buffer = max_buffer
        self.min_gap = 1.0 / calls_per_second if calls_per_second > 0 else 0.0
        self.sleep = sleep
        self.monotonic = monotonic
        self.dropped = 0
        self.sent = 0
        self._last_call = -1e9
        self._seen: dict[str, int] = {}  # migration -> last event seq turned into points
        self._retry_at = 0.0
        self._backoff = 0.0

    # -- collecting ---------------------------------------------------------------------------

    def collect(self) -> int:
        """Read the store and buffer its points; returns how many were added. A store that does not
        answer is logged and tried again next cycle."""
        added: list[Datum] = []
        try:
            for mid in self.service.list_ids():
                try:
                    added.extend(self._collect_one(mid))
                except MigrationNotFound:
                    continue
        except Exception:
            log.warning("cloudwatch: could not read the store; next cycle tries again", exc_info=True)
        self._add(added)
        return len(added)

    def _collect_one(self, mid: str) -> list[Datum]:
        state = self.service.state(mid)
        now = self.service.read_time(state)
        first = mid not in self._seen
        after = self._seen.get(mid, state.seq)  # a new publisher starts at the present, no back-fill
        points: list[Datum] = []
        while after < state.seq:
            events = self.service.events_after(mid, after, 1000)
            if not events:
                break
            points.extend(event_points(mid, events))
            after = events[-1].seq
        self._seen[mid] = after
        status = migration_status(state)
        # a finished migration gets its gauges once more when it finishes (its last events), then none
        if status in (MigrationStatus.RUNNING, MigrationStatus.PAUSED, MigrationStatus.FAILED) or (
                points and not first):
            points.extend(state_points(self.service, state, now))
        return points

    def _add(self, points: list[Datum]) -> None:
        self.buffer.extend(points)
        over = len(self.buffer) - self.max_buffer
        if over > 0:
            for _ in range(over):
                self.buffer.popleft()
            self.dropped += over
            log.error("cloudwatch: the buffer is full after a long outage; dropped the %d oldest points", over)

    # -- sending ------------------------------------------------------------------------------

    def flush(self) -> bool:
        """Send the buffer, in calls of at most 1,000 points, rate-limited. Returns False when a
        call failed (its points stay buffered for the next try, after a back-off)."""
        if self.monotonic() < self._retry_at:
            return False
        while self.buffer:
            batch = [self.buffer[i] for i in range(min(MAX_PER_CALL, len(self.buffer)))]
            wait = self._last_call + self.min_gap - self.monotonic()
            if wait > 0:
                self.sleep(wait)
            self._last_call = self.monotonic()
            try:
                self.client.put_metric_data(Namespace=self.namespace, MetricData=batch)
            except Exception as exc:  # endpoint down, throttled, no permission: keep the points
                self._backoff = min(MAX_BACKOFF, max(1.0, self._backoff * 2))
                self._retry_at = self.monotonic() + self._backoff
                log.warning("cloudwatch: PutMetricData failed (%s); %d points kept, retrying in %.0f s",
                            _describe(exc), len(self.buffer), self._backoff)
                return False
            for _ in batch:
                self.buffer.popleft()
            self.sent += len(batch)
            self._backoff = 0.0
        return True

    def run_once(self) -> bool:
        self.collect()
        return self.flush()

    def run(self, stop: threading.Event, interval: float = DEFAULT_INTERVAL) -> None:
        """Collect and send every ``interval`` seconds until ``stop`` is set; a last flush then."""
        while True:
            try:
                self.run_once()
            except Exception:  # never let the loop die: the next cycle tries again
                log.exception("cloudwatch: publishing cycle failed")
            if stop.wait(interval):
                break
        self._retry_at = 0.0
        self.flush()


def _describe(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', type(exc).__name__)}: {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def cloudwatch_client(settings: Settings | None = None, *, region: str | None = None,
                      endpoint_url: str | None = None) -> Any:
    """A boto3 CloudWatch client: region and endpoint from the arguments, else the settings
    (``AWS_REGION``, ``MIGRATRACK_AWS_ENDPOINT_URL``), else boto3's own lookup (``AWS_*``
    variables, profiles). Needs the ``aws`` extra."""
    from migratrack.aws.session import client

    return client("cloudwatch", settings, region=region, endpoint_url=endpoint_url, attempts=2)


def run_publisher(storage: Storage | str | MigrationService, stop: threading.Event, *,
                  settings: Settings | None = None, interval: float = DEFAULT_INTERVAL, client: Any = None,
                  namespace: str | None = None) -> CloudWatchPublisher:
    """Publish ``storage``'s migrations to CloudWatch until ``stop`` is set: for a daemon (the
    alert dispatcher's ``migratrack dispatch``) to run in a thread. Returns the publisher when done."""
    s = settings or Settings.from_env()
    svc = storage if isinstance(storage, MigrationService) else MigrationService(storage)
    publisher = CloudWatchPublisher(svc, client or cloudwatch_client(s), namespace=namespace or s.cloudwatch_namespace)
    publisher.run(stop, interval)
    return publisher
