"""Rich renderings of a migration's dashboard, for `migratrack demo`, `status` and `watch`."""

from __future__ import annotations

from datetime import datetime

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from migratrack.cli.common import safe
from migratrack.core.states import AlertLevel, Condition, MigrationStatus, Status
from migratrack.core.views import Dashboard, Overview

STATUS_STYLE = {
    Status.PENDING: "dim",
    Status.IN_PROGRESS: "bold cyan",
    Status.COMPLETED: "green",
    Status.FAILED: "bold red",
    Status.SKIPPED: "yellow",
}
MIGRATION_STYLE = {
    MigrationStatus.PENDING: "dim",
    MigrationStatus.RUNNING: "bold cyan",
    MigrationStatus.PAUSED: "bold yellow",
    MigrationStatus.COMPLETED: "bold green",
    MigrationStatus.FAILED: "bold red",
    MigrationStatus.CANCELLED: "bold magenta",
}
CONDITION_STYLE = {
    Condition.READY: "dim",
    Condition.BLOCKED: "dim",
    Condition.WAITING_FOR_APPROVAL: "bold yellow",
    Condition.RUNNING: "bold cyan",
    Condition.STALLED: "bold red",
    Condition.PAUSED: "bold yellow",
    Condition.COMPLETED: "green",
    Condition.FAILED: "bold red",
    Condition.SKIPPED: "yellow",
    Condition.CANCELLED: "bold magenta",
}
#: what the migration as a whole is doing, when its status alone would mislead
WAITING, STALLED = "waiting for approval", "stalled"
HEADLINE_STYLE = {WAITING: "bold yellow", STALLED: "bold red"}
LEVEL_STYLE = {
    AlertLevel.INFO: "blue",
    AlertLevel.WARNING: "yellow",
    AlertLevel.ERROR: "red",
    AlertLevel.CRITICAL: "bold white on red",
}


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} TiB"


def _when(t: datetime | None, now: datetime) -> str:
    if t is None:
        return "unknown"
    delta = (t - now).total_seconds()
    return f"{t.astimezone().strftime('%H:%M:%S')} (in {human_duration(max(0.0, delta))})"


def headline(o: Overview) -> str:
    """The migration's state as an operator needs it: ``running`` refined into ``stalled``,
    or ``waiting for approval`` (nothing runs, a phase waits for its go). Phases show theirs
    (blocked, ready, paused, cancelled...) in the table."""
    if o.status not in (MigrationStatus.RUNNING, MigrationStatus.PENDING):
        return str(o.status.value)
    conditions = [p.condition for p in o.current_phases]
    if Condition.STALLED in conditions:
        return STALLED
    if Condition.RUNNING not in conditions and o.waiting_for_approval:
        return WAITING
    return str(o.status.value)


def _eta(o: Overview, now: datetime) -> str:
    eta = o.estimate
    state = headline(o)
    if state == WAITING:
        then = f"; then about {human_duration(eta.remaining_seconds)}" if eta.remaining_seconds else ""
        return "waits for approval of " + ", ".join(escape(safe(p)) for p in o.waiting_for_approval) + then
    if o.status is MigrationStatus.PAUSED:
        return "waits for resume (paused time does not count)"
    if o.status is MigrationStatus.CANCELLED:
        return "none: cancelled"
    if state == STALLED:
        stalled = [escape(safe(p.id)) for p in o.current_phases if p.condition is Condition.STALLED]
        return "unknown while " + ", ".join(stalled) + " makes no progress"
    span = ""
    if eta.earliest and eta.latest and eta.completion and (eta.latest - eta.earliest).total_seconds() >= 1:
        span = f"  [dim]between {eta.earliest.astimezone():%H:%M:%S} and {eta.latest.astimezone():%H:%M:%S}[/]"
    return _when(eta.completion, now) + span


