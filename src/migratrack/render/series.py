"""Progress and throughput over time, rebuilt from the event log and down-sampled.

The event log holds every progress report, so a chart is a replay of it: per-phase progress (and
sub-task progress, for phases that roll up from sub-tasks) weighted as the core weighs them, and
the data and operation counters. :class:`SeriesBuilder` is fed events in order and can be fed
more later (the dashboard keeps one per migration and reads only new events).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from migratrack.core.models import Event, MigrationState
from migratrack.core.views import Dashboard

#: the most points a chart is drawn with
MAX_POINTS = 120


@dataclass(frozen=True, slots=True)
class Point:
    ts: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    #: overall progress, percent
    progress: list[Point]
    #: bytes per second between samples (or operations per second when no data was reported)
    throughput: list[Point]
    #: "B/s" or "ops/s"
    throughput_unit: str


def _weights(values: Sequence[float | None]) -> list[float]:
    known = [v for v in values if v]
    if not known:
        return [1.0] * len(values)
    fallback = sum(known) / len(known)
    return [v if v else fallback for v in values]


@dataclass
class SeriesBuilder:
    """Replays a migration's events into raw samples; weights come from the plan in ``state``."""

    phase_weight: dict[str, float]
    sub_weight: dict[str, dict[str, float]]
    last_seq: int = 0
    _phase: dict[str, float] = field(default_factory=dict)
    _subs: dict[str, dict[str, float]] = field(default_factory=dict)
    _bytes: int = 0
    _ops: int = 0
    progress: list[Point] = field(default_factory=list)
    data: list[Point] = field(default_factory=list)
    ops: list[Point] = field(default_factory=list)

    @classmethod
    def for_state(cls, state: MigrationState) -> SeriesBuilder:
        phases = list(state.phases.values())
        pw = _weights([p.estimated_seconds for p in phases])
        subs: dict[str, dict[str, float]] = {}
        for p in phases:
            if p.sub_tasks:
                ss = list(p.sub_tasks.values())
                subs[p.id] = dict(zip(p.sub_tasks, _weights([s.estimated_seconds for s in ss]), strict=True))
        return cls({p.id: w for p, w in zip(phases, pw, strict=True)}, subs)

    @classmethod
    def for_dashboard(cls, d: Dashboard) -> SeriesBuilder:
        """The same weights from a dashboard built with its sub-tasks (what a server returns)."""
        pw = _weights([p.estimated_seconds for p in d.phases])
        subs = {p.id: dict(zip((s.id for s in p.sub_tasks), _weights([s.estimated_seconds for s in p.sub_tasks]),
                               strict=True))
                for p in d.phases if p.sub_tasks}
        return cls({p.id: w for p, w in zip(d.phases, pw, strict=True)}, subs)

    def _phase_fraction(self, pid: str) -> float:
        own = self._phase.get(pid, 0.0)
        weights = self.sub_weight.get(pid)
        if not weights:
            return own
        subs = self._subs.get(pid, {})
        rolled = sum(w * subs.get(s, 0.0) for s, w in weights.items()) / sum(weights.values())
        return max(own, min(100.0, rolled))

    def _overall(self) -> float:
        total = sum(self.phase_weight.values()) or 1.0
        return sum(w * self._phase_fraction(pid) for pid, w in self.phase_weight.items()) / total

    def feed(self, events: Iterable[Event]) -> None:
        for e in events:
            if e.seq <= self.last_seq:
                continue
            self.last_seq = e.seq
            p = e.payload
            pid = str(p.get("phase"))
            sub = str(p.get("sub_task"))
            moved = False
            if e.type == "phase.progress" and isinstance(p.get("progress"), int | float):
                self._phase[pid] = max(self._phase.get(pid, 0.0), float(p["progress"]))
                moved = True
            elif e.type in ("phase.completed", "phase.skipped"):
                self._phase[pid] = 100.0
                moved = True
            elif e.type == "subtask.progress" and isinstance(p.get("progress"), int | float):
                subs = self._subs.setdefault(pid, {})
                subs[sub] = max(subs.get(sub, 0.0), float(p["progress"]))
                moved = True
            elif e.type in ("subtask.completed", "subtask.skipped"):
                self._subs.setdefault(pid, {})[sub] = 100.0
                moved = True
            elif e.type == "metrics.updated":
                inc = p.get("increment") or {}
                sets = p.get("set") or {}
                self._bytes = int(sets.get("total_data_migrated", self._bytes)) + int(
                    inc.get("total_data_migrated", 0))
                self._ops = int(sets.get("successful_operations", self._ops)) + int(
                    inc.get("successful_operations", 0)) + int(inc.get("failed_operations", 0))
                self.data.append(Point(e.ts, float(self._bytes)))
                self.ops.append(Point(e.ts, float(self._ops)))
            elif e.type == "migration.initialized":
                self.progress.append(Point(e.ts, 0.0))
            if moved and pid in self.phase_weight:
                self.progress.append(Point(e.ts, round(self._overall(), 4)))

    def series(self, now: datetime | None = None, points: int = MAX_POINTS) -> Series:
        progress = downsample(self.progress, points, now)
        use_bytes = any(pt.value for pt in self.data)
        counter = self.data if use_bytes else self.ops
        return Series(progress=progress, throughput=rate(counter, points),
                      throughput_unit="B/s" if use_bytes else "ops/s")


def downsample(points: Sequence[Point], limit: int = MAX_POINTS, now: datetime | None = None) -> list[Point]:
    """A step series kept to at most ``limit`` points: the last value in each of ``limit`` equal
    time buckets (a value that only grows keeps its shape), extended to ``now`` when given."""
    if not points:
        return []
    start, end = points[0].ts, max(points[-1].ts, now or points[-1].ts)
    span = (end - start).total_seconds()
    if len(points) <= limit or span <= 0:
        out = list(points)
    else:
        buckets: dict[int, Point] = {}
        for pt in points:
            buckets[min(limit - 1, int((pt.ts - start).total_seconds() / span * limit))] = pt
        out = [buckets[k] for k in sorted(buckets)]
        if out[0] is not points[0]:
            out.insert(0, points[0])
    if now is not None and now > out[-1].ts:
        out.append(Point(now, out[-1].value))
    return out


def rate(counter: Sequence[Point], limit: int = MAX_POINTS) -> list[Point]:
    """Per-second rate of a cumulative counter over at most ``limit`` equal buckets. The counter
    is interpolated linearly between samples, so workers that report in bursts do not draw a comb
    of peaks and zeros."""
    if len(counter) < 2:
        return []
    start, end = counter[0].ts, counter[-1].ts
    span = (end - start).total_seconds()
    if span <= 0:
        return []
    offsets = [(p.ts - start).total_seconds() for p in counter]

    def at(t: float) -> float:
        k = bisect.bisect_left(offsets, t)
        if k <= 0:
            return counter[0].value
        if k >= len(offsets):
            return counter[-1].value
        t0, t1 = offsets[k - 1], offsets[k]
        v0, v1 = counter[k - 1].value, counter[k].value
        return v1 if t1 <= t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    # about three samples a bucket: workers flush in bursts, and a bucket per sample draws the bursts
    n = max(1, min(limit, (len(counter) - 1) // 3))
    width = span / n
    out: list[Point] = []
    prev = at(0.0)
    for k in range(n):
        value = at((k + 1) * width)
        out.append(Point(start + (end - start) * ((k + 1) / n), max(0.0, (value - prev) / width)))
        prev = value
    return out
