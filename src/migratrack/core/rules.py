"""The state machine: a command and the current state give events and the touched parts.

Every function here is pure: it mutates the ``MigrationState`` it is handed (a copy the store
loaded inside a transaction) and records what it touched in a :class:`Change`; the store
writes exactly that. A command that is rejected raises before anything is touched, so a
rejected call writes nothing.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from migratrack.core.delta import ProgressDelta
from migratrack.core.models import (
    COST_FIELDS,
    COUNTERS,
    GAUGES,
    RESOURCE_FIELDS,
    Alert,
    MigrationState,
    NewEvent,
    Pause,
    PhaseState,
    SubTaskState,
    check_count,
    check_progress,
    count_statuses,
)
from migratrack.core.resources import WORKER_FIELDS, WORKERS_KEY, stamp, valid_worker
from migratrack.core.states import AlertLevel, Control, Status, allowed
from migratrack.core.values import check_metadata
from migratrack.errors import (
    ApprovalRequired,
    DependencyNotMet,
    InvalidInput,
    InvalidTransition,
    RuleViolation,
)

#: the error rate (percent) above which an automatic warning is raised, unless the
#: migration's metadata sets ``error_rate_threshold``
DEFAULT_ERROR_RATE_THRESHOLD = 10.0
#: header metadata key set while an error-rate alert is out and not yet re-armed
ERROR_RATE_ALERTED = "_error_rate_alerted"
MAX_TEXT = 10_000


class NeedsSubTasks(Exception):
    """Raised by a rule that must read a phase's sub-tasks it was not given (a scoped load): the
    caller loads them and runs the command again. Only on the way to a rejection (to name the
    sub-tasks in the error), so the common case never pays for it; nothing was written."""

    def __init__(self, phase_id: str) -> None:
        self.phase_id = phase_id
        super().__init__(f"the rule needs the sub-tasks of phase {phase_id!r}")


@dataclass
class Change:
    """What a command did: the events to append and the parts of the state to write."""

    events: list[NewEvent] = field(default_factory=list)
    header: bool = False
    metrics: bool = False
    phases: set[str] = field(default_factory=set)
    sub_tasks: set[tuple[str, str]] = field(default_factory=set)
    new_alerts: list[Alert] = field(default_factory=list)
    updated_alerts: list[Alert] = field(default_factory=list)
    #: sequence number of the last event, filled in by the store
    last_seq: int = 0

    @property
    def empty(self) -> bool:
        return not (self.events or self.header or self.metrics or self.phases
                    or self.sub_tasks or self.new_alerts or self.updated_alerts)


def new_alert_id() -> str:
    return uuid.uuid4().hex[:16]


def _text(value: Any, what: str, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{what} is longer than {MAX_TEXT} characters")
    return value


def _metadata(value: Any) -> dict[str, Any]:
    return {} if value is None else check_metadata(value)


def active_seconds(state: MigrationState, start: datetime | None, end: datetime) -> float:
    """Seconds between start and end, less the time the migration was paused."""
    if start is None or end <= start:
        return 0.0
    paused = sum(p.overlap(start, end) for p in state.pauses)
    return max(0.0, (end - start).total_seconds() - paused)


def rate_seconds(state: MigrationState, start: datetime | None, end: datetime) -> float:
    """Seconds between start and end that count for a rate: less the time the migration was
    paused or throttled (an interval both paused and throttled is left out once)."""
    if not state.throttles:
        return active_seconds(state, start, end)
    if start is None or end <= start:
        return 0.0
    spans = sorted((max(p.started_at, start), min(p.ended_at or end, end))
                   for p in [*state.pauses, *state.throttles])
    out = 0.0
    lo, hi = start, start
    for a, b in spans:
        if b <= a:
            continue
        if a > hi:
            out += (hi - lo).total_seconds()
            lo, hi = a, b
        else:
            hi = max(hi, b)
    out += (hi - lo).total_seconds()
    return max(0.0, (end - start).total_seconds() - out)


class Rules:
    """Commands on one migration state at one instant, by one actor."""

    def __init__(
        self,
        state: MigrationState,
        now: datetime,
        actor: str,
        new_id: Callable[[], str] = new_alert_id,
    ) -> None:
        self.state = state
        self.now = now
        self.actor = actor
        self.new_id = new_id
        self.change = Change()
        if not state.partial:
            # every phase is here: count them (a migration stored before the counts were kept
            # gets them with its next header write)
            state.phase_counts = count_statuses(state.phases.values())

    # -- helpers -------------------------------------------------------------------------

    def _event(self, type_: str, **payload: Any) -> None:
        self.change.events.append(NewEvent(type_, self.now, self.actor, payload))

    def _touch(self, phase: PhaseState) -> None:
        self.change.phases.add(phase.id)

    def _set_status(self, phase: PhaseState, status: Status) -> None:
        """Move a phase, keeping the migration's phase counts (written with the header)."""
        counts = self.state.phase_counts
        if counts is not None and status is not phase.status:
            counts[phase.status.value] = counts.get(phase.status.value, 0) - 1
            counts[status.value] = counts.get(status.value, 0) + 1
            self.change.header = True
        phase.status = status
        self._touch(phase)

    def _set_sub_status(self, phase: PhaseState, sub: SubTaskState, status: Status) -> None:
        """Move a sub-task, keeping its phase's sub-task counts (written with the phase)."""
        counts = phase.sub_task_counts
        if counts is not None and status is not sub.status:
            counts[sub.status.value] = counts.get(sub.status.value, 0) - 1
            counts[status.value] = counts.get(status.value, 0) + 1
            self._touch(phase)
        sub.status = status
        self.change.sub_tasks.add((phase.id, sub.id))

    def _unfinished_phases(self) -> int:
        st = self.state
        if st.partial and st.phase_counts is not None:
            return sum(n for status, n in st.phase_counts.items() if not Status(status).finished)
        return sum(1 for p in st.phases.values() if not p.status.finished)

    def record(self, phase: PhaseState | None, type_: str, /, **payload: Any) -> None:
        """For a command's rule: the phase it changed (written back by the store) and its event."""
        if phase is not None:
            self._touch(phase)
        self._event(type_, **payload)

    def _alert(self, level: AlertLevel, message: str, phase: str | None, source: str) -> Alert:
        alert = Alert(
            id=self.new_id(), level=level, message=message[:MAX_TEXT], created_at=self.now,
            phase=phase, source=source, actor=self.actor,
        )
        self.change.new_alerts.append(alert)
        self._event("alert.created", **{k: v for k, v in alert.to_dict().items()
                                        if k not in ("acknowledged_at", "acknowledged_by")})
        return alert

    def _not_cancelled(self, doing: str) -> None:
        if self.state.control is Control.CANCELLED:
            raise InvalidTransition("migration", "cancelled", doing, "cancelled migrations are final")

    def _check_move(self, what: str, current: Status, verb: str, hint: str = "") -> None:
        if not allowed(current, verb):
            raise InvalidTransition(what, current.value, verb, hint)

    def _finish_check(self) -> None:
        st = self.state
        if st.control is Control.CANCELLED:
            return  # a worker finishing its step after a cancel does not make the migration complete
        if st.finished_at is None and self._unfinished_phases() == 0:
            st.finished_at = self.now
            self.change.header = True
            self._event("migration.completed")
            self._alert(AlertLevel.INFO, f"migration {st.name!r} completed", None, "rule:completed")

    # -- phases --------------------------------------------------------------------------

    def start_phase(self, phase_id: str, rerun: bool = False) -> None:
        """Start a pending phase. With ``rerun`` (a migration script run again to resume it), a
        phase that already completed or was skipped is left as it is, with an event saying so,
        and a failed one is retried."""
        st = self.state
        phase = st.phase(phase_id)
        if phase.status is Status.IN_PROGRESS:
            return  # idempotent: another worker (or a retried request) started it
        if rerun and phase.status.finished:
            self._event("phase.rerun_skipped", phase=phase_id, status=phase.status.value)
            return
        if rerun and phase.status is Status.FAILED:
            self.retry_phase(phase_id)
            return
        self._not_cancelled(f"start phase {phase_id!r} of")
        self._check_move(f"phase {phase_id!r}", phase.status, "start",
                         "use retry_phase() for a failed phase" if phase.status is Status.FAILED else "")
        blocking = [d for d in phase.dependencies if not st.phases[d].status.finished]
        if blocking:
            raise DependencyNotMet(phase_id, blocking)
        if phase.requires_approval and phase.approved_at is None:
            raise ApprovalRequired(phase_id)
        self._set_status(phase, Status.IN_PROGRESS)
        phase.started_at = self.now
        phase.attempts += 1
        if st.started_at is None:
            st.started_at = self.now
            self.change.header = True
        self._event("phase.started", phase=phase_id, attempt=phase.attempts)

    def update_phase_progress(
        self,
        phase_id: str,
        progress: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        done: int | None = None,
        total: int | None = None,
        add: int | None = None,
    ) -> None:
        phase = self.state.phase(phase_id)
        value = None if progress is None else check_progress(progress)
        done_v = None if done is None else check_count(done, "done")
        total_v = None if total is None else check_count(total, "total")
        add_v = None if add is None else check_count(add, "increment")
        meta = _metadata(metadata)
        if phase.status is Status.PENDING:
            raise InvalidTransition(f"phase {phase_id!r}", "pending", "report progress on",
                                    f"call start_phase({phase_id!r}) first")
        if phase.status is not Status.IN_PROGRESS:
            return  # a late update from a worker that has not seen the phase end: ignore
        before = (phase.progress, phase.done, phase.total, dict(phase.metadata))
        was_over = phase.total is not None and phase.done > phase.total
        delta = ProgressDelta(phase_id, None, value, done_v, total_v, add_v, meta)
        phase.progress, phase.done, phase.total = delta.advance(phase.progress, phase.done, phase.total)
        if meta:
            phase.metadata.update(meta)
        if (phase.progress, phase.done, phase.total, phase.metadata) == before:
            return  # stale or repeated: nothing changes
        self._touch(phase)
        self._event("phase.progress", phase=phase_id, progress=phase.progress, done=phase.done,
                    total=phase.total, **({"metadata": meta} if meta else {}))
        if phase.total is not None and phase.done > phase.total and not was_over:
            msg = (f"phase {phase_id!r} reported {phase.done} done of a total of {phase.total}; "
                   f"progress is capped at 100% - revise the total")
            phase.warnings.append(msg)
            self._alert(AlertLevel.WARNING, msg, phase_id, "rule:over-total")

    def complete_phase(self, phase_id: str) -> None:
        phase = self.state.phase(phase_id)
        if phase.status is Status.COMPLETED:
            return
        self._check_move(f"phase {phase_id!r}", phase.status, "complete",
                         f"call start_phase({phase_id!r}) first" if phase.status is Status.PENDING else "")
        unfinished = [s.id for s in phase.sub_tasks.values() if not s.status.finished]
        counts = phase.sub_task_counts
        # the counts decide when the sub-tasks were not read (they need not be, to know)
        n = len(unfinished) if counts is None else sum(v for k, v in counts.items() if not Status(k).finished)
        if n and len(unfinished) != n:
            raise NeedsSubTasks(phase_id)  # to name them
        if n:
            what = f"sub-task(s) {', '.join(unfinished)}" if len(unfinished) == n else f"{n} sub-task(s)"
            raise RuleViolation(f"cannot complete phase {phase_id!r}: {what} are not completed or skipped")
        self._set_status(phase, Status.COMPLETED)
        phase.progress = 100.0
        phase.completed_at = self.now
        self._event("phase.completed", phase=phase_id,
                    duration_seconds=self.phase_active_seconds(phase))
        self._finish_check()

    def fail_phase(self, phase_id: str, error: str) -> None:
        phase = self.state.phase(phase_id)
        error = _text(error, "error")
        if phase.status is Status.FAILED and phase.errors and phase.errors[-1] == error:
            return  # the same failure reported twice
        if phase.status is not Status.FAILED:
            self._check_move(f"phase {phase_id!r}", phase.status, "fail")
        self._set_status(phase, Status.FAILED)
        phase.completed_at = self.now
        phase.errors.append(error)
        self._event("phase.failed", phase=phase_id, error=error)
        self._alert(AlertLevel.ERROR, f"phase {phase.name!r} failed: {error}", phase_id, "rule:phase-failed")

    def skip_phase(self, phase_id: str, reason: str) -> None:
        phase = self.state.phase(phase_id)
        reason = _text(reason, "reason")
        if phase.status is Status.SKIPPED:
            return
        self._check_move(f"phase {phase_id!r}", phase.status, "skip",
                         "only pending or failed phases can be skipped")
        self._set_status(phase, Status.SKIPPED)
        phase.skip_reason = reason
        phase.completed_at = self.now
        self._event("phase.skipped", phase=phase_id, reason=reason)
        self._finish_check()

    def retry_phase(self, phase_id: str) -> None:
        st = self.state
        phase = st.phase(phase_id)
        if phase.status is Status.IN_PROGRESS:
            return
        self._not_cancelled(f"retry phase {phase_id!r} of")
        self._check_move(f"phase {phase_id!r}", phase.status, "retry",
                         "only a failed phase can be retried")
        # a phase may fail before it ever started (pending -> failed): retrying it is starting it
        blocking = [d for d in phase.dependencies if not st.phases[d].status.finished]
        if blocking:
            raise DependencyNotMet(phase_id, blocking)
        if phase.requires_approval and phase.approved_at is None:
            raise ApprovalRequired(phase_id)
        phase.prior_active_seconds += self.phase_active_seconds(phase)
        self._set_status(phase, Status.IN_PROGRESS)
        phase.started_at = self.now
        phase.completed_at = None
        phase.attempts += 1
        for sub in phase.sub_tasks.values():
            if sub.status is Status.FAILED:
                self._set_sub_status(phase, sub, Status.PENDING)
                sub.completed_at = None
        self._event("phase.retried", phase=phase_id, attempt=phase.attempts)

    def approve_phase(self, phase_id: str, by: str) -> None:
        phase = self.state.phase(phase_id)
        by = _text(by, "approver ('by')")
        if phase.approved_at is not None:
            return
        if phase.status.finished:
            raise InvalidTransition(f"phase {phase_id!r}", phase.status.value, "approve")
        if not phase.requires_approval:
            raise RuleViolation(f"phase {phase_id!r} does not require approval; there is nothing to approve")
        phase.approved_by = by
        phase.approved_at = self.now
        self._touch(phase)
        self._event("phase.approved", phase=phase_id, by=by)

    def phase_active_seconds(self, phase: PhaseState) -> float:
        end = phase.completed_at or self.now
        return active_seconds(self.state, phase.started_at, end)

    # -- sub-tasks -----------------------------------------------------------------------

    def _sub(self, phase_id: str, sub_id: str) -> tuple[PhaseState, Any]:
        phase = self.state.phase(phase_id)
        return phase, self.state.sub_task(phase_id, sub_id)

    def start_sub_task(self, phase_id: str, sub_id: str, rerun: bool = False) -> None:
        phase, sub = self._sub(phase_id, sub_id)
        if sub.status is Status.IN_PROGRESS:
            return
        if rerun and sub.status.finished:
            self._event("subtask.rerun_skipped", phase=phase_id, sub_task=sub_id, status=sub.status.value)
            return
        if phase.status is not Status.IN_PROGRESS:
            raise InvalidTransition(f"sub-task {sub_id!r}", f"in a {phase.status.value} phase", "start",
                                    f"start phase {phase_id!r} first")
        if sub.status is Status.FAILED:
            sub.error = None
        elif sub.status is not Status.PENDING:
            raise InvalidTransition(f"sub-task {sub_id!r}", sub.status.value, "start")
        self._set_sub_status(phase, sub, Status.IN_PROGRESS)
        sub.started_at = self.now
        sub.completed_at = None
        self._event("subtask.started", phase=phase_id, sub_task=sub_id)

    def update_sub_task_progress(self, phase_id: str, sub_id: str, progress: float) -> None:
        _, sub = self._sub(phase_id, sub_id)
        value = check_progress(progress)
        if sub.status is Status.PENDING:
            raise InvalidTransition(f"sub-task {sub_id!r}", "pending", "report progress on",
                                    f"call start_sub_task({phase_id!r}, {sub_id!r}) first")
        if sub.status is not Status.IN_PROGRESS or value <= sub.progress:
            return
        sub.progress = value
        self.change.sub_tasks.add((phase_id, sub_id))
        self._event("subtask.progress", phase=phase_id, sub_task=sub_id, progress=value)

    def complete_sub_task(self, phase_id: str, sub_id: str) -> None:
        phase, sub = self._sub(phase_id, sub_id)
        if sub.status is Status.COMPLETED:
            return
        self._check_move(f"sub-task {sub_id!r}", sub.status, "complete",
                         f"call start_sub_task({phase_id!r}, {sub_id!r}) first"
                         if sub.status is Status.PENDING else "")
        self._set_sub_status(phase, sub, Status.COMPLETED)
        sub.progress = 100.0
        sub.completed_at = self.now
        self._event("subtask.completed", phase=phase_id, sub_task=sub_id)

    def fail_sub_task(self, phase_id: str, sub_id: str, error: str) -> None:
        phase, sub = self._sub(phase_id, sub_id)
        error = _text(error, "error")
        if sub.status is Status.FAILED and sub.error == error:
            return
        if sub.status is not Status.FAILED:
            self._check_move(f"sub-task {sub_id!r}", sub.status, "fail")
        self._set_sub_status(phase, sub, Status.FAILED)
        sub.error = error
        sub.completed_at = self.now
        phase.errors.append(f"{sub_id}: {error}")
        self._touch(phase)
        self._event("subtask.failed", phase=phase_id, sub_task=sub_id, error=error)
        self._alert(AlertLevel.WARNING, f"sub-task {sub.name!r} of phase {phase.name!r} failed: {error}",
                    phase_id, "rule:subtask-failed")

    def skip_sub_task(self, phase_id: str, sub_id: str, reason: str) -> None:
        phase, sub = self._sub(phase_id, sub_id)
        reason = _text(reason, "reason")
        if sub.status is Status.SKIPPED:
            return
        self._check_move(f"sub-task {sub_id!r}", sub.status, "skip")
        self._set_sub_status(phase, sub, Status.SKIPPED)
        sub.error = None
        sub.completed_at = self.now
        self._event("subtask.skipped", phase=phase_id, sub_task=sub_id, reason=reason)

    # -- alerts --------------------------------------------------------------------------

    def create_alert(self, level: str | AlertLevel, message: str, phase: str | None = None,
                     source: str = "user") -> Alert:
        try:
            lvl = AlertLevel(level)
        except ValueError:
            raise InvalidInput(
                f"alert level must be one of {', '.join(v.value for v in AlertLevel)}; got {level!r}"
            ) from None
        message = _text(message, "alert message")
        if phase is not None:
            self.state.phase(phase)
        return self._alert(lvl, message, phase, source)

    def acknowledge_alert(self, alert: Alert, by: str) -> None:
        by = _text(by, "acknowledged by")
        if alert.acknowledged_at is not None:
            return
        alert.acknowledged_at = self.now
        alert.acknowledged_by = by
        self.change.updated_alerts.append(alert)
        self._event("alert.acknowledged", alert=alert.id, by=by)

    # -- metrics -------------------------------------------------------------------------

    def update_metrics(self, values: Mapping[str, Any], increments: Mapping[str, Any]) -> None:
        sets, deltas = normalise_metrics(values, increments)
        if not sets and not deltas:
            return
        m = self.state.metrics
        sets = stamp(m.gauges, sets, self.now)
        for name, val in sets.items():
            if name in COUNTERS:
                setattr(m, name, int(val))
            else:
                _set_path(m.gauges, name, val)
        for name, delta in deltas.items():
            setattr(m, name, getattr(m, name) + delta)
        self.change.metrics = True
        payload: dict[str, Any] = {}
        if sets:
            payload["set"] = sets
        if deltas:
            payload["increment"] = deltas
        self._event("metrics.updated", **payload)
        self.check_error_rate()

    def check_error_rate(self) -> None:
        """Warn once when the error rate goes above the threshold; re-arm only once it is back at
        half the threshold, so a rate hovering around the line (or several workers seeing the
        same crossing) raises one alert, not a stream of them."""
        m = self.state.metrics
        rate = derived_error_rate(m.successful_operations, m.failed_operations, m.gauges)
        if rate is None:
            return
        threshold = error_rate_threshold(self.state)
        alerted = bool(self.state.metadata.get(ERROR_RATE_ALERTED))
        if rate > threshold and not alerted:
            self.state.metadata[ERROR_RATE_ALERTED] = True
            self.change.header = True
            self._alert(AlertLevel.WARNING, f"error rate {rate:.1f}% is above the {threshold:g}% threshold",
                        None, "rule:error-rate")
        elif alerted and rate <= threshold / 2:
            del self.state.metadata[ERROR_RATE_ALERTED]
            self.change.header = True

    # -- control -------------------------------------------------------------------------

    def pause(self, reason: str | None = None) -> None:
        st = self.state
        if st.control is Control.PAUSED:
            return
        self._not_cancelled("pause")
        if st.finished_at is not None:
            raise InvalidTransition("migration", "completed", "pause")
        st.control = Control.PAUSED
        st.pauses.append(Pause(self.now))
        self.change.header = True
        self._event("migration.paused", **({"reason": reason} if reason else {}))
        self._alert(AlertLevel.INFO, f"migration paused by {self.actor}" + (f": {reason}" if reason else ""),
                    None, "rule:control")

    def resume(self) -> None:
        st = self.state
        self._not_cancelled("resume")
        if st.finished_at is not None:
            raise InvalidTransition("migration", "completed", "resume", "there is nothing left to run")
        if st.control is Control.RUNNING:
            return
        st.control = Control.RUNNING
        if st.pauses and st.pauses[-1].ended_at is None:
            st.pauses[-1].ended_at = self.now
        self.change.header = True
        self._event("migration.resumed")
        self._alert(AlertLevel.INFO, f"migration resumed by {self.actor}", None, "rule:control")

    def throttle(self, reason: str | None = None) -> None:
        """The script is being throttled (rate-limited by something outside it): until
        :meth:`unthrottle` the time is left out of the estimate's rates. Said again while
        throttled, nothing changes."""
        st = self.state
        self._not_cancelled("throttle")
        if st.finished_at is not None:
            raise InvalidTransition("migration", "completed", "throttle")
        if st.throttles and st.throttles[-1].ended_at is None:
            return
        st.throttles.append(Pause(self.now))
        self.change.header = True
        self._event("migration.throttled", **({"reason": reason} if reason else {}))

    def unthrottle(self) -> None:
        st = self.state
        if not st.throttles or st.throttles[-1].ended_at is not None:
            return
        st.throttles[-1].ended_at = self.now
        self.change.header = True
        self._event("migration.unthrottled")

    def cancel(self, reason: str | None = None) -> None:
        st = self.state
        if st.control is Control.CANCELLED:
            return
        if st.finished_at is not None:
            raise InvalidTransition("migration", "completed", "cancel")
        if st.pauses and st.pauses[-1].ended_at is None:
            st.pauses[-1].ended_at = self.now
        st.control = Control.CANCELLED
        st.cancelled_at = self.now
        self.change.header = True
        self._event("migration.cancelled", **({"reason": reason} if reason else {}))
        self._alert(AlertLevel.INFO, f"migration cancelled by {self.actor}" + (f": {reason}" if reason else ""),
                    None, "rule:control")


