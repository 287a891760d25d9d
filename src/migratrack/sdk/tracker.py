"""MigrationProgressTracker: what a migration script imports.

Progress ticks and counter increments are coalesced: a loop may report a million times and the
store sees at most one write per phase (or sub-task) per ``coalesce`` seconds, plus one before
every transition and at ``flush()``/``close()``. The first report for a phase or sub-task is
written at once, so a mistake (reporting on a phase that was never started) raises where it was
made. Later reports are written by the caller when due, or by a background flusher, and a
transient store failure there is logged and retried, never raised into the migration.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar, cast

from migratrack.core.commands import (
    ApprovePhase,
    Cancel,
    Command,
    CompletePhase,
    CompleteSubTask,
    FailPhase,
    FailSubTask,
    Pause,
    Resume,
    RetryPhase,
    ReviseEstimate,
    SkipPhase,
    SkipSubTask,
    StartPhase,
    StartSubTask,
)
from migratrack.core.delta import ProgressDelta
from migratrack.core.eta import Estimate
from migratrack.core.models import Alert, Event, Phase, check_count, check_progress
from migratrack.core.rules import MAX_TEXT, normalise_metrics
from migratrack.core.states import AlertLevel, Control
from migratrack.core.views import Dashboard, Overview, PhaseView
from migratrack.errors import (
    ConfigurationError,
    InvalidInput,
    MigrationCancelled,
    MigratrackError,
    NotFound,
    PhaseNotFound,
    RuleViolation,
    StorageError,
)
from migratrack.sdk import lifecycle
from migratrack.sdk.backend import Backend
from migratrack.sdk.plan import load_plan
from migratrack.service import Clock, MigrationService, PartiallyApplied, ProgressUpdate
from migratrack.settings import Settings
from migratrack.storage import Storage

log = logging.getLogger("migratrack")
T = TypeVar("T")
_Key = tuple[str, str | None]

#: errors of the tracker itself that must not crash a migration from a progress/metrics call
_TRANSIENT: tuple[type[BaseException], ...] = (StorageError, OSError, TimeoutError)


@dataclass(slots=True)
class _Pending:
    """One key's reports not yet written, merged, and when the key was last written."""

    delta: ProgressDelta | None = None
    sent_at: float = 0.0

    @property
    def dirty(self) -> bool:
        return self.delta is not None

    def take(self) -> ProgressDelta:
        delta, self.delta = self.delta, None
        assert delta is not None
        return delta


