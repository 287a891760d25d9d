"""Replay a trace through the public SDK with an injected clock, and score the estimates.

The migration is reported with ``MigrationProgressTracker`` (in-memory store, coalescing off so
each report lands at its instant, ``clock=`` the replay's clock). At 10, 25, 50, 75 and 90% of
the true elapsed time the tracker's own estimate is read, next to two baselines fed the same
overall progress (``core.progress.overall_progress`` of the stored state, what the dashboard
shows): linear extrapolation, and tqdm's smoothed
rate (a real ``tqdm`` with smoothing 0.3 whose timer is the replay's clock).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tqdm import tqdm

from migratrack import MigrationProgressTracker
from migratrack.core.progress import overall_progress
from migratrack.storage.memory import MemoryStorage

from .traces import PhaseSpec, Trace

CHECKPOINTS = (0.10, 0.25, 0.50, 0.75, 0.90)
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class ReplayClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:  # tqdm's timer
        return self.now.timestamp()


@dataclass
class Reading:
    """One estimator's answer at one checkpoint: remaining seconds predicted (None: unknown)
    and, for migratrack, the interval's ends in remaining seconds."""

    remaining: float | None
    low: float | None = None
    high: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Checkpoint:
    fraction: float
    true_remaining: float
    readings: dict[str, Reading]


@dataclass
class TraceResult:
    trace: Trace
    wall_total: float
    checkpoints: list[Checkpoint]


class LinearBaseline:
    """Elapsed wall time / progress, extrapolated: what a progress bar without smoothing shows."""

    def __init__(self, start: float) -> None:
        self.start = start

    def remaining(self, now: float, progress: float) -> float | None:
        if progress <= 0:
            return None
        return (now - self.start) * (100.0 - progress) / progress


class TqdmBaseline:
    """tqdm's own exponential moving average of the rate (smoothing 0.3), on the replay's clock.
    ``update`` is called when progress moves, as a loop calls it when items finish."""

    def __init__(self, clock: ReplayClock) -> None:
        self.bar = tqdm(total=100.0, smoothing=0.3, mininterval=0, miniters=0, file=io.StringIO(), leave=False)
        self.bar._time = clock.seconds  # tqdm reads its timer through this attribute
        self.bar.reset(total=100.0)  # restart its counters on the replay's clock
        self.n = 0.0

    def feed(self, progress: float) -> None:
        if progress > self.n:
            self.bar.update(progress - self.n)
            self.n = progress

    def remaining(self) -> float | None:
        rate = self.bar.format_dict["rate"]
        if not rate:
            return None
        return (100.0 - self.n) / rate  # tqdm's format_meter: (total - n) / rate

    def close(self) -> None:
        self.bar.close()


def _plan(trace: Trace) -> list[dict[str, Any]]:
    out = []
    for p in trace.phases:
        d: dict[str, Any] = {"id": p.id, "dependencies": list(p.deps)}
        if p.plan_min is not None:
            d["estimated_duration"] = p.plan_min
        if p.subs:
            d["sub_tasks"] = [{"id": s.id, **({"estimated_duration": s.plan_min} if s.plan_min else {})}
                              for s in p.subs]
        out.append(d)
    return out


