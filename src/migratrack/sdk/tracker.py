"""MigrationProgressTracker: what a migration script imports, the SDK's facade.

Each method is a few lines over the tracker's parts: the backend it reports to (a store
in-process, or a server: ``sdk/backend.py``), the coalescer that merges progress reports and
counter increments into at most one write per phase (or sub-task) per ``coalesce`` seconds
(``sdk/coalescer.py``), the pause/cancel gate (``sdk/control.py``) and the loop helpers
(``sdk/loops.py``).

Nothing a tracker accepted is lost with it: ``close()`` delivers (or spools) what is pending;
a tracker dropped without ``close()`` hands its coalescer to a finalizer that writes it when the
tracker is garbage-collected (the finalizer holds the coalescer and the backend, never the
tracker, so it does not keep the tracker alive); trackers still open at interpreter exit (also
in a ``multiprocessing`` worker) are closed by ``sdk/lifecycle.py`` before remote buffers drain.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from migratrack.core import commands
from migratrack.core.eta import Estimate
from migratrack.core.models import Alert, Event, Phase, check_count, check_progress
from migratrack.core.rules import MAX_TEXT, normalise_metrics
from migratrack.core.states import AlertLevel, Control
from migratrack.core.summary import SubTaskPage, Summary
from migratrack.core.views import Dashboard, Overview, PhaseView
from migratrack.errors import InvalidInput, InvalidTransition, PhaseNotFound
from migratrack.logs import configure_if_asked
from migratrack.sdk import lifecycle, loops
from migratrack.sdk.alerting import embedded_alerts, heartbeat_interval
from migratrack.sdk.backend import Backend, close_backend, open_backend, spool_target
from migratrack.sdk.coalescer import Coalescer
from migratrack.sdk.control import ControlGate, KnownControl
from migratrack.sdk.plan import load_plan
from migratrack.sdk.retry import new_op_id
from migratrack.sdk.spool import Spool
from migratrack.service import Clock
from migratrack.settings import Settings
from migratrack.storage import Storage

log = logging.getLogger("migratrack")
T = TypeVar("T")


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

    Every write carries an operation id kept over its retries, so it is applied once. What the
    store or server does not take within ``MIGRATRACK_RETRY_DEADLINE`` seconds goes to a spool
    file in ``MIGRATRACK_SPOOL_DIR``, which the next tracker for the migration replays when it
    starts.
    """

    def __init__(
        self, migration_id: str, *, storage: str | Storage | None = None, url: str | None = None,
        token: str | None = None, clock: Clock | None = None, actor: str | None = None,
        coalesce: float | None = None, block_on_pause: bool = True, poll_interval: float = 0.5,
        strict: bool = False, backend: Backend | None = None, settings: Settings | None = None,
        sample_resources: bool | float = False,
    ) -> None:
        if not isinstance(migration_id, str) or not migration_id.strip():
            raise InvalidInput("migration id must be a non-empty string")
        sample_every = _sample_interval(sample_resources)
        s = settings or Settings.from_env()
        configure_if_asked(s)  # MIGRATRACK_LOG_LEVEL=debug: the seed's DEBUG=migration:*
        interval = (s.coalesce_ms / 1000.0) if coalesce is None else float(coalesce)
        if interval < 0:
            raise InvalidInput("coalesce must be a non-negative number of seconds")
        self.migration_id = migration_id
        owned_storage: Storage | None = None
        if backend is None:
            backend, owned_storage = open_backend(s, storage=storage, url=url, token=token, clock=clock,
                                                  strict=strict)
        self._backend = backend
        target = spool_target(backend)
        known = KnownControl()
        self._coalescer = Coalescer(
            backend, migration_id, known, actor=actor or s.actor, interval=interval, strict=strict,
            deadline=s.retry_deadline, spool=Spool(s.spool_path(), target), target=target,
            on_close=functools.partial(close_backend, backend, owned_storage),
        )
        self._gate = ControlGate(backend, migration_id, known, flush=self._coalescer.flush,
                                 refresh_every=max(interval, 0.05), block_on_pause=block_on_pause,
                                 poll_interval=poll_interval)
        # Collected without close(): the coalescer writes what is pending. The finalizer holds
        # the coalescer (and through it the backend), never the tracker. At exit, the lifecycle
        # hook closes the trackers still open, in its order, instead of weakref's own hook.
        self._finalizer = weakref.finalize(self, self._coalescer.abandon)
        self._finalizer.atexit = False
        _open_trackers.add(self)
        lifecycle.watch_children()
        if s.flush_on_sigterm:
            lifecycle.exit_on_sigterm()
        self._coalescer.replay()  # what an earlier tracker for this migration could not deliver
        # sample_resources=True samples every 10 s, a number sets the interval (metrics/resources.py)
        self._sampler = _sampler(self, sample_every, actor or s.actor)
        self._heartbeat_every = heartbeat_interval(s)
        self._dispatcher = embedded_alerts(backend, s)

    # -- properties ------------------------------------------------------------------------
    # the settings live with the part that reads them on every call: setting one here still works

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def actor(self) -> str:
        return self._coalescer.actor

    @actor.setter
    def actor(self, value: str) -> None:
        self._coalescer.actor = value

    @property
    def strict(self) -> bool:
        return self._coalescer.strict

    @strict.setter
    def strict(self, value: bool) -> None:
        self._coalescer.strict = value

    @property
    def block_on_pause(self) -> bool:
        return self._gate.block_on_pause

    @block_on_pause.setter
    def block_on_pause(self, value: bool) -> None:
        self._gate.block_on_pause = value

    @property
    def poll_interval(self) -> float:
        return self._gate.poll_interval

    @poll_interval.setter
    def poll_interval(self, value: float) -> None:
        self._gate.poll_interval = value

    @property
    def paused(self) -> bool:
        """Whether an operator has paused the migration (as of the last check)."""
        self._gate.refresh(force=True)
        return self._gate.control is Control.PAUSED

    @property
    def cancelled(self) -> bool:
        self._gate.refresh(force=True)
        return self._gate.control is Control.CANCELLED

    # -- set-up ----------------------------------------------------------------------------

    def initialize_migration(
        self, phases: Iterable[Phase | Mapping[str, Any]] | str | Path, *, name: str | None = None,
        replace: bool = False, metadata: Mapping[str, Any] | None = None,
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

    def execute(self, command: commands.Command) -> None:
        """Send one command of ``migratrack.core.commands`` (what every verb below does): after
        waiting out a pause if it starts work, and after writing the coalesced progress of its
        phase or sub-task, so that reports made before a transition are judged before it."""
        if command.waits_on_pause:
            self._gate.checkpoint()
        if command.flushes_progress:
            self._coalescer.flush_before(command)
        self._backend.execute(self.migration_id, command, actor=self.actor, op_id=new_op_id())
        if command.control_after is not None:
            self._gate.assume(command.control_after)
        if command.waits_on_pause:  # work started: beat while it runs, also when it reports nothing
            self._coalescer.keep_alive(self._heartbeat_every)

    def start_phase(self, phase_id: str) -> None:
        self.execute(commands.StartPhase(phase_id))

    def resume_phase(self, phase_id: str) -> bool:
        """Start the phase as a script run again does: a pending phase starts, a running one goes
        on, a failed one is retried, and a completed or skipped one is left as it is (the audit
        trail records ``phase.rerun_skipped``). Returns True when the phase had already finished.
        What ``phase()`` and ``track()`` call, so that re-running a script resumes it."""
        try:
            self.execute(commands.StartPhase(phase_id))
            return False
        except InvalidTransition as exc:  # the common path above costs nothing more than start_phase
            if getattr(exc, "current", None) not in ("completed", "skipped", "failed"):
                raise
            self.execute(commands.StartPhase(phase_id, rerun=True))
            return bool(exc.current != "failed")

    def update_phase_progress(
        self, phase_id: str, progress: float | None = None, metadata: Mapping[str, Any] | None = None, *,
        done: int | None = None, total: int | None = None,
    ) -> None:
        """Report a percentage, or counts (``done`` of ``total``; the total may be revised)."""
        if progress is None and done is None and total is None and not metadata:
            raise InvalidInput("give a progress percentage, or done/total counts, or metadata")
        value = None if progress is None else check_progress(progress)
        d = None if done is None else check_count(done, "done")
        t = None if total is None else check_count(total, "total")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidInput("metadata must be a dict")
        self._coalescer.tick((phase_id, None), value, d, t, 0, metadata)
        self._gate.after_report()

    def add_progress(self, phase_id: str, n: int = 1) -> None:
        """Add ``n`` to the phase's done count; increments from several workers add up."""
        self._coalescer.tick((phase_id, None), None, None, None, check_count(n, "n"), None)
        self._gate.after_report()

    def complete_phase(self, phase_id: str) -> None:
        self.execute(commands.CompletePhase(phase_id))

    def fail_phase(self, phase_id: str, error: str | BaseException) -> None:
        self.execute(commands.FailPhase(phase_id, _error_text(error)))

    def skip_phase(self, phase_id: str, reason: str) -> None:
        self.execute(commands.SkipPhase(phase_id, reason))

    def retry_phase(self, phase_id: str) -> None:
        self.execute(commands.RetryPhase(phase_id))

    def approve_phase(self, phase_id: str, *, by: str) -> None:
        self.execute(commands.ApprovePhase(phase_id, by))

    def revise_estimate(self, phase_id: str, minutes: float) -> None:
        """Revise a phase's estimated duration mid-run; the ETA uses the new figure (audited)."""
        self.execute(commands.ReviseEstimate(phase_id, minutes))

    # -- sub-tasks -------------------------------------------------------------------------

    def start_sub_task(self, phase_id: str, sub_task_id: str) -> None:
        self.execute(commands.StartSubTask(phase_id, sub_task_id))

    def update_sub_task_progress(self, phase_id: str, sub_task_id: str, progress: float) -> None:
        self._coalescer.tick((phase_id, sub_task_id), check_progress(progress), None, None, 0, None)
        self._gate.after_report()

    def complete_sub_task(self, phase_id: str, sub_task_id: str) -> None:
        self.execute(commands.CompleteSubTask(phase_id, sub_task_id))

    def fail_sub_task(self, phase_id: str, sub_task_id: str, error: str | BaseException) -> None:
        self.execute(commands.FailSubTask(phase_id, sub_task_id, _error_text(error)))

    def skip_sub_task(self, phase_id: str, sub_task_id: str, reason: str) -> None:
        self.execute(commands.SkipSubTask(phase_id, sub_task_id, reason))

    # -- alerts and metrics ----------------------------------------------------------------

    def create_alert(self, level: str | AlertLevel, message: str, phase: str | None = None) -> Alert | None:
        """Record an alert (info, warning, error, critical). During a store or server outage the
        alert is kept and written when it ends (once: it carries an operation id), and the
        Alert returned is provisional; nothing is raised into the migration."""
        return self._coalescer.alert(level, message, phase)

    def acknowledge_alert(self, alert_id: str, *, by: str) -> Alert:
        return self._backend.acknowledge_alert(self.migration_id, alert_id, by, actor=self.actor)

    def update_metrics(
        self, metrics: Mapping[str, Any] | None = None, /, *, increment: Mapping[str, int] | None = None,
        **fields: Any,
    ) -> None:
        """Set metrics (a partial of the seed's MigrationMetrics, snake_case or camelCase, nested
        ``resource_utilization``/``cost_metrics`` included) and add to counters with
        ``increment={"successful_operations": 1}``; increments are coalesced and add up across
        workers."""
        values = {**(metrics or {}), **fields}
        _, deltas = normalise_metrics(values, increment or {})  # validate now, not at flush
        if values:
            self._coalescer.write_metrics(values)
        if deltas:
            self._coalescer.count(deltas)

    def record(self, *, succeeded: int = 0, failed: int = 0, bytes: int = 0) -> None:
        """Shorthand for counter increments: operations that succeeded/failed and bytes moved."""
        inc = {"successful_operations": succeeded, "failed_operations": failed, "total_data_migrated": bytes}
        self.update_metrics(increment={k: v for k, v in inc.items() if v})

    # -- control ---------------------------------------------------------------------------

    def pause(self, reason: str | None = None) -> None:
        self.execute(commands.Pause(reason))

    def resume(self) -> None:
        self.execute(commands.Resume())

    def cancel(self, reason: str | None = None) -> None:
        self.execute(commands.Cancel(reason))

    def throttle(self, reason: str | None = None) -> None:
        """Say the work is being throttled (e.g. "S3 slow-down"): until ``unthrottle()`` the time is
        left out of the estimate's rates, as a pause is. Prefer ``with tracker.throttled(...)``."""
        self._coalescer.flush()  # the progress made before it lands before it
        self.execute(commands.Throttle(reason))

    def unthrottle(self) -> None:
        self._coalescer.flush()
        self.execute(commands.Unthrottle())

    @contextlib.contextmanager
    def throttled(self, reason: str | None = None) -> Iterator[None]:
        """``throttle(reason)`` for the block, ``unthrottle()`` when it ends (raising or not)."""
        self.throttle(reason)
        try:
            yield
        finally:
            self.unthrottle()

    def checkpoint(self) -> None:
        """Block while the migration is paused; raise MigrationCancelled once it is cancelled."""
        self._gate.checkpoint()

    # -- reads -----------------------------------------------------------------------------

    def get_overview(self) -> Overview:
        self.flush()
        return self._backend.overview(self.migration_id)

    def get_dashboard(self, *, alerts: int = 20) -> Dashboard:
        self.flush()
        return self._backend.dashboard(self.migration_id, alerts=alerts)

    def get_summary(self) -> Summary:
        """Every phase with its sub-tasks counted by status: costs the phases, not the sub-tasks
        (what to read on a migration of 100,000 sub-tasks instead of the dashboard)."""
        self.flush()
        return self._backend.summary(self.migration_id)

    def get_sub_tasks(self, phase_id: str, *, status: str | None = None, after: str | None = None,
                      limit: int = 100) -> SubTaskPage:
        """A page of one phase's sub-tasks in plan order, only those in ``status`` if given; pass
        the page's ``next_after`` as ``after`` for the next one (None: it was the last)."""
        self.flush()
        return self._backend.sub_tasks(self.migration_id, phase_id, status=status, after=after, limit=limit)

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
        exception's text (the exception propagates). MigrationCancelled leaves it as it is.

        On a re-run of the script (see ``resume_phase``) a failed phase is retried, and one that
        already completed or was skipped is neither started nor completed again: the block
        still runs (Python cannot skip it), so guard work that must not be repeated with
        ``tracker.get_phase(id).status``, or use ``track()``, which skips a finished phase's items."""
        return loops.step(self, lambda: self.resume_phase(phase_id), lambda: self.complete_phase(phase_id),
                          lambda exc: self.fail_phase(phase_id, exc))

    def sub_task(self, phase_id: str, sub_task_id: str) -> AbstractContextManager[MigrationProgressTracker]:
        """Start a sub-task, complete it on exit, or fail it with the exception's text."""
        return loops.step(self, lambda: self.start_sub_task(phase_id, sub_task_id),
                          lambda: self.complete_sub_task(phase_id, sub_task_id),
                          lambda exc: self.fail_sub_task(phase_id, sub_task_id, exc))

    def track(
        self, iterable: Iterable[T], phase: str, total: int | None = None, *, start: bool = True,
        complete: bool = True,
    ) -> Iterator[T]:
        """Yield from ``iterable`` and report the count as the phase's done (of ``total``,
        default ``len(iterable)`` when it has one). Starts the phase if needed and completes it
        when the iterable is exhausted (``complete=False`` for one of several workers on one
        phase: counts add up across workers). Honours pause and cancel between items. On a re-run
        of the script, a phase that already completed or was skipped yields nothing (recorded in
        the audit trail), and a failed one is retried."""
        return loops.track(self, iterable, phase, total, start=start, complete=complete)

    # -- the end ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every pending progress report and counter increment now."""
        self._coalescer.flush()

    def close(self) -> None:
        """Deliver what is pending (retrying an outage up to ``MIGRATRACK_RETRY_DEADLINE``, then
        spooling it), stop the background flusher and close the backend. Safe to call twice."""
        if self._finalizer.detach() is None:  # closed already
            return
        _open_trackers.discard(self)
        if self._sampler is not None:
            self._sampler.stop()
        if self._dispatcher is not None:
            self._dispatcher.stop()
        self._coalescer.close()

    def __enter__(self) -> MigrationProgressTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MigrationProgressTracker {self.migration_id!r}>"


def _sample_interval(every: bool | float) -> float | None:
    if every is False or every is None:
        return None
    try:
        from migratrack.metrics.resources import DEFAULT_INTERVAL  # psutil only when asked
    except ImportError as exc:
        raise InvalidInput(f"sample_resources needs psutil: pip install 'migratrack[resources]' ({exc})") from None
    interval = DEFAULT_INTERVAL if every is True else every
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
        raise InvalidInput(f"sample_resources must be True or a positive number of seconds, got {every!r}")
    return float(interval)


def _sampler(tracker: MigrationProgressTracker, interval: float | None, worker: str) -> Any:
    if interval is None:
        return None
    from migratrack.metrics.resources import ResourceSampler

    # held weakly: the thread keeps neither the tracker nor its finalizer from running
    return ResourceSampler(weakref.WeakMethod(tracker.update_metrics), worker, interval).start()


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
