"""The timeline and charts as SVG: escaped labels, a now-line, the critical path marked."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from migratrack.core.states import Status
from migratrack.core.views import TimelineEntry
from migratrack.render.series import Point
from migratrack.render.svg import line_chart, timeline

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NS = "{http://www.w3.org/2000/svg}"


def entry(pid: str, name: str, start: int, end: int, actual: tuple[int, int | None] | None,
          status: Status = Status.PENDING) -> TimelineEntry:
    a0, a1 = (T0 + timedelta(seconds=actual[0]), None if actual[1] is None else T0 + timedelta(seconds=actual[1])) \
        if actual else (None, None)
    return TimelineEntry(phase=pid, name=name, status=status, planned_start=T0 + timedelta(seconds=start),
                         planned_end=T0 + timedelta(seconds=end), actual_start=a0, actual_end=a1)


def test_timeline_draws_planned_actual_now_and_the_critical_path() -> None:
    entries = [entry("a", "Schema", 0, 60, (0, 90), Status.COMPLETED),
               entry("b", "<img src=x onerror=alert(1)>", 60, 120, (90, None), Status.IN_PROGRESS),
               entry("c", "Side job", 0, 30, None)]
    svg = str(timeline(entries, T0 + timedelta(seconds=100), ["a", "b"]))
    root = ET.fromstring(svg)  # well-formed: every label escaped
    assert "<img" not in svg and "&lt;img src=x onerror=alert(1)&gt;" in svg
    assert len(root.findall(f".//{NS}rect[@class='tl-planned']")) == 3
    actual = root.findall(f".//{NS}rect")
    assert sum(1 for r in actual if "tl-actual" in (r.get("class") or "")) == 2
    assert root.find(f".//{NS}line[@class='tl-now']") is not None
    critical = root.findall(f".//{NS}g[@class='tl-row tl-critical']")
    assert len(critical) == 2 and all("◆" in "".join(g.itertext()) for g in critical)


def test_a_line_chart_says_what_it_shows_and_has_no_data_state() -> None:
    points = [Point(T0 + timedelta(seconds=i), float(i)) for i in range(10)]
    svg = str(line_chart(points, title="Throughput <B/s>", unit="B/s"))
    root = ET.fromstring(svg)
    assert root.find(f"{NS}title").text == "Throughput <B/s>"  # type: ignore[union-attr]
    assert len(root.find(f".//{NS}polyline").get("points", "").split()) == 10  # type: ignore[union-attr]
    assert "latest 9.0 B/s" in svg
    empty = str(line_chart([], title="Progress", unit="%"))
    assert "no data yet" in empty and ET.fromstring(empty) is not None
