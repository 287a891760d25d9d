"""Completion estimate.

Each unfinished phase gets a remaining time from two sources, blended by its progress:

* its plan (``estimated_duration``), calibrated by how long completed phases took compared
  with their own plans (median ratio, clamped to [0.25, 4]);
* its observed rate: progress per *active* second (time paused is left out), averaged over
  every attempt so that a burst, a stall or a retry moves it gradually.

At 0% the plan speaks alone; as progress grows the observed rate takes over (weight =
progress fraction). A phase with neither a plan nor any progress makes the estimate unknown
(``None``), unless completed phases give a typical duration. The remaining times are then laid
on the dependency graph (independent phases run side by side) and the longest path from now is
the estimate. The interval's ends come from the more optimistic and the more pessimistic of the
two sources for each phase.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from migratrack.core.graph import critical_path, longest_finish
from migratrack.core.models import MigrationState, PhaseState
from migratrack.core.progress import phase_progress
from migratrack.core.rules import active_seconds
from migratrack.core.states import Control, Status

#: below this much progress (percent) an observed rate is too noisy to use
MIN_PROGRESS_FOR_RATE = 0.5


@dataclass(frozen=True, slots=True)
class Estimate:
    #: when the migration is expected to finish; None while it cannot say
    completion: datetime | None
    earliest: datetime | None
    latest: datetime | None
    remaining_seconds: float | None
    #: phase ids on the longest remaining path, first to last
    critical_path: tuple[str, ...]
    #: median of actual/planned duration over completed phases (1.0 when none)
    calibration: float


def _calibration(state: MigrationState, now: datetime) -> float:
    ratios = []
    for p in state.phases.values():
        if p.status is Status.COMPLETED and p.estimated_seconds:
            actual = p.prior_active_seconds + active_seconds(state, p.started_at, p.completed_at or now)
            if actual > 0:
                ratios.append(actual / p.estimated_seconds)
    if not ratios:
        return 1.0
    return min(4.0, max(0.25, statistics.median(ratios)))


def _typical_duration(state: MigrationState, now: datetime) -> float | None:
    durations = [
        p.prior_active_seconds + active_seconds(state, p.started_at, p.completed_at or now)
        for p in state.phases.values() if p.status is Status.COMPLETED and p.started_at
    ]
    return statistics.median(durations) if durations else None


def _phase_remaining(
    state: MigrationState, phase: PhaseState, now: datetime, calibration: float, typical: float | None
) -> tuple[float, float, float] | None:
    """(point, low, high) remaining seconds for one phase, or None when unknown."""
    if phase.status.finished:
        return (0.0, 0.0, 0.0)
    frac = phase_progress(phase) / 100.0
    plan_total = phase.estimated_seconds * calibration if phase.estimated_seconds is not None else typical
    plan_left = None if plan_total is None else plan_total * (1.0 - frac)
    observed_left = None
    if phase.status is Status.IN_PROGRESS and frac * 100 >= MIN_PROGRESS_FOR_RATE:
        # progress carries over a retry, so the rate is over the active time of every attempt
        active = phase.prior_active_seconds + active_seconds(state, phase.started_at, now)
        if active > 0:
            rate = frac / active
            observed_left = (1.0 - frac) / rate
    if plan_left is None and observed_left is None:
        return None
    if plan_left is None:
        assert observed_left is not None
        return (observed_left, observed_left, observed_left)
    if observed_left is None:
        return (plan_left, plan_left, plan_left)
    point = frac * observed_left + (1.0 - frac) * plan_left
    return (point, min(plan_left, observed_left), max(plan_left, observed_left))


def estimate(state: MigrationState, now: datetime) -> Estimate:
    calibration = _calibration(state, now)
    if state.finished_at is not None:
        return Estimate(state.finished_at, state.finished_at, state.finished_at, 0.0, (), calibration)
    if state.control is Control.CANCELLED:
        return Estimate(None, None, None, None, (), calibration)
    typical = _typical_duration(state, now)
    parts: dict[str, tuple[float, float, float]] = {}
    for pid, phase in state.phases.items():
        r = _phase_remaining(state, phase, now, calibration, typical)
        if r is None:
            return Estimate(None, None, None, None, (), calibration)
        parts[pid] = r
    deps = {pid: p.dependencies for pid, p in state.phases.items()}
    finish = longest_finish(deps, lambda pid: parts[pid][0])
    low = longest_finish(deps, lambda pid: parts[pid][1])
    high = longest_finish(deps, lambda pid: parts[pid][2])
    point_s = max(finish.values(), default=0.0)
    path = tuple(p for p in critical_path(deps, finish) if not state.phases[p].status.finished)
    return Estimate(
        completion=now + timedelta(seconds=point_s),
        earliest=now + timedelta(seconds=max(low.values(), default=0.0)),
        latest=now + timedelta(seconds=max(high.values(), default=0.0)),
        remaining_seconds=point_s,
        critical_path=path,
        calibration=calibration,
    )
