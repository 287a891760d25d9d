"""The three pictures of a migration, from its dashboard and its replayed events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup

from migratrack.core.models import Event
from migratrack.core.views import Dashboard
from migratrack.render.series import SeriesBuilder
from migratrack.render.svg import line_chart, timeline

#: events read per page when replaying a log
PAGE = 1000


@dataclass(frozen=True)
class Pictures:
    timeline: Markup
    progress: Markup
    throughput: Markup


def catch_up(builder: SeriesBuilder, read: Callable[[int, int], list[Event]], limit: int | None = None) -> None:
    """Feed ``builder`` every event after the last it saw (``read(after, n)`` pages the log)."""
    seen = 0
    while limit is None or seen < limit:
        batch = read(builder.last_seq, PAGE)
        builder.feed(batch)
        seen += len(batch)
        if len(batch) < PAGE:
            return


def pictures(d: Dashboard, builder: SeriesBuilder, now: datetime) -> Pictures:
    end = d.overview.finished_at or now
    s = builder.series(end if d.overview.finished_at is None else None)
    return Pictures(
        timeline=timeline(d.timeline, end, d.overview.estimate.critical_path),
        progress=line_chart(s.progress, title="Overall progress over time", unit="%", max_value=100.0,
                            css="chart chart-progress"),
        throughput=line_chart(s.throughput, title=f"Throughput over time ({s.throughput_unit})",
                              unit=s.throughput_unit, css="chart chart-throughput"),
    )