# -- metrics helpers ---------------------------------------------------------------------

_SEED_METRIC_NAMES = {
    "totalDataMigrated": "total_data_migrated",
    "migrationSpeed": "migration_speed",
    "errorRate": "error_rate",
    "successfulOperations": "successful_operations",
    "failedOperations": "failed_operations",
    "averageOperationTime": "average_operation_time",
    "resourceUtilization": "resource_utilization",
    "costMetrics": "cost_metrics",
    "estimatedCost": "estimated_cost",
    "actualCost": "actual_cost",
    "costPerGB": "cost_per_gb",
    "costPerGb": "cost_per_gb",
}
_PERCENT = {"error_rate", "resource_utilization.cpu", "resource_utilization.memory", "worker_resources.cpu",
            "worker_resources.memory"}


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"metric {name} must be a finite number, got {value!r}")
    if value < 0:
        raise InvalidInput(f"metric {name} must not be negative, got {value!r}")
    if name in _PERCENT and value > 100:
        raise InvalidInput(f"metric {name} is a percentage and must be at most 100, got {value!r}")
    return float(value)


def _worker_shares(raw: Any, sets: dict[str, float | int]) -> None:
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"metric {WORKERS_KEY} must be a dict of '<worker>.<field>' numbers")
    for sub_key, sub_val in raw.items():
        worker, _, part = str(sub_key).rpartition(".")
        if not valid_worker(worker) or part not in WORKER_FIELDS:
            raise InvalidInput(f"{WORKERS_KEY} keys are '<worker>.<field>' with a worker name of letters, digits, "
                               f"_:@- and a field in {', '.join(WORKER_FIELDS)}; got {sub_key!r}")
        sets[f"{WORKERS_KEY}.{worker}.{part}"] = _number(f"{WORKERS_KEY}.{part}", sub_val)