class MigrationProgressTracker:
    """Report a migration's phases, sub-tasks, metrics and alerts.

    ``storage`` is a URL (``sqlite:///…``, ``memory://``, ``redis://…``, ``postgresql://…``) or a
    :class:`~migratrack.storage.Storage`; default ``MIGRATRACK_STORAGE_URL`` (or the seed's
    ``REDIS_URL``), else ``sqlite:///migratrack.db``. ``url``/``token`` (or ``MIGRATRACK_URL``/
    ``MIGRATRACK_TOKEN``) report to a migratrack server instead. ``clock`` returns aware
    datetimes. ``coalesce`` is seconds between writes of one phase's progress (0 writes every
    call). With ``block_on_pause`` (default) progress calls, ``checkpoint()`` and ``track()``
    wait while an operator has paused the migration and raise MigrationCancelled once it is
    cancelled.
    """

    def __init__(
        self,
        migration_id: str,
        *,
        storage: str | Storage | None = None,
        url: str | None = None,
        token: str | None = None,
        clock: Clock | None = None,
        actor: str | None = None,
        coalesce: float | None = None,
        block_on_pause: bool = True,
        poll_interval: float = 0.5,
        strict: bool = False,
        backend: Backend | None = None,
        settings: Settings | None = None,
    ) -> None:
        if not isinstance(migration_id, str) or not migration_id.strip():
            raise InvalidInput("migration id must be a non-empty string")
        s = settings or Settings.from_env()
        self.migration_id = migration_id
        self.actor = actor or s.actor
        self.block_on_pause = block_on_pause
        self.poll_interval = poll_interval
        self.strict = strict
        self._interval = (s.coalesce_ms / 1000.0) if coalesce is None else float(coalesce)
        if self._interval < 0:
            raise InvalidInput("coalesce must be a non-negative number of seconds")
        self._backend: Backend
        self._owned_storage: Storage | None = None
        if backend is not None:
            self._backend = backend
        elif url is not None or (storage is None and s.server_url):
            try:
                from migratrack.sdk.remote import RemoteBackend  # type: ignore[import-not-found,unused-ignore]
            except ImportError as exc:
                raise ConfigurationError(
                    "reporting to a server needs the HTTP client: pip install 'migratrack[client]'"
                ) from exc
            self._backend = RemoteBackend(url or s.server_url, token=token or s.token, strict=strict,
                                          deadline=s.retry_deadline)
        else:
            service = MigrationService(storage if storage is not None else s.storage_url, clock)
            if not isinstance(storage, Storage):  # opened here from a URL: closed by close()
                self._owned_storage = service.storage
            self._backend = service
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._pending: dict[_Key, _Pending] = {}
        self._counters: dict[str, int] = {}
        self._counters_sent_at = 0.0
        self._control = Control.RUNNING
        self._control_checked = 0.0
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        _open_trackers.add(self)

    # -- properties ------------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def paused(self) -> bool:
        """Whether an operator has paused the migration (as of the last check)."""
        self._refresh_control(force=True)
        return self._control is Control.PAUSED

    @property
    def cancelled(self) -> bool:
        self._refresh_control(force=True)
        return self._control is Control.CANCELLED

    # -- set-up ----------------------------------------------------------------------------

    def initialize_migration(
        self,
        phases: Iterable[Phase | Mapping[str, Any]] | str | Path,
        *,
        name: str | None = None,
        replace: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Declare the phases (objects, dicts, or a YAML/JSON plan file's path). Returns True if
        the migration was created, False if it existed with the same plan and is resumed."""
        if isinstance(phases, str | Path):
            plan = load_plan(phases)
            phases = plan.phases
            name = name or plan.name
            metadata = {**plan.metadata, **(metadata or {})}
        _, created = self._backend.initialize(self.migration_id, phases, name=name, replace=replace,
                                              actor=self.actor, metadata=metadata)
        return created

    # -- phases ----------------------------------------------------------------------------

    def execute(self, command: Command) -> None:
        """Send one command of ``migratrack.core.commands`` (what every verb below does): after
        waiting out a pause if it starts work, and after writing the coalesced progress of its
        phase or sub-task, so that reports made before a transition are judged before it."""
        if command.waits_on_pause:
            self.checkpoint()
        if command.flushes_progress:
            phase, sub = getattr(command, "phase", None), getattr(command, "sub_task", None)
            if sub is not None:
                self._flush_keys([(str(phase), sub)], raise_rules=False)  # a stale report must not stop it
            elif phase is not None:
                self._flush_phase(phase)
        self._backend.execute(self.migration_id, command, actor=self.actor)
        if command.control_after is not None:
            self._control = command.control_after

    def start_phase(self, phase_id: str) -> None:
        self.execute(StartPhase(phase_id))

    def update_phase_progress(
        self,
        phase_id: str,
        progress: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        done: int | None = None,
        total: int | None = None,
    ) -> None:
        """Report a percentage, or counts (``done`` of ``total``; the total may be revised)."""
        if progress is None and done is None and total is None and not metadata:
            raise InvalidInput("give a progress percentage, or done/total counts, or metadata")
        value = None if progress is None else check_progress(progress)
        d = None if done is None else check_count(done, "done")
        t = None if total is None else check_count(total, "total")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidInput("metadata must be a dict")
        self._tick((phase_id, None), value, d, t, 0, metadata)

    def add_progress(self, phase_id: str, n: int = 1) -> None:
        """Add ``n`` to the phase's done count; increments from several workers add up."""
        self._tick((phase_id, None), None, None, None, check_count(n, "n"), None)

    def complete_phase(self, phase_id: str) -> None:
        self.execute(CompletePhase(phase_id))

    def fail_phase(self, phase_id: str, error: str | BaseException) -> None:
        self.execute(FailPhase(phase_id, _error_text(error)))

    def skip_phase(self, phase_id: str, reason: str) -> None:
        self.execute(SkipPhase(phase_id, reason))

    def retry_phase(self, phase_id: str) -> None:
        self.execute(RetryPhase(phase_id))

    def approve_phase(self, phase_id: str, *, by: str) -> None:
        self.execute(ApprovePhase(phase_id, by))

    def revise_estimate(self, phase_id: str, minutes: float) -> None:
        """Revise a phase's estimated duration mid-run; the ETA uses the new figure (audited)."""
        self.execute(ReviseEstimate(phase_id, minutes))

    # -- sub-tasks -------------------------------------------------------------------------

    def start_sub_task(self, phase_id: str, sub_task_id: str) -> None:
        self.execute(StartSubTask(phase_id, sub_task_id))

    def update_sub_task_progress(self, phase_id: str, sub_task_id: str, progress: float) -> None:
        self._tick((phase_id, sub_task_id), check_progress(progress), None, None, 0, None)

    def complete_sub_task(self, phase_id: str, sub_task_id: str) -> None:
        self.execute(CompleteSubTask(phase_id, sub_task_id))

    def fail_sub_task(self, phase_id: str, sub_task_id: str, error: str | BaseException) -> None:
        self.execute(FailSubTask(phase_id, sub_task_id, _error_text(error)))

    def skip_sub_task(self, phase_id: str, sub_task_id: str, reason: str) -> None:
        self.execute(SkipSubTask(phase_id, sub_task_id, reason))

    # -- alerts and metrics ----------------------------------------------------------------

    def create_alert(self, level: str | AlertLevel, message: str, phase: str | None = None) -> Alert | None:
        """Record an alert (info, warning, error, critical). A transient store failure is
        logged and returns None instead of raising into the migration."""
        try:
            return self._backend.create_alert(self.migration_id, level, message, phase, actor=self.actor)
        except _TRANSIENT as exc:
            if self.strict:
                raise
            log.warning("migratrack: could not record alert %r: %s", message, exc)
            return None

    def acknowledge_alert(self, alert_id: str, *, by: str) -> Alert:
        return self._backend.acknowledge_alert(self.migration_id, alert_id, by, actor=self.actor)

    def update_metrics(
        self,
        metrics: Mapping[str, Any] | None = None,
        /,
        *,
        increment: Mapping[str, int] | None = None,
        **fields: Any,
    ) -> None:
        """Set metrics (a partial of the seed's MigrationMetrics, snake_case or camelCase, nested
        ``resource_utilization``/``cost_metrics`` included) and add to counters with
        ``increment={"successful_operations": 1}``; increments are coalesced and add up across
        workers."""
        values = {**(metrics or {}), **fields}
        _, deltas = normalise_metrics(values, increment or {})  # validate now, not at flush
        if values:
            self._flush_counters()
            try:
                self._backend.update_metrics(self.migration_id, values, None, actor=self.actor)
            except _TRANSIENT as exc:
                if self.strict:
                    raise
                log.warning("migratrack: could not record metrics: %s", exc)
        if deltas:
            with self._lock:
                for k, v in deltas.items():
                    self._counters[k] = self._counters.get(k, 0) + v
                due = time.monotonic() - self._counters_sent_at >= self._interval
            if due:
                self._flush_counters()
            else:
                self._ensure_flusher()

    def record(self, *, succeeded: int = 0, failed: int = 0, bytes: int = 0) -> None:
        """Shorthand for counter increments: operations that succeeded/failed and bytes moved."""
        inc = {"successful_operations": succeeded, "failed_operations": failed, "total_data_migrated": bytes}
        self.update_metrics(increment={k: v for k, v in inc.items() if v})

    # -- control ---------------------------------------------------------------------------

    def pause(self, reason: str | None = None) -> None:
        self.execute(Pause(reason))

    def resume(self) -> None:
        self.execute(Resume())

    def cancel(self, reason: str | None = None) -> None:
        self.execute(Cancel(reason))

    def checkpoint(self) -> None:
        """Block while the migration is paused; raise MigrationCancelled once it is cancelled."""
        self._refresh_control(force=True)
        self._honour_control()

    def _refresh_control(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._control_checked < max(self._interval, 0.05):
            return
        try:
            self._control = self._backend.control(self.migration_id)
        except NotFound:
            raise
        except (StorageError, OSError, TimeoutError, MigratrackError) as exc:
            log.warning("migratrack: could not read the control state: %s", exc)
        self._control_checked = now

    def _honour_control(self) -> None:
        if self._control is Control.CANCELLED:
            raise MigrationCancelled(self.migration_id)
        if self._control is Control.PAUSED and self.block_on_pause:
            log.info("migratrack: migration %s is paused; waiting", self.migration_id)
            self.flush()
            while self._control is Control.PAUSED:
                time.sleep(self.poll_interval)
                self._refresh_control(force=True)
            if self._control is Control.CANCELLED:
                raise MigrationCancelled(self.migration_id)

    # -- reads -----------------------------------------------------------------------------

    def get_overview(self) -> Overview:
        self.flush()
        return self._backend.overview(self.migration_id)

    def get_dashboard(self, *, alerts: int = 20) -> Dashboard:
        self.flush()
        return self._backend.dashboard(self.migration_id, alerts=alerts)

    def get_phase(self, phase_id: str) -> PhaseView:
        """One phase as the dashboard shows it (status, progress, done/total, attempts, errors…):
        what a re-run script reads to resume where it stopped."""
        for phase in self.get_dashboard(alerts=0).phases:
            if phase.id == phase_id:
                return phase
        raise PhaseNotFound(self.migration_id, phase_id)

    def estimate(self) -> Estimate:
        """The completion estimate with its interval and critical path."""
        self.flush()
        return self._backend.estimate(self.migration_id)

    def estimate_completion(self) -> datetime | None:
        return self.estimate().completion

    def events(self, after: int = 0, limit: int = 1000) -> list[Event]:
        self.flush()
        return self._backend.events(self.migration_id, after, limit)

    def alerts(self, *, limit: int = 50, unacknowledged_only: bool = False) -> list[Alert]:
        return self._backend.alerts(self.migration_id, limit=limit, unacknowledged_only=unacknowledged_only)

    # -- helpers for loops -----------------------------------------------------------------

    def phase(self, phase_id: str) -> AbstractContextManager[MigrationProgressTracker]:
        """Start the phase (unless already running), complete it on exit, or fail it with the
        exception's text (the exception propagates). MigrationCancelled leaves it as it is."""
        return self._step(lambda: self.start_phase(phase_id), lambda: self.complete_phase(phase_id),
                          lambda exc: self.fail_phase(phase_id, exc))

    def sub_task(self, phase_id: str, sub_task_id: str) -> AbstractContextManager[MigrationProgressTracker]:
        """Start a sub-task, complete it on exit, or fail it with the exception's text."""
        return self._step(lambda: self.start_sub_task(phase_id, sub_task_id),
                          lambda: self.complete_sub_task(phase_id, sub_task_id),
                          lambda exc: self.fail_sub_task(phase_id, sub_task_id, exc))

    @contextmanager
    def _step(
        self, start: Callable[[], None], complete: Callable[[], None], fail: Callable[[BaseException], None]
    ) -> Iterator[MigrationProgressTracker]:
        start()
        try:
            yield self
        except MigrationCancelled:
            self.flush()
            raise
        except BaseException as exc:
            error = exc
            self._safe(lambda: fail(error))
            raise
        complete()

    def track(
        self,
        iterable: Iterable[T],
        phase: str,
        total: int | None = None,
        *,
        start: bool = True,
        complete: bool = True,
    ) -> Iterator[T]:
        """Yield from ``iterable`` and report the count as the phase's done (of ``total``,
        default ``len(iterable)`` when it has one). Starts the phase if needed and completes it
        when the iterable is exhausted (``complete=False`` for one of several workers on one
        phase: counts add up across workers). Honours pause and cancel between items."""
        try:
            length: int | None = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            length = None
        if total is None:
            total = length
        if start:
            self.start_phase(phase)
        if total is not None:
            self.update_phase_progress(phase, total=check_count(total, "total"))
        if length is not None:
            return self._track_sized(iter(iterable), length, phase, complete)
        return self._track(iter(iterable), phase, complete)

    def _track_sized(self, it: Iterator[T], length: int, phase: str, complete: bool) -> Generator[T, None, None]:
        # A sized iterable is consumed in slices delegated to C (`yield from islice`), so the
        # per-item cost is the generator hop alone; bookkeeping runs between slices, about every
        # 10 ms. One look ahead after each slice proves it was full; the last slice is counted
        # item by item, so an iterable shorter than its len() is never overcounted. When the
        # caller stops early, the items of the unfinished slice are not counted.
        n = 0
        step = 1
        last = time.monotonic()
        missing = object()
        carried = 0  # the looked-ahead item: yielded, counted with the next slice
        try:
            while n < length:
                chunk = min(step, length - n)
                if chunk == length - n:
                    counted = 0
                    for item in islice(it, chunk):
                        yield item
                        counted += 1
                    self._tick((phase, None), None, None, None, carried + counted, None)
                    carried = 0
                    break
                yield from islice(it, chunk)
                ahead = next(it, missing)
                if ahead is missing:  # shorter than announced: the last slice's count is unknown
                    if carried:
                        self._tick((phase, None), None, None, None, carried, None)
                    carried = 0
                    break
                self._tick((phase, None), None, None, None, carried + chunk, None)
                n += chunk + 1
                carried = 1
                yield cast(T, ahead)
                now = time.monotonic()
                elapsed, last = now - last, now
                if elapsed < 0.005 and step < 1 << 20:
                    step <<= 1
                elif elapsed > 0.05 and step > 1:
                    step >>= 1
            if carried:
                self._tick((phase, None), None, None, None, carried, None)
                carried = 0
            yield from it  # anything beyond the announced length
        finally:
            self._safe(self.flush)
        if complete:
            self.complete_phase(phase)

    def _track(self, it: Iterator[T], phase: str, complete: bool) -> Generator[T, None, None]:
        # The per-item work is one add and one compare; everything else runs every `step` items,
        # with `step` adapted so that this happens about every 10 ms.
        n = reported = 0
        step = 1
        next_check = 1
        last = time.monotonic()
        try:
            for item in it:
                n += 1
                if n >= next_check:
                    now = time.monotonic()
                    elapsed = now - last
                    if elapsed < 0.005 and step < 1 << 20:
                        step <<= 1
                    elif elapsed > 0.05 and step > 1:
                        step >>= 1
                    last = now
                    next_check = n + step
                    self._tick((phase, None), None, None, None, n - reported, None)
                    reported = n
                yield item
        finally:
            if n > reported:
                self._safe(lambda: self._tick((phase, None), None, None, None, n - reported, None))
        self.flush()
        if complete:
            self.complete_phase(phase)

    # -- coalescing ------------------------------------------------------------------------

    def _tick(
        self, key: _Key, progress: float | None, done: int | None, total: int | None, add: int,
        metadata: Mapping[str, Any] | None,
    ) -> None:
        report = ProgressDelta(key[0], key[1], progress, done, total, add or None, dict(metadata) if metadata else {})
        if not self._interval:  # coalescing off: every call is written, in the caller's thread
            self._send([report], {}, raise_rules=True)
            if self.block_on_pause:
                self._refresh_control()
                self._honour_control()
            return
        now = time.monotonic()
        with self._lock:
            p = self._pending.get(key)
            first = p is None
            if p is None:
                p = self._pending[key] = _Pending()
            p.delta = report if p.delta is None else p.delta.merge(report)
            due = first or now - p.sent_at >= self._interval
        if due:
            self._flush_keys([key], raise_rules=first or self.strict)
        else:
            self._ensure_flusher()
        if self.block_on_pause:
            self._refresh_control()
            self._honour_control()

    def _flush_keys(self, keys: Iterable[_Key], *, raise_rules: bool = True) -> None:
        with self._send_lock:
            with self._lock:
                updates = []
                now = time.monotonic()
                for k in keys:
                    p = self._pending.get(k)
                    if p is not None and p.dirty:
                        updates.append(p.take())
                        p.sent_at = now
            if updates:
                self._send(updates, {}, raise_rules)

    def _send(self, updates: list[ProgressUpdate], counters: dict[str, int], raise_rules: bool) -> None:
        try:
            control = self._backend.apply_updates(self.migration_id, updates, counters or None, actor=self.actor)
            if control is not None:
                self._control = control
                self._control_checked = time.monotonic()
        except (RuleViolation, NotFound, InvalidInput):
            if raise_rules:
                raise
            log.warning("migratrack: a coalesced progress update was rejected", exc_info=True)
        except _TRANSIENT as exc:
            if self.strict:
                raise
            log.warning("migratrack: store unavailable, will retry progress updates: %s", exc)
            if isinstance(exc, PartiallyApplied):  # retry only what was not written
                updates, counters = exc.updates, exc.increments
            self._requeue(updates, counters)

    def _requeue(self, updates: list[ProgressUpdate], counters: dict[str, int]) -> None:
        with self._lock:
            for u in updates:
                p = self._pending.setdefault(u.key, _Pending())
                # u was reported before anything pending now: merge in time order
                p.delta = u if p.delta is None else u.merge(p.delta)
            for k, v in counters.items():
                self._counters[k] = self._counters.get(k, 0) + v
        self._ensure_flusher()

    def _flush_phase(self, phase_id: str) -> None:
        with self._lock:
            keys = [k for k in self._pending if k[0] == phase_id]
        self._flush_keys(keys, raise_rules=False)

    def _flush_counters(self) -> None:
        with self._send_lock:
            with self._lock:
                counters, self._counters = self._counters, {}
                self._counters_sent_at = time.monotonic()
            if counters:
                self._send([], counters, raise_rules=self.strict)

    def flush(self) -> None:
        """Write every pending progress report and counter increment now."""
        with self._send_lock:
            with self._lock:
                now = time.monotonic()
                updates = []
                for p in self._pending.values():
                    if p.dirty:
                        updates.append(p.take())
                        p.sent_at = now
                counters, self._counters = self._counters, {}
                self._counters_sent_at = now
            if updates or counters:
                self._send(updates, counters, raise_rules=self.strict)

    def _due(self) -> None:
        now = time.monotonic()
        with self._lock:
            keys = [k for k, p in self._pending.items() if p.dirty and now - p.sent_at >= self._interval]
            counters_due = bool(self._counters) and now - self._counters_sent_at >= self._interval
        if keys:
            self._flush_keys(keys, raise_rules=False)
        if counters_due:
            self._flush_counters()

    def _ensure_flusher(self) -> None:
        if self._flusher is not None or self._closed:
            return
        with self._lock:
            if self._flusher is not None:
                return
            ref = weakref.ref(self)
            stop = self._stop
            interval = max(self._interval, 0.01)

            def run() -> None:
                while not stop.wait(interval):
                    tracker = ref()
                    if tracker is None:
                        return
                    try:
                        tracker._due()
                    except Exception:  # a flusher must never die
                        log.warning("migratrack: background flush failed", exc_info=True)
                    del tracker

            self._flusher = threading.Thread(target=run, name=f"migratrack-flush-{self.migration_id}",
                                             daemon=True)
            self._flusher.start()

    def _safe(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:
            log.warning("migratrack: could not record an update", exc_info=True)

    def close(self) -> None:
        """Flush what is pending and stop the background flusher. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        try:
            self.flush()
        except MigratrackError:
            log.warning("migratrack: final flush failed", exc_info=True)
        _open_trackers.discard(self)
        if self._owned_storage is not None:
            self._owned_storage.close()
        closer = getattr(self._backend, "close", None)  # a remote backend's connections
        if callable(closer):
            try:
                closer()
            except Exception:
                log.warning("migratrack: closing the backend failed", exc_info=True)

    def __enter__(self) -> MigrationProgressTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MigrationProgressTracker {self.migration_id!r}>"


def _error_text(error: str | BaseException) -> str:
    if isinstance(error, BaseException):
        text = str(error)
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
        # an exception's text can be anything (a whole SQL statement): the failure must still be recorded
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"
    return error


_open_trackers: weakref.WeakSet[MigrationProgressTracker] = weakref.WeakSet()


@lifecycle.at_exit(lifecycle.TRACKERS)
def _flush_all() -> None:
    for tracker in list(_open_trackers):
        tracker.close()
