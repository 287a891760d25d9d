"""SVG text for the timeline and the line charts; every label is escaped.

The pictures carry their own text (``<title>``, ``<desc>``, labels) so a screen reader and the
single-file report need nothing else; colours come from CSS classes with inline fallbacks, so
the dashboard's stylesheet can restyle them (dark mode) and the report works without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from migratrack.core.views import TimelineEntry
from migratrack.render.series import Point

ROW = 22
LABEL = 180
WIDTH = 760

_STATUS_FILL = {"completed": "#2e7d32", "in_progress": "#1565c0", "failed": "#c62828", "skipped": "#9e9e9e",
                "pending": "#bdbdbd"}


def _x(t: datetime, start: datetime, span: float, width: float) -> float:
    return LABEL + max(0.0, min(1.0, (t - start).total_seconds() / span)) * width


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def timeline(entries: Sequence[TimelineEntry], now: datetime, critical_path: Sequence[str] = (),
             *, title: str = "Timeline: planned against actual") -> Markup:
    """Planned bars (outlined) and actual bars (filled, by status) per phase, a now-line, and the
    critical path's phases marked (a thick outline and a ◆ before the name)."""
    critical = set(critical_path)
    times = [t for e in entries for t in (e.planned_start, e.planned_end, e.actual_start, e.actual_end) if t]
    times.append(now)
    start, end = min(times), max(times)
    if end - start < timedelta(seconds=1):
        end = start + timedelta(seconds=1)
    span = (end - start).total_seconds()
    plot = WIDTH - LABEL - 10
    height = ROW * len(entries) + 40
    out = [f'<svg class="timeline" role="img" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
           f'width="100%" preserveAspectRatio="xMinYMin meet" aria-labelledby="tl-title tl-desc">',
           f'<title id="tl-title">{escape(title)}</title>',
           f'<desc id="tl-desc">From {_fmt(start)} to {_fmt(end)}. Outlined bars are planned, filled bars are '
           f'actual; phases marked with a diamond are on the critical path.</desc>']
    for i, e in enumerate(entries):
        y = 10 + i * ROW
        mark = "◆ " if e.phase in critical else ""
        name = e.name if len(e.name) <= 26 else e.name[:25] + "…"
        out.append(f'<g class="tl-row{" tl-critical" if e.phase in critical else ""}">'
                   f'<title>{escape(e.name)} ({escape(e.phase)}): {e.status.value}</title>'
                   f'<text x="4" y="{y + 14}" class="tl-label" font-size="12" fill="currentColor">'
                   f'{escape(mark)}{escape(name)}</text>')
        if e.planned_start and e.planned_end:
            x0, x1 = _x(e.planned_start, start, span, plot), _x(e.planned_end, start, span, plot)
            out.append(f'<rect class="tl-planned" x="{x0:.1f}" y="{y + 2}" width="{max(1.0, x1 - x0):.1f}" '
                       f'height="{ROW - 6}" fill="none" stroke="#888" stroke-dasharray="4 2"/>')
        if e.actual_start:
            x0 = _x(e.actual_start, start, span, plot)
            x1 = _x(e.actual_end or now, start, span, plot)
            fill = _STATUS_FILL.get(e.status.value, "#1565c0")
            stroke = ' stroke="#ff8f00" stroke-width="3"' if e.phase in critical else ""
            out.append(f'<rect class="tl-actual tl-{e.status.value}" x="{x0:.1f}" y="{y + 5}" '
                       f'width="{max(2.0, x1 - x0):.1f}" height="{ROW - 12}" fill="{fill}"{stroke}/>')
        elif e.phase in critical and e.planned_start and e.planned_end:
            x0, x1 = _x(e.planned_start, start, span, plot), _x(e.planned_end, start, span, plot)
            out.append(f'<rect class="tl-critical-plan" x="{x0:.1f}" y="{y + 2}" width="{max(1.0, x1 - x0):.1f}" '
                       f'height="{ROW - 6}" fill="none" stroke="#ff8f00" stroke-width="2"/>')
        out.append("</g>")
    nx = _x(now, start, span, plot)
    bottom = 10 + ROW * len(entries)
    out.append(f'<line class="tl-now" x1="{nx:.1f}" x2="{nx:.1f}" y1="4" y2="{bottom}" stroke="#d81b60" '
               f'stroke-width="2"><title>now: {_fmt(now)}</title></line>')
    out.append(f'<text x="{min(nx, WIDTH - 40):.1f}" y="{bottom + 14}" font-size="11" fill="#d81b60">now</text>')
    out.append(f'<text x="{LABEL}" y="{bottom + 28}" font-size="11" fill="currentColor">{start:%H:%M:%S}</text>')
    out.append(f'<text x="{WIDTH - 10}" y="{bottom + 28}" font-size="11" text-anchor="end" fill="currentColor">'
               f'{end:%H:%M:%S}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def human_rate(value: float, unit: str) -> str:
    if unit == "B/s":
        for suffix in ("B/s", "KiB/s", "MiB/s", "GiB/s"):
            if abs(value) < 1024 or suffix == "GiB/s":
                return f"{value:.1f} {suffix}"
            value /= 1024
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:.1f} {unit}"


