"""Progress and throughput rebuilt from the event log, down-sampled for a chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from migratrack.core.models import Event
from migratrack.render.series import MAX_POINTS, Point, SeriesBuilder, downsample, rate

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(seq: int, type_: str, seconds: float, **payload: object) -> Event:
    return Event("m", seq, type_, T0 + timedelta(seconds=seconds), "t", dict(payload))


def test_overall_progress_weighs_phases_and_rolls_up_sub_tasks() -> None:
    b = SeriesBuilder({"a": 1.0, "b": 3.0}, {"b": {"x": 1.0, "y": 1.0}})
    b.feed([ev(1, "migration.initialized", 0),
            ev(2, "phase.progress", 1, phase="a", progress=50),
            ev(3, "phase.completed", 2, phase="a"),
            ev(4, "subtask.progress", 3, phase="b", sub_task="x", progress=50),
            ev(5, "phase.progress", 4, phase="a", progress=10),  # stale: progress never goes back
            ev(6, "subtask.completed", 5, phase="b", sub_task="y")])
    assert [p.value for p in b.progress] == [0.0, 12.5, 25.0, 43.75, 43.75, 81.25]
    b.feed([ev(6, "phase.completed", 9, phase="b")])  # already seen: ignored
    assert b.last_seq == 6 and len(b.progress) == 6


def test_throughput_comes_from_the_data_counter_else_operations() -> None:
    b = SeriesBuilder({"a": 1.0}, {})
    b.feed([ev(i + 1, "metrics.updated", i * 10, increment={"successful_operations": 100}) for i in range(5)])
    s = b.series()
    assert s.throughput_unit == "ops/s" and [round(p.value) for p in s.throughput] == [10]
    b.feed([ev(10, "metrics.updated", 50, increment={"total_data_migrated": 5000})])
    assert b.series().throughput_unit == "B/s"


def test_downsampling_keeps_at_most_the_limit_and_the_shape() -> None:
    points = [Point(T0 + timedelta(seconds=i), i / 100) for i in range(10_000)]
    out = downsample(points, MAX_POINTS)
    assert len(out) <= MAX_POINTS + 1
    assert out[0] == points[0] and out[-1] == points[-1]
    assert all(a.value <= b.value for a, b in pairwise(out))
    now = T0 + timedelta(hours=5)
    assert downsample(points[:3], now=now)[-1] == Point(now, points[2].value)
    assert downsample([]) == []


def test_rate_is_per_second_over_even_buckets() -> None:
    steps = [100] * 3 + [0] * 6 + [400] * 3  # per 10 s: 10/s for 30 s, nothing for 60 s, then 40/s
    values = [sum(steps[:i]) for i in range(13)]
    counter = [Point(T0 + timedelta(seconds=10 * i), float(v)) for i, v in enumerate(values)]
    out = rate(counter, limit=4)
    assert [round(p.value) for p in out] == [10, 0, 0, 40]
    assert out[-1].ts == counter[-1].ts
    # a burst (two samples a millisecond apart) is spread over its bucket, not drawn as a spike
    burst = [Point(T0, 0.0), Point(T0 + timedelta(seconds=3), 300.0), Point(T0 + timedelta(seconds=3.001), 600.0),
             Point(T0 + timedelta(seconds=6), 600.0)]
    assert [round(p.value) for p in rate(burst)] == [100]
    assert rate(counter[:1]) == []