def normalise_metrics(
    values: Mapping[str, Any], increments: Mapping[str, Any]
) -> tuple[dict[str, float | int], dict[str, int]]:
    """Validate a partial MigrationMetrics (snake_case or the seed's camelCase, nested parts
    allowed) into flat ``{"resource_utilization.cpu": 50.0, ...}`` sets and counter deltas."""
    sets: dict[str, float | int] = {}
    for raw_key, raw in values.items():
        key = _SEED_METRIC_NAMES.get(raw_key, raw_key)
        if key in ("resource_utilization", "cost_metrics"):
            if not isinstance(raw, Mapping):
                raise InvalidInput(f"metric {key} must be a dict of numbers")
            allowed_parts = RESOURCE_FIELDS if key == "resource_utilization" else COST_FIELDS
            for sub_key, sub_val in raw.items():
                part = _SEED_METRIC_NAMES.get(sub_key, sub_key)
                if part not in allowed_parts:
                    raise InvalidInput(f"unknown metric {key}.{sub_key}; allowed: {', '.join(allowed_parts)}")
                sets[f"{key}.{part}"] = _number(f"{key}.{part}", sub_val)
        elif key == WORKERS_KEY:
            _worker_shares(raw, sets)
        elif key in COUNTERS:
            sets[key] = check_count(raw, f"metric {key}")
        elif key in GAUGES:
            sets[key] = _number(key, raw)
        else:
            raise InvalidInput(
                f"unknown metric {raw_key!r}; allowed: "
                + ", ".join([*COUNTERS, *GAUGES, "resource_utilization", "cost_metrics", WORKERS_KEY])
            )
    deltas: dict[str, int] = {}
    for raw_key, raw in increments.items():
        key = _SEED_METRIC_NAMES.get(raw_key, raw_key)
        if key not in COUNTERS:
            raise InvalidInput(f"only counters can be incremented ({', '.join(COUNTERS)}); got {raw_key!r}")
        delta = check_count(raw, f"increment of {key}")
        if delta:
            deltas[key] = deltas.get(key, 0) + delta
    return sets, deltas


def _set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    head, _, rest = dotted.partition(".")
    if rest:
        target.setdefault(head, {})
        _set_path(target[head], rest, value)
    else:
        target[head] = value


def derived_error_rate(successful: int, failed: int, gauges: Mapping[str, Any]) -> float | None:
    """Failed / (successful + failed) as a percentage when counts are known, else the reported gauge."""
    total = successful + failed
    if total:
        return failed * 100.0 / total
    reported = gauges.get("error_rate")
    return float(reported) if reported is not None else None


def merge_values(
    status: Status,
    cur_progress: float,
    cur_done: int,
    total: int | None,
    *,
    progress: float | None,
    done: int | None,
    add: int | None,
) -> tuple[str, float, int]:
    """The hot-path merge, as every store must compute it: ("applied"|"stale"|"fallback",
    new progress, new done); :meth:`ProgressDelta.apply` on a phase's report."""
    return ProgressDelta("", None, progress, done, None, add).apply(status, cur_progress, cur_done, total)


def error_rate_threshold(state: MigrationState) -> float:
    return float(state.metadata.get("error_rate_threshold", DEFAULT_ERROR_RATE_THRESHOLD))