def line_chart(points: Sequence[Point], *, title: str, unit: str, css: str = "chart",
               max_value: float | None = None) -> Markup:
    """A line chart of ``points`` (already down-sampled) with its title, range and last value."""
    w, h, pad = 360, 160, 46
    if not points:
        return Markup(f'<svg class="{escape(css)}" role="img" xmlns="http://www.w3.org/2000/svg" '
                      f'viewBox="0 0 {w} 40" width="100%"><title>{escape(title)}: no data yet</title>'
                      f'<text x="4" y="24" font-size="12" fill="currentColor">{escape(title)}: no data yet</text>'
                      f'</svg>')
    start, end = points[0].ts, points[-1].ts
    span = max((end - start).total_seconds(), 1e-9)
    top = max_value if max_value is not None else max(p.value for p in points) or 1.0
    ceiling = 30  # the plot's top: the title sits above it
    coords = " ".join(
        f"{pad + (p.ts - start).total_seconds() / span * (w - pad - 6):.1f},"
        f"{h - pad - min(p.value, top) / top * (h - pad - ceiling):.1f}" for p in points)
    last = points[-1].value
    desc = (f"{title}: {len(points)} points from {_fmt(start)} to {_fmt(end)}; latest "
            f"{human_rate(last, unit)}, highest {human_rate(max(p.value for p in points), unit)}")
    return Markup(
        f'<svg class="{escape(css)}" role="img" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" '
        f'width="100%"><title>{escape(title)}</title><desc>{escape(desc)}</desc>'
        f'<text x="4" y="14" font-size="12" fill="currentColor">{escape(title)} — latest '
        f'{escape(human_rate(last, unit))}</text>'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - 6}" y2="{h - pad}" stroke="#888"/>'
        f'<line x1="{pad}" y1="{ceiling}" x2="{pad}" y2="{h - pad}" stroke="#888"/>'
        f'<text x="{pad + 4}" y="{ceiling + 10}" font-size="10" fill="currentColor">'
        f'{escape(_short(top, unit))}</text>'
        f'<text x="{pad - 2}" y="{h - pad}" font-size="10" text-anchor="end" fill="currentColor">0</text>'
        f'<text x="{pad}" y="{h - 12}" font-size="10" fill="currentColor">{start:%H:%M:%S}</text>'
        f'<text x="{w - 6}" y="{h - 12}" font-size="10" text-anchor="end" fill="currentColor">{end:%H:%M:%S}</text>'
        f'<polyline class="chart-line" fill="none" stroke="#1565c0" stroke-width="2" points="{coords}"/>'
        f'</svg>')


def _short(value: float, unit: str) -> str:
    text = human_rate(value, unit)
    return text.split(" ")[0] if unit != "B/s" else text