class _Runner:
    """Drives one migration of a trace through a tracker."""

    def __init__(self, trace: Trace, tracker: MigrationProgressTracker, clock: ReplayClock, start: datetime) -> None:
        self.trace, self.tracker, self.clock, self.start = trace, tracker, clock, start
        self.schedule = trace.schedule()
        self.started: set[str] = set()
        self.done: set[str] = set()
        self.sub_state: dict[tuple[str, str], str] = {}
        self.paused = False

    def active_at(self, wall: float) -> tuple[float, bool]:
        """Active seconds run at wall second ``wall``, and whether an operator pause is on."""
        shift = 0.0
        for at, length in sorted(self.trace.pauses):
            if wall < at + shift:
                break
            if wall < at + shift + length:
                return at, True
            shift += length
        return wall - shift, False

    def instants(self, steps: int) -> list[float]:
        total = self.trace.wall_total
        times = {total * k / steps for k in range(steps + 1)}
        times |= {total * c for c in CHECKPOINTS}
        for start, end in self.schedule.values():
            times |= {self.trace.wall(start), self.trace.wall(end)}
        shift = 0.0
        for at, length in sorted(self.trace.pauses):
            times |= {at + shift, at + shift + length}
            shift += length
        return sorted(t for t in times if 0 <= t <= total)

    def advance(self, wall: float) -> None:
        self.clock.now = self.start + timedelta(seconds=wall)
        active, paused = self.active_at(wall)
        t = self.tracker
        if paused and not self.paused:
            self._report(active)  # what was done up to the pause
            t.pause("maintenance window")
            self.paused = True
            return
        if paused:
            return
        if self.paused:
            t.resume()
            self.paused = False
        self._report(active)

    def _report(self, active: float) -> None:
        t = self.tracker
        for p in self.trace.phases:
            start, end = self.schedule[p.id]
            if p.id in self.done or active < start:
                continue
            if p.id not in self.started:
                t.start_phase(p.id)
                self.started.add(p.id)
            if active >= end:
                self._progress(p, 1.0)
                t.complete_phase(p.id)
                self.done.add(p.id)
            else:
                self._progress(p, (active - start) / p.seconds)

    def _progress(self, p: PhaseSpec, u: float) -> None:
        t = self.tracker
        if p.subs:
            elapsed = u * p.seconds if u < 1.0 else float("inf")  # the end: every sub-task done
            for s in p.subs:
                key = (p.id, s.id)
                state = self.sub_state.get(key, "pending")
                if state == "done":
                    elapsed -= s.seconds
                    continue
                if elapsed <= 0:
                    break
                if state == "pending":
                    t.start_sub_task(p.id, s.id)
                    self.sub_state[key] = "running"
                if elapsed >= s.seconds:
                    t.complete_sub_task(p.id, s.id)
                    self.sub_state[key] = "done"
                    elapsed -= s.seconds
                else:
                    t.update_sub_task_progress(p.id, s.id, round(100.0 * elapsed / s.seconds, 3))
                    break
            return
        f = min(1.0, max(0.0, p.profile(min(1.0, u))))
        if p.counts is not None:
            c = p.counts
            total = c.first_total if u < c.revise_at else c.total
            t.update_phase_progress(p.id, done=int(f * c.total), total=total)
        elif f > 0:
            t.update_phase_progress(p.id, round(100.0 * f, 3))


def _reading(tracker: MigrationProgressTracker, now: datetime) -> Reading:
    e = tracker.estimate()
    if e.completion is None:
        return Reading(None, info={"unknown": getattr(e, "unknown_reason", None)})

    def rem(x: datetime | None) -> float | None:
        return None if x is None else (x - now).total_seconds()

    info = {k: getattr(e, k, None) for k in ("method", "driver", "confidence")}
    return Reading(rem(e.completion), rem(e.earliest), rem(e.latest), info)


def replay(trace: Trace, *, steps: int = 400, seed_time: datetime = EPOCH) -> TraceResult:
    storage = MemoryStorage()
    clock = ReplayClock(seed_time)
    metadata: dict[str, Any] = {}
    if trace.rehearsal is not None:
        rid = f"{trace.name}-rehearsal"
        with MigrationProgressTracker(rid, storage=storage, clock=clock, coalesce=0, block_on_pause=False,
                                      actor="bench") as rt:
            rt.initialize_migration(_plan(trace.rehearsal))
            runner = _Runner(trace.rehearsal, rt, clock, seed_time)
            for w in runner.instants(steps):
                runner.advance(w)
        metadata["eta_prior"] = rid
        seed_time = seed_time + timedelta(days=2)
        clock.now = seed_time
    mid = trace.name
    checkpoints: list[Checkpoint] = []
    with MigrationProgressTracker(mid, storage=storage, clock=clock, coalesce=0, block_on_pause=False,
                                  actor="bench") as tracker:
        tracker.initialize_migration(_plan(trace), metadata=metadata)
        runner = _Runner(trace, tracker, clock, seed_time)
        total = trace.wall_total
        marks = {round(total * c, 6): c for c in CHECKPOINTS}
        linear = LinearBaseline(clock.seconds())
        smoothed = TqdmBaseline(clock)
        try:
            for w in runner.instants(steps):
                runner.advance(w)
                progress = overall_progress(storage.load(mid))
                smoothed.feed(progress)
                frac = marks.pop(round(w, 6), None)
                if frac is None:
                    continue
                now = clock.now
                checkpoints.append(Checkpoint(frac, total - w, {
                    "migratrack": _reading(tracker, now),
                    "linear": Reading(linear.remaining(clock.seconds(), progress)),
                    "tqdm": Reading(smoothed.remaining()),
                }))
        finally:
            smoothed.close()
    return TraceResult(trace, total, checkpoints)