def render_dashboard(d: Dashboard, now: datetime) -> RenderableType:
    o = d.overview
    head = Table.grid(padding=(0, 2))
    head.add_column(justify="right", style="bold")
    head.add_column()
    head.add_row("migration", Text(safe(f"{o.name} ({o.migration_id})")))
    state = headline(o)
    head.add_row("status", Text(state, style=HEADLINE_STYLE.get(state) or MIGRATION_STYLE[o.status]))
    bar = Table.grid(padding=(0, 1))
    bar.add_row(ProgressBar(total=100, completed=o.overall_progress, width=40), f"{o.overall_progress:5.1f}%")
    head.add_row("overall", bar)
    head.add_row("elapsed", f"{human_duration(o.elapsed_seconds)} (paused {human_duration(o.paused_seconds)})")
    if o.status is MigrationStatus.COMPLETED:
        head.add_row("finished", o.finished_at.astimezone().strftime("%H:%M:%S") if o.finished_at else "-")
    else:
        head.add_row("ETA", _eta(o, now))
        if o.waiting_for_approval and state == WAITING:
            head.add_row("next", Text("; ".join(f"migratrack approve {safe(o.migration_id)} {safe(p)}"
                                                 for p in o.waiting_for_approval)))
        if o.estimate.explanation():
            head.add_row("", Text(safe(o.estimate.explanation() or ""), style="dim"))

    phases = Table(box=box.SIMPLE_HEAD, expand=True)
    phases.add_column("phase")
    phases.add_column("status")
    phases.add_column("progress", ratio=2)
    phases.add_column("", justify="right")
    phases.add_column("detail", ratio=3, overflow="ellipsis", no_wrap=True)
    for p in d.phases:
        detail = ""
        if p.blocked_by and p.status is Status.PENDING:
            detail = "waits for " + ", ".join(safe(b) for b in p.blocked_by)
        elif p.condition is Condition.WAITING_FOR_APPROVAL:
            detail = "needs approval"
        elif p.total:
            detail = f"{p.done:,}/{p.total:,}"
        if p.sub_tasks:
            done = sum(1 for s in p.sub_tasks if s.status.finished)
            running = [safe(s.name) for s in p.sub_tasks if s.status is Status.IN_PROGRESS]
            detail = f"{done}/{len(p.sub_tasks)} sub-tasks" + (f" ({', '.join(running)})" if running else "")
        if p.status is Status.FAILED and p.errors:
            detail = safe(p.errors[-1])
        if p.attempts > 1:
            detail += f" [attempt {p.attempts}]"
        phases.add_row(
            Text(safe(p.name)), Text(str(p.condition), style=CONDITION_STYLE[p.condition]),
            ProgressBar(total=100, completed=p.progress), f"{p.progress:5.1f}%", Text(detail),
        )

    m = d.metrics
    metrics = Table.grid(padding=(0, 2))
    metrics.add_column(style="bold", justify="right")
    metrics.add_column()
    metrics.add_row("data", human_bytes(m.total_data_migrated) +
                    (f" at {human_bytes(m.migration_speed)}/s" if m.migration_speed else ""))
    metrics.add_row("operations", f"{m.successful_operations:,} ok, {m.failed_operations:,} failed"
                    + (f" ({m.error_rate:.2f}% errors)" if m.error_rate is not None else ""))
    if m.resource_utilization:
        parts = [f"{k} {v:.0f}%" if k in ("cpu", "memory") else f"{k} {v:.0f}" if k == "workers"
                 else f"{k} {human_bytes(v)}/s" for k, v in m.resource_utilization.items()]
        metrics.add_row("resources", Text(safe(", ".join(parts))))
    if m.cost_metrics:
        metrics.add_row("cost", Text(safe(", ".join(f"{k} {v:,.2f}" if k == "worker_hours" else f"{k} ${v:,.2f}"
                                                    for k, v in m.cost_metrics.items()))))

    alerts = Table.grid(padding=(0, 1))
    for a in d.recent_alerts[:6]:
        alerts.add_row(a.created_at.astimezone().strftime("%H:%M:%S"),
                       Text(a.level.value, style=LEVEL_STYLE[a.level]), Text(safe(a.message), overflow="ellipsis"))
    return Group(
        Panel(head, title="migratrack", border_style="cyan"),
        phases,
        Panel(metrics, title="metrics", border_style="dim"),
        Panel(alerts, title="recent alerts", border_style="dim"),
    )
