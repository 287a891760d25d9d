"""Numbers as an operator reads them: durations, bytes, rates, the ETA and why it is unknown."""

from __future__ import annotations

from datetime import datetime

from migratrack.core.states import Condition, MigrationStatus
from migratrack.core.views import Overview, PhaseView

CONDITION_LABELS = {
    Condition.READY: "ready",
    Condition.BLOCKED: "blocked",
    Condition.WAITING_FOR_APPROVAL: "waiting for approval",
    Condition.RUNNING: "running",
    Condition.STALLED: "stalled",
    Condition.PAUSED: "paused",
    Condition.COMPLETED: "completed",
    Condition.FAILED: "failed",
    Condition.SKIPPED: "skipped",
    Condition.CANCELLED: "cancelled",
}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h:02d}h"


def data_size(n: float | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns


def speed(bps: float | None) -> str:
    return "—" if bps is None else data_size(bps) + "/s"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def when(t: datetime | None) -> str:
    return "—" if t is None else t.strftime("%Y-%m-%d %H:%M:%S UTC")


def condition_label(p: PhaseView) -> str:
    if p.condition is Condition.BLOCKED and p.blocked_by:
        return "blocked by " + ", ".join(p.blocked_by)
    return CONDITION_LABELS.get(p.condition, p.condition.value)


def eta(o: Overview, phases: list[PhaseView] | None = None) -> tuple[str, str | None]:
    """The ETA as a time and its interval, or "unknown" and the reason it is unknown."""
    if o.status is MigrationStatus.COMPLETED:
        return "finished " + when(o.finished_at), None
    if o.status is MigrationStatus.CANCELLED:
        return "unknown", "the migration was cancelled"
    e = o.estimate
    reason = getattr(e, "reason", None) or getattr(e, "explanation", None)
    if e.completion is not None:
        text = when(e.completion)
        if e.earliest and e.latest:
            text += f" (between {e.earliest:%H:%M} and {e.latest:%H:%M})"
        waits = ""
        if o.waiting_for_approval:
            waits = "once " + ", ".join(o.waiting_for_approval) + " is approved"
        return text, waits or (str(reason) if reason else None)
    if o.control.value == "paused":
        return "unknown", "paused: the clock is stopped until someone resumes"
    if o.waiting_for_approval:
        return "unknown", "waiting for approval of " + ", ".join(o.waiting_for_approval)
    if o.started_at is None:
        return "unknown", "not started yet: no rate to measure"
    if phases and any(p.condition is Condition.STALLED for p in phases):
        return "unknown", "stalled: no progress to measure a rate from"
    return "unknown", str(reason) if reason else "not enough progress yet to measure a rate"
