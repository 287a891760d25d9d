"""The report a team sends after a migration: one read of the migration, three shapes.

``collect`` reads the dashboard, every alert and the whole event log through any backend (a
store or a server); ``as_json``, ``as_markdown`` and ``as_html`` render it. The HTML is a single
file: styles inline, the timeline and the charts as inline SVG, no script, no external asset.

The audit section lists every event but the progress and metric ticks (a long migration has
millions of them); their number is given, and ``migratrack events`` prints them all.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from jinja2 import Environment, PackageLoader

from migratrack.core.models import Alert, Event
from migratrack.core.views import Dashboard, PhaseView
from migratrack.render import text
from migratrack.render.series import Series, SeriesBuilder
from migratrack.render.svg import human_rate, line_chart, timeline

#: events too frequent for the audit section
TICKS = frozenset({"phase.progress", "subtask.progress", "metrics.updated"})
_PAGE = 1000


class Reader(Protocol):
    def dashboard(self, mid: str, *, alerts: int = 20) -> Dashboard: ...
    def events(self, mid: str, after: int = 0, limit: int = 1000) -> list[Event]: ...
    def alerts(self, mid: str, *, limit: int = 50, unacknowledged_only: bool = False) -> list[Alert]: ...


@dataclass(frozen=True)
class ReportData:
    d: Dashboard
    alerts: list[Alert]
    audit: list[Event]
    ticks: int
    series: Series
    generated: datetime


def collect(reader: Reader, mid: str, now: datetime) -> ReportData:
    d = reader.dashboard(mid, alerts=0)
    builder = SeriesBuilder.for_dashboard(d)
    audit: list[Event] = []
    ticks = 0
    after = 0
    while True:
        batch = reader.events(mid, after, _PAGE)
        builder.feed(batch)
        for e in batch:
            if e.type in TICKS:
                ticks += 1
            else:
                audit.append(e)
        if len(batch) < _PAGE:
            break
        after = batch[-1].seq
    end = d.overview.finished_at or d.overview.estimate.completion or now
    series = builder.series(None if d.overview.finished_at else min(end, now))
    return ReportData(d, reader.alerts(mid, limit=1000), audit, ticks, series, now)


def _ratio(p: PhaseView) -> float | None:
    if not p.estimated_seconds or p.actual_seconds is None:
        return None
    return p.actual_seconds / p.estimated_seconds


def _phase(p: PhaseView) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "status": p.status.value, "condition": p.condition.value,
            "estimated_seconds": p.estimated_seconds, "actual_seconds": p.actual_seconds, "ratio": _ratio(p),
            "attempts": p.attempts, "started_at": p.started_at, "completed_at": p.completed_at,
            "errors": list(p.errors), "warnings": list(p.warnings),
            "sub_task_errors": [{"sub_task": s.id, "error": s.error} for s in p.sub_tasks if s.error]}


def as_json(r: ReportData) -> dict[str, Any]:
    o, m = r.d.overview, r.d.metrics
    eta, reason = text.eta(o, r.d.phases)
    return {
        "report": "migratrack", "generated_at": r.generated,
        "summary": {"migration_id": o.migration_id, "name": o.name, "status": o.status.value,
                    "overall_progress": o.overall_progress, "created_at": o.created_at, "started_at": o.started_at,
                    "finished_at": o.finished_at, "elapsed_seconds": o.elapsed_seconds,
                    "active_seconds": o.active_seconds, "paused_seconds": o.paused_seconds,
                    "phase_counts": o.phase_counts, "eta": eta, "eta_reason": reason,
                    "critical_path": o.estimate.critical_path},
        "timeline": [t.model_dump() for t in r.d.timeline],
        "phases": [_phase(p) for p in r.d.phases],
        "alerts": [a.to_dict() for a in r.alerts],
        "data": {"total_data_migrated": m.total_data_migrated, "migration_speed": m.migration_speed,
                 "successful_operations": m.successful_operations, "failed_operations": m.failed_operations,
                 "error_rate": m.error_rate, "resource_utilization": m.resource_utilization},
        "throughput": {"unit": r.series.throughput_unit,
                       "points": [{"ts": p.ts, "value": p.value} for p in r.series.throughput]},
        "progress": [{"ts": p.ts, "value": p.value} for p in r.series.progress],
        "cost": m.cost_metrics,
        "audit": [e.to_dict() for e in r.audit],
        "progress_events_omitted": r.ticks,
    }


def md(value: object) -> str:
    """Text safe in a Markdown table cell: no pipes, no line breaks, no raw HTML."""
    s = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "\\`")
    # control and text-direction characters could rewrite a terminal or reorder what is read
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in s)


def _vs(p: PhaseView) -> str:
    ratio = _ratio(p)
    if ratio is None:
        return "—"
    return f"{(ratio - 1) * 100:+.0f}%"


def as_markdown(r: ReportData) -> str:
    o, m = r.d.overview, r.d.metrics
    eta, reason = text.eta(o, r.d.phases)
    out = [f"# Migration report: {md(o.name)} (`{md(o.migration_id)}`)", "",
           f"Generated {text.when(r.generated)}.", "", "## Summary", "",
           "| | |", "|---|---|",
           f"| Status | {md(o.status.value)} |",
           f"| Overall progress | {o.overall_progress:.1f}% |",
           f"| Started | {text.when(o.started_at)} |",
           f"| Finished | {text.when(o.finished_at)} |",
           f"| Elapsed | {text.duration(o.elapsed_seconds)} (active {text.duration(o.active_seconds)}, "
           f"paused {text.duration(o.paused_seconds)}) |",
           f"| ETA | {md(eta)}{' — ' + md(reason) if reason else ''} |",
           f"| Phases | {', '.join(f'{n} {k}' for k, n in o.phase_counts.items() if n)} |",
           f"| Critical path | {md(' → '.join(o.estimate.critical_path) or '—')} |", "",
           "## Timeline", "", "| Phase | Status | Planned start | Planned end | Actual start | Actual end |",
           "|---|---|---|---|---|---|"]
    for t in r.d.timeline:
        out.append(f"| {md(t.name)} | {t.status.value} | {text.when(t.planned_start)} | {text.when(t.planned_end)} | "
                   f"{text.when(t.actual_start)} | {text.when(t.actual_end)} |")
    out += ["", "## Durations against estimates", "", "| Phase | Status | Planned | Took | Difference | Attempts |",
            "|---|---|---|---|---|---|"]
    for p in r.d.phases:
        out.append(f"| {md(p.name)} | {p.status.value} | {text.duration(p.estimated_seconds)} | "
                   f"{text.duration(p.actual_seconds)} | {_vs(p)} | {p.attempts} |")
    out += ["", "## Errors and alerts", ""]
    errors = [(p.name, e) for p in r.d.phases for e in p.errors]
    errors += [(f"{p.name} / {s.name}", s.error) for p in r.d.phases for s in p.sub_tasks if s.error]
    out += [f"- **{md(where)}**: {md(e)}" for where, e in errors] or ["No errors."]
    out += ["", "| When | Level | Phase | Message | Acknowledged |", "|---|---|---|---|---|"]
    for a in r.alerts:
        ack = f"{md(a.acknowledged_by or '')} {text.when(a.acknowledged_at)}" if a.acknowledged_at else "no"
        out.append(f"| {text.when(a.created_at)} | {a.level.value} | {md(a.phase or '')} | {md(a.message)} | {ack} |")
    if not r.alerts:
        out.append("| | | | no alerts | |")
    out += ["", "## Data moved", "",
            f"- Data migrated: {text.data_size(m.total_data_migrated)}",
            f"- Average speed: {text.speed(m.migration_speed)}",
            f"- Operations: {m.successful_operations:,} succeeded, {m.failed_operations:,} failed "
            f"(error rate {text.percent(m.error_rate)})", "",
            f"Throughput over time ({r.series.throughput_unit}):", ""]
    if r.series.throughput:
        out += ["| Until | Throughput |", "|---|---|"]
        out += [f"| {text.when(p.ts)} | {human_rate(p.value, r.series.throughput_unit)} |"
                for p in r.series.throughput[:: max(1, len(r.series.throughput) // 24)]]
    else:
        out.append("No throughput was reported.")
    out += ["", "## Cost", ""]
    out += [f"- {md(k.replace('_', ' '))}: {v:,.2f}" for k, v in r.d.metrics.cost_metrics.items()] or \
        ["No cost was reported."]
    out += ["", "## Audit log", "",
            f"{len(r.audit)} events ({r.ticks} progress and metric updates left out; "
            f"`migratrack events {md(o.migration_id)}` lists them all).", "",
            "| # | When | What | Who | Details |", "|---|---|---|---|---|"]
    for e in r.audit:
        detail = " ".join(f"{k}={v}" for k, v in e.payload.items() if k not in ("id", "created_at", "phases"))
        out.append(f"| {e.seq} | {text.when(e.ts)} | {e.type} | {md(e.actor)} | {md(detail[:300])} |")
    return "\n".join(out) + "\n"


_env = Environment(loader=PackageLoader("migratrack.render", "templates"), autoescape=True, trim_blocks=True,
                   lstrip_blocks=True)


def as_html(r: ReportData) -> str:
    o = r.d.overview
    end = o.finished_at or r.generated
    eta, reason = text.eta(o, r.d.phases)
    return _env.get_template("report.html").render(
        r=r, o=o, m=r.d.metrics, text=text, eta=eta, eta_reason=reason, vs=_vs,
        timeline=timeline(r.d.timeline, end, o.estimate.critical_path),
        progress=line_chart(r.series.progress, title="Overall progress over time", unit="%", max_value=100.0),
        throughput=line_chart(r.series.throughput, title=f"Throughput over time ({r.series.throughput_unit})",
                              unit=r.series.throughput_unit),
    )
