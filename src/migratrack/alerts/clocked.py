"""The rules that need a clock, run by the dispatcher each round for each migration it
watches: stalls (alerts/stall.py), the error rate over a sliding window and the deadline
(alerts/rules.py), and the escalation of unacknowledged alerts. Each keeps what it must
remember in the migration's watch document ``w`` and raises alerts through the service, so
they go through the same outbox as every other alert."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from migratrack.alerts import records
from migratrack.alerts.model import NoticeKind, delivery_id
from migratrack.alerts.router import fingerprint
from migratrack.alerts.rules import RateLevel, deadline_of, next_rate_level, rate_config, window_rate
from migratrack.alerts.stall import describe, stalls
from migratrack.core.eta import estimate
from migratrack.core.models import MigrationState
from migratrack.core.rules import Rules
from migratrack.core.states import AlertLevel, Status
from migratrack.core.views import STALL_MARK

if TYPE_CHECKING:
    from migratrack.alerts.dispatcher import Dispatcher

#: how often the deadline rule recomputes a migration's estimate
DEADLINE_EVERY = timedelta(seconds=30)
#: who the audit trail names for what the dispatcher writes
ACTOR = "migratrack-dispatcher"
#: kind of the documents that say an alert was escalated (once per alert and escalation)
ESCALATED = "escalated"


def stall_rule(d: Dispatcher, mid: str, w: dict[str, Any], state: MigrationState, now: datetime) -> None:
    progress_at = {k: datetime.fromisoformat(v) for k, v in w["progress_at"].items()}
    found = stalls(state, now=now, progress_at=progress_at, heartbeat_at=records.last_beat(d.storage, mid),
                   default=d.config.stall_after)
    out: dict[str, Any] = w["stalls"]
    for phase, (kind, idle) in found.items():
        if phase in out:
            continue
        since = (now - idle).isoformat()
        alert = d.raise_alert(mid, AlertLevel.ERROR, describe(kind, phase, idle), phase, "rule:stall",
                              f"stall:{phase}:{since}")
        mark_stalled(d, mid, phase, kind.value)
        out[phase] = {"alert": alert.id, "kind": kind.value, "since": since}
    for phase in [p for p in out if p not in found]:
        mark_stalled(d, mid, phase, None)
        d.resolve(mid, out.pop(phase)["alert"], now)


def mark_stalled(d: Dispatcher, mid: str, phase_id: str, kind: str | None) -> None:
    """The phase reads as stalled on every view (core/views.py) while the stall lasts, and
    the event log says when it began and ended."""
    def mark(r: Rules) -> None:
        phase = r.state.phases.get(phase_id)
        if phase is None or (kind is not None and phase.status is not Status.IN_PROGRESS):
            return
        if kind is None:
            if phase.metadata.pop(STALL_MARK, None) is None:
                return
            r.record(phase, "phase.unstalled", phase=phase_id)
        else:
            phase.metadata[STALL_MARK] = kind
            r.record(phase, "phase.stalled", phase=phase_id, kind=kind)

    d.service.run(mid, ACTOR, mark)


def error_rate_rule(d: Dispatcher, mid: str, w: dict[str, Any], state: MigrationState, now: datetime) -> None:
    c = rate_config(state, d.config.error_rate)
    cutoff = now - c.window
    w["samples"] = [s for s in w["samples"] if datetime.fromisoformat(s[0]) >= cutoff]
    rate, ops = window_rate(w["samples"], now, c.window)
    before = RateLevel(w.get("rate", "ok"))
    after = next_rate_level(before, rate, ops, c)
    if after is before:
        return
    w["rate"] = after.value
    if after is RateLevel.OK:
        if w.get("rate_alert"):
            d.resolve(mid, w.pop("rate_alert"), now)
        return
    if after is RateLevel.CRITICAL or before is RateLevel.OK:
        level = AlertLevel.CRITICAL if after is RateLevel.CRITICAL else AlertLevel.WARNING
        limit = c.critical if after is RateLevel.CRITICAL else c.warning
        alert = d.raise_alert(
            mid, level, f"error rate {rate:.1f}% over the last {c.window.total_seconds() / 60:g} min "
            f"({ops} operations) is above the {limit:g}% threshold", None, "rule:error-rate-window",
            f"rate:{after.value}:{now.isoformat()}")
        w["rate_alert"] = alert.id


def deadline_rule(d: Dispatcher, mid: str, w: dict[str, Any], state: MigrationState, now: datetime) -> None:
    deadline = deadline_of(state)
    if deadline is None or state.finished_at is not None or state.cancelled_at is not None:
        return
    late = False
    if now > deadline:
        late = True
    elif any(p.started_at for p in state.phases.values()):
        # the estimate reads every sub-task: at most once per DEADLINE_EVERY per migration
        checked = w.get("deadline_checked")
        if checked and now - datetime.fromisoformat(checked) < DEADLINE_EVERY:
            return
        w["deadline_checked"] = now.isoformat()
        full = d.storage.load(mid)
        e = estimate(full, now)
        late = e.completion is not None and e.completion > deadline
    if late and not w.get("deadline_alert"):
        alert = d.raise_alert(mid, AlertLevel.ERROR, f"the estimated completion passes the deadline "
                              f"{deadline.isoformat()}", None, "rule:deadline", f"deadline:{deadline.isoformat()}")
        w["deadline_alert"] = alert.id
    elif not late and w.get("deadline_alert"):
        d.resolve(mid, w.pop("deadline_alert"), now)


def escalate(d: Dispatcher, mid: str, now: datetime) -> None:
    if not d.config.escalation:
        return
    for alert in d.storage.alerts(mid, limit=200, unacknowledged_only=True):
        for i, e in enumerate(d.config.escalation):
            if alert.level.rank < e.min_level.rank or now - alert.created_at < e.after:
                continue
            key = f"{alert.id}|{i}"
            if d.storage.kv_put(ESCALATED, key, {"at": now.isoformat()}, expected=0) is None:
                continue  # escalated already
            did = delivery_id(e.channel, NoticeKind.ESCALATION, [alert.id], str(i))
            d.enqueue(d.notice(NoticeKind.ESCALATION, e.channel, did, mid, [alert.to_dict()], 1,
                               fingerprint(mid, alert)), [alert.id], now)
