"""Completion estimate.

Each unfinished phase gets a remaining time and a spread (log scale); the remaining times are
laid on the dependency graph (independent phases run side by side) and the longest path from
now is the estimate. Time paused, and time the script said it was throttled
(``tracker.throttled(...)``), is left out of every rate (active seconds only); a phase waiting
for approval is pending, so the wait is no phase's slowness either.

**A phase in progress.** Several estimators of its pace (active seconds per unit of progress)
compete:

* ``plan``: its plan (or, given a ``prior``, its duration in a previous run of the same plan),
  calibrated by the phases already finished;
* ``average``: its active time so far over its progress, every attempt counted, so a retry does
  not make it look fast;
* ``recent``: the pace over the last quarter of its active time (a window: a burst or a stall
  shorter than it moves the rate gradually, and a stall never makes it infinite);
* ``flowing``: the pace with stalls left out (gaps between reports far longer than the usual
  one), for work that stalled once and resumed;
* ``trend``: the pace fitted linearly in progress over the intervals between reports, for
  phases that slow down (a B-tree filling) or speed up (a cache warming).

Given a history (``core/eta_history.py``), each estimator is asked what it *would have said*
from the instants the phase reached 40, 55, 70 and 85% of its progress so far about the time to
reach today's progress, and scored by its mean log error against what happened. Weights fall
off exponentially with the error (more gently when even the best did badly), so the estimator
that has predicted best speaks loudest. Without enough history, the plan and the average pace
are blended by progress (at 0% the plan speaks alone).

Counts: a phase reporting ``done``/``total`` is measured in items against the latest total, so a
total revised upwards re-scales its history instead of freezing the estimate at "due", and its
plan (made for the first total) grows with the total.

**A pending phase.** Its plan (or prior) times the calibration: actual/planned over finished
phases and the phases in progress (weighted by plan and progress: the ratio of the sums),
clamped to [0.25, 4]; the spread of the log ratios is its spread. No plan: the typical duration
of finished phases. Neither: the estimate is unknown, with the reason.

**The whole migration** (two phases or more): the graph's answer competes with two progress
bars fed the overall progress on active time, ``overall-linear`` and ``overall-smoothed`` (tqdm's
moving average). Each is asked what it would have said at 40, 55, 70 and 85% of the active time
so far (the graph's answer then recomputed from the migration as it stood then) and scored by
how that agrees with the time run since plus what the graph says is left now, later instants
counting more; they are mixed by score like the phase estimators, and the graph's interval is
moved to the mix and widened by their disagreement.

**The interval** is p10-p90: each phase's remaining time times exp(-/+1.28 spread), laid on the
graph like the point. A phase in progress takes as spread the errors its mix of estimators
actually made on this run (grown with the square root of the horizon), plus the estimators'
disagreement; a pending phase the spread of the calibration ratios; before anything was
measured, :data:`PLAN_SPREAD`.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from migratrack.core.eta_history import ProgressHistory, Sample
from migratrack.core.graph import critical_path, longest_finish
from migratrack.core.models import MigrationState, PhaseState
from migratrack.core.progress import _weights, phase_progress
from migratrack.core.rules import rate_seconds
from migratrack.core.states import Control, Status

#: below this much progress (percent) an observed rate is too noisy to use
MIN_PROGRESS_FOR_RATE = 0.5
#: the log-spread of a plan before any phase of this run was measured (a plan off by 1.5x is
#: common): what the interval of a pending phase starts from
PLAN_SPREAD = 0.4
#: p10/p90 of a normal distribution, in standard deviations
Z90 = 1.2816
#: how sharply the estimators' weights fall off with their mean log error
TEMPERATURE = 0.04
#: the estimators are scored from the instants the phase reached these shares of its progress
SCORE_AT = (0.4, 0.55, 0.7, 0.85)
CAL_CLAMP = (0.25, 4.0)
#: the widest log-spread of a phase in progress: p90 at 3.6x the point is already "low confidence"
MAX_SPREAD = 1.0
#: reports that moved progress needed before a trend is fitted (a slope from 2 or 3 is noise)
MIN_TREND_INTERVALS = 5
#: points of a phase's progress curve the estimators read (evenly thinned from the history)
CURVE_POINTS = 80
#: the weight of the newest move in the ``overall-smoothed`` pace (tqdm's default smoothing)
SMOOTHING = 0.3
#: the migration-level candidates are scored from these shares of its active time so far
OVERALL_SCORE_AT = (0.4, 0.55, 0.7, 0.85)
#: how much more each of those instants counts than the one before
OVERALL_RECENCY = 2.0


@dataclass(frozen=True, slots=True)
class Estimate:
    #: when the migration is expected to finish; None while it cannot say
    completion: datetime | None
    #: p10 and p90 of the completion time
    earliest: datetime | None
    latest: datetime | None
    remaining_seconds: float | None
    #: phase ids on the longest remaining path, first to last
    critical_path: tuple[str, ...]
    #: actual/planned duration over measured phases, plan-weighted (1.0 when none)
    calibration: float
    #: the phase that drives the estimate: the unfinished phase with the most remaining time
    #: on the critical path
    driver: str | None = None
    #: the estimator that speaks loudest for the driving phase: plan, prior, typical, average,
    #: recent, flowing or trend; or, when a progress bar's read of the overall progress has
    #: predicted this run better than the phases' graph, overall-linear or overall-smoothed
    method: str | None = None
    #: why that estimator, in a sentence
    reason: str | None = None
    #: high / medium / low, from the interval's width relative to the remaining time
    confidence: str | None = None
    #: why the estimate is unknown (None when it is known)
    unknown_reason: str | None = None


@dataclass(frozen=True, slots=True)
class _Part:
    remaining: float
    spread: float  # log-scale standard deviation
    method: str
    reason: str


# -- paces: seconds of active time per unit of progress (0..1) -------------------------------


@dataclass(frozen=True, slots=True)
class _Pace:
    """pace(f) = alpha + beta*f seconds per unit of progress (constant when beta is 0), never
    below ``floor``: time(f1, f2) is its integral."""

    alpha: float
    beta: float = 0.0
    floor: float = 0.0
    ceiling: float = math.inf

    def at(self, f: float) -> float:
        return min(self.ceiling, max(self.floor, self.alpha + self.beta * f))

    def time(self, f1: float, f2: float) -> float:
        if f2 <= f1:
            return 0.0
        if self.beta == 0.0:
            return self.at(0.0) * (f2 - f1)
        n = 16  # the midpoint rule; the floor makes the integrand piecewise linear
        h = (f2 - f1) / n
        return sum(self.at(f1 + (i + 0.5) * h) for i in range(n)) * h


def _const(pace: float) -> _Pace | None:
    return _Pace(pace) if pace > 0 and math.isfinite(pace) else None


class _Curve:
    """A phase's progress over active time: points (a, f), a increasing, f non-decreasing."""

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        self.a = [p[0] for p in points]
        self.f = [p[1] for p in points]

    def f_at(self, t: float) -> float:
        """Progress as of active time t: the last sample at or before it (reports are instants)."""
        out = self.f[0]
        for a, f in zip(self.a, self.f, strict=True):
            if a > t:
                break
            out = f
        return out

    def a_reach(self, target: float) -> float:
        """The active time at which progress first reached ``target``."""
        for a, f in zip(self.a, self.f, strict=True):
            if f >= target:
                return a
        return self.a[-1]


def _average(c: _Curve, upto: float, extra_active: float = 0.0, done_before: float = 0.0) -> _Pace | None:
    f = c.f_at(upto) - done_before
    if f * 100 < MIN_PROGRESS_FOR_RATE:
        return None
    return _const((upto - c.a[0] + extra_active) / f)


def _recent(c: _Curve, upto: float) -> _Pace | None:
    window = 0.25 * (upto - c.a[0])
    if window <= 0:
        return None
    gained = c.f_at(upto) - c.f_at(upto - window)
    if gained * 100 < MIN_PROGRESS_FOR_RATE / 4:
        return None  # a stall inside the window: the other estimators speak
    return _const(window / gained)


def _flowing(c: _Curve, upto: float) -> _Pace | None:
    """The pace while work flows: stretches without progress much longer than the usual gap
    between reports (a lock wait, a stall already over or still going) are left out."""
    pts = [(a, f) for a, f in zip(c.a, c.f, strict=True) if a <= upto]
    if upto > pts[-1][0]:
        pts.append((upto, pts[-1][1]))
    gained = pts[-1][1] - pts[0][1]
    if gained * 100 < MIN_PROGRESS_FOR_RATE:
        return None
    # the time from each report that moved progress to the next one that did: a gap much
    # longer than the usual one is a stall (reports may be silent through it), less a usual gap
    gaps: list[float] = []
    idle = 0.0
    for (a0, f0), (a1, f1) in itertools.pairwise(pts):
        idle += a1 - a0
        if f1 > f0:
            gaps.append(idle)
            idle = 0.0
    span = upto - pts[0][0]
    if len(gaps) < 3 or span <= 0:
        return None
    usual = statistics.median(gaps)
    limit = max(5 * usual, 0.05 * span)
    stalled = sum(g - usual for g in [*gaps, idle] if g > limit)
    if stalled <= 0 or stalled >= span:
        return None  # no stall: the average says the same
    return _const((span - stalled) / gained)


def _trend(c: _Curve, upto: float) -> _Pace | None:
    """The pace fitted linearly in progress over the intervals between reports that moved it
    (weighted by the progress each made): a phase whose items cost more and more (a B-tree
    filling) or less and less (a cache warming). A first-order fit: it does not bend further
    than the data, and the pace stays within a factor 3 of its mean so far."""
    xs: list[float] = []
    ys: list[float] = []
    ws: list[float] = []
    last_a, last_f = c.a[0], c.f[0]
    for a, f in zip(c.a, c.f, strict=True):
        if a > upto:
            break
        if f > last_f:
            xs.append((f + last_f) / 2)
            ys.append((a - last_a) / (f - last_f))
            ws.append(f - last_f)
            last_a, last_f = a, f
    if len(xs) < MIN_TREND_INTERVALS or (last_f - c.f[0]) * 100 < 4 * MIN_PROGRESS_FOR_RATE:
        return None
    total = sum(ws)
    mx = sum(w * x for w, x in zip(ws, xs, strict=True)) / total
    my = sum(w * y for w, y in zip(ws, ys, strict=True)) / total
    sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs, strict=True))
    if sxx <= 0 or my <= 0:
        return None
    beta = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys, strict=True)) / sxx
    return _Pace(my - beta * mx, beta, my / 3, 3 * my)


# -- one phase ------------------------------------------------------------------------------


def _fraction(phase: PhaseState) -> float:
    """Progress 0..1; for a phase reporting counts, done over the latest total."""
    if phase.total and phase.total > 0 and phase.done > 0 and not phase.sub_tasks:
        return min(1.0, phase.done / phase.total)
    return phase_progress(phase) / 100.0


def _total_revision(phase: PhaseState, history: ProgressHistory | None) -> float:
    """The phase's total now over the first total it reported (1 without counts or history)."""
    if history is None or not phase.total:
        return 1.0
    first = next((s.total for s in history.samples.get(phase.id, ()) if s.total), None)
    return phase.total / first if first else 1.0


def _sample_fraction(phase: PhaseState, s: Sample) -> float:
    if s.done is not None and phase.total and not phase.sub_tasks:
        return min(1.0, s.done / phase.total)
    return s.progress / 100.0


def _curve(state: MigrationState, phase: PhaseState, now: datetime, samples: Sequence[Sample]) -> _Curve:
    """The current attempt's progress on the migration's active-time axis, ending now."""
    assert phase.started_at is not None
    origin = state.started_at or phase.started_at
    began = phase.started_at
    raw: list[tuple[datetime, float]] = [(began, 0.0 if phase.attempts <= 1 else -1.0)]
    top = 0.0
    for s in samples:
        if began <= s.at <= now:
            top = max(top, _sample_fraction(phase, s))
            raw.append((s.at, top))
    frac = _fraction(phase)
    raw.append((now, max(top, frac)))
    if raw[0][1] < 0:  # a retry: progress carried over from earlier attempts
        raw[0] = (began, raw[1][1])
    if len(raw) > CURVE_POINTS:  # enough to judge a shape; the estimate's cost stays flat
        stride = len(raw) / (CURVE_POINTS - 1)
        raw = [raw[int(i * stride)] for i in range(CURVE_POINTS - 1)] + [raw[-1]]
    if state.pauses or state.throttles:
        return _Curve([(rate_seconds(state, origin, t), f) for t, f in raw])
    return _Curve([((t - origin).total_seconds(), f) for t, f in raw])


def _plan_part(
    phase: PhaseState, base: float | None, calibration: float, spread: float, typical: float | None,
    prior_used: bool, n_measured: int,
) -> tuple[float, float, str, str] | None:
    """(total seconds, spread, method, reason) from the plan, or None."""
    if base is not None:
        how = "its duration in the previous run" if prior_used else "its plan"
        cal = f" x {calibration:.2f} (calibration from {n_measured} measured phase(s))" if n_measured else ""
        return base * calibration, spread, ("prior" if prior_used else "plan"), f"no usable rate yet: {how}{cal}"
    if typical is not None:
        return typical, spread, "typical", "no plan and no rate: the typical duration of finished phases"
    return None


def _in_progress(
    state: MigrationState, phase: PhaseState, now: datetime, plan_total: float | None, plan_spread: float,
    samples: Sequence[Sample] | None,
) -> _Part | None:
    frac = _fraction(phase)
    plan_left = None if plan_total is None else plan_total * (1.0 - frac)
    active = phase.prior_active_seconds + rate_seconds(state, phase.started_at, now)
    avg_left = None
    if frac * 100 >= MIN_PROGRESS_FOR_RATE and active > 0 and frac < 1.0:
        avg_left = active / frac * (1.0 - frac)
    elif frac >= 1.0:
        avg_left = 0.0
    curve = _curve(state, phase, now, samples) if samples else None
    scored = _scored(curve, frac, active, phase, plan_total) if curve is not None else None
    if scored is not None:
        return scored
    # not enough history to judge the estimators: blend the plan and the average by progress
    if plan_left is None and avg_left is None:
        return None
    if plan_left is None:
        assert avg_left is not None
        return _Part(avg_left, PLAN_SPREAD, "average", "no plan: its average pace so far")
    if avg_left is None:
        return _Part(plan_left, plan_spread, "plan", "too little progress for a rate: its plan")
    point = frac * avg_left + (1.0 - frac) * plan_left
    disagreement = abs(math.log(max(avg_left, 1e-9) / max(plan_left, 1e-9))) / 2 if plan_left and avg_left else 0.0
    spread = max(disagreement, 0.05)
    method = "average" if frac >= 0.5 else "plan"
    return _Part(point, spread, method,
                 f"its plan and its average pace blended by progress ({frac:.0%} observed)")


def _scored(curve: _Curve, frac: float, active: float, phase: PhaseState, plan_total: float | None) -> _Part | None:
    """The estimators judged on the progress already made; None without enough history."""
    a0, now = curve.a[0], curve.a[-1]
    span = now - a0
    if span <= 0 or frac >= 1.0:
        return None
    earlier = phase.prior_active_seconds
    done_before = curve.f[0] if phase.attempts > 1 else 0.0

    def makers(upto: float) -> dict[str, _Pace | None]:
        out = {
            "average": _average(curve, upto, earlier, done_before if earlier == 0 else 0.0),
            "recent": _recent(curve, upto),
            "trend": _trend(curve, upto),
            "flowing": _flowing(curve, upto),
        }
        if plan_total is not None and plan_total > 0:
            out["plan"] = _const(plan_total)
        return out

    errors: dict[str, list[float]] = {}
    for share in SCORE_AT:
        # judged from the instants the phase reached shares of its progress so far: report
        # instants, so an estimator is not asked to foresee the end of a stall it is inside
        at = curve.a_reach(curve.f[0] + share * (frac - curve.f[0]))
        f_then = curve.f_at(at)
        if (frac - f_then) * 100 < MIN_PROGRESS_FOR_RATE or (f_then - curve.f[0]) * 100 < MIN_PROGRESS_FOR_RATE:
            continue
        actual = curve.a_reach(frac) - at
        if actual <= 0:
            continue
        for name, pace in makers(at).items():
            if pace is not None:
                errors.setdefault(name, []).append(math.log(actual / max(pace.time(f_then, frac), 1e-9)))
    now_paces = {k: v for k, v in makers(now).items() if v is not None}
    judged = {k: v for k, v in errors.items() if k in now_paces and len(v) >= 2}
    if not judged:
        return None
    score = {k: statistics.fmean(abs(e) for e in v) for k, v in judged.items()}
    best = min(score, key=lambda k: score[k])
    # when even the best has predicted badly (bursty work), none is trusted alone: they are mixed
    temperature = max(TEMPERATURE, score[best] / 2)
    weights = {k: math.exp(-(s - score[best]) / temperature) for k, s in score.items()}
    total_w = sum(weights.values())
    left = {k: now_paces[k].time(frac, 1.0) for k in weights}
    # mixed in log space (a weighted geometric mean): one estimator far out pulls less
    logs = {k: math.log(max(v, 1e-9)) for k, v in left.items()}
    centre = sum(weights[k] * logs[k] for k in weights) / total_w
    point = math.exp(centre)
    # the mix's own errors at the scoring instants: the spread it has actually shown
    n = min(len(judged[k]) for k in weights)
    mix_errors = [sum(weights[k] * judged[k][i] for k in weights) / total_w for i in range(n)]
    # ... measured over horizons of about a third of the phase so far: errors grow with the
    # horizon (as a random walk's, with its square root), and the rest may be longer
    horizon = max(1.0, min(4.0, point / max(0.35 * span, 1e-9)))
    spread = max(math.sqrt(statistics.fmean(e * e for e in mix_errors)), 0.03) * math.sqrt(horizon)
    # and the estimators' disagreement about what is left (weighted, log scale)
    disagreement = sum(weights[k] * (logs[k] - centre) ** 2 for k in weights) / total_w
    spread = min(MAX_SPREAD, math.sqrt(spread * spread + disagreement))
    others = ", ".join(f"{k} {score[k]:.0%}" for k in sorted(score, key=lambda k: score[k]) if k != best)
    reason = (f"{best} predicted the progress made so far best (mean error {score[best]:.0%}"
              + (f"; {others}" if others else "") + ")")
    return _Part(point, spread, best, reason)


# -- the migration --------------------------------------------------------------------------


def _active_total(state: MigrationState, p: PhaseState, now: datetime) -> float:
    return p.prior_active_seconds + rate_seconds(state, p.started_at, p.completed_at or now)


def _weighted_log_stats(items: Sequence[tuple[float, float]]) -> tuple[float, float | None]:
    """Of (log ratio, weight) pairs: the log of the weighted mean ratio (with plan weights, the
    ratio of the sums: what the total of many pending phases scales by) and the predictive sd of
    the log ratios (None with fewer than two, or one that outweighs the rest)."""
    total = sum(w for _, w in items)
    mean = math.log(sum(math.exp(v) * w for v, w in items) / total)
    n_eff = total * total / sum(w * w for _, w in items)  # Kish's effective sample size
    if len(items) < 2 or n_eff < 1.5:
        return mean, None
    centre = sum(v * w for v, w in items) / total
    var = sum(w * (v - centre) ** 2 for v, w in items) / total
    # the spread of the next phase's ratio, not of these: unbiased, and widened for a new draw
    return mean, math.sqrt(var * n_eff / (n_eff - 1) * (1 + 1 / n_eff))


def estimate(
    state: MigrationState, now: datetime, history: ProgressHistory | None = None,
    prior: Mapping[str, float] | None = None,
) -> Estimate:
    """The completion estimate of ``state`` at ``now``. ``history``: the progress samples folded
    from the event log (``core/eta_history.py``); ``prior``: active seconds per phase id in a
    previous run of the same plan (a rehearsal), used instead of the plan where given."""
    prior = prior or {}
    graph = _graph_estimate(state, now, history, prior)
    # one phase: its own estimators (its average pace is the linear read) are already judged
    # against the progress it made, a sharper test than the one below
    if (history is None or graph.remaining_seconds is None or graph.remaining_seconds <= 0 or state.partial
            or len(state.phases) < 2):
        return graph
    return _overall(state, now, history, prior, graph)


# -- the whole migration's progress: the graph against the progress bar's estimators ----------


def _state_at(state: MigrationState, t: datetime, history: ProgressHistory) -> MigrationState:
    """The migration as it stood at ``t``, rebuilt from its history: what an estimate read then
    (phases finished by then, those started with their progress then, the rest pending)."""
    phases: dict[str, PhaseState] = {}
    for pid, p in state.phases.items():
        if p.status.finished and p.completed_at is not None and p.completed_at <= t:
            phases[pid] = p
        elif p.started_at is not None and p.started_at <= t:
            last: Sample | None = None
            for sample in history.samples.get(pid, ()):
                if sample.at > t:
                    break
                last = sample
            phases[pid] = replace(
                p, status=Status.IN_PROGRESS, completed_at=None, sub_tasks={}, sub_task_counts=None,
                progress=last.progress if last else 0.0, done=(last.done or 0) if last else 0,
                total=last.total if last else None)
        else:
            phases[pid] = replace(p, status=Status.PENDING, started_at=None, completed_at=None, progress=0.0,
                                  done=0, total=None, sub_tasks={}, sub_task_counts=None, attempts=0)
    return replace(state, phases=phases, finished_at=None, partial=False)


def _overall_curve(state: MigrationState, history: ProgressHistory, now: datetime) -> _Curve | None:
    """Overall progress (0..1, phases weighed by their plans as the dashboard weighs them) over
    the migration's active time, at every report."""
    if state.started_at is None:
        return None
    ids = list(state.phases)
    weights = dict(zip(ids, _weights([state.phases[i].estimated_seconds for i in ids]), strict=True))
    total_w = sum(weights.values())
    moves: list[tuple[datetime, str, float]] = []
    for pid, p in state.phases.items():
        for sample in history.samples.get(pid, ()):
            moves.append((sample.at, pid, _sample_fraction(p, sample)))
        if p.status.finished and p.completed_at is not None:
            moves.append((p.completed_at, pid, 1.0))
    moves.sort(key=lambda m: m[0])
    current = dict.fromkeys(ids, 0.0)
    points: list[tuple[float, float]] = [(0.0, 0.0)]
    top = done = 0.0
    for at, pid, f in moves:
        if at > now or at < state.started_at:
            continue
        if f > current[pid]:
            done += weights[pid] * (f - current[pid])
            current[pid] = f
        top = max(top, done / total_w)
        a = rate_seconds(state, state.started_at, at)
        if a > points[-1][0]:
            points.append((a, top))
        else:
            points[-1] = (points[-1][0], top)
    if len(points) < 2:
        return None
    return _Curve(points)


def _bar_remaining(c: _Curve, upto: float, smoothed: bool) -> float | None:
    """What a progress bar fed the overall progress would say is left at active time ``upto``:
    its elapsed time over its progress (``linear``), or tqdm's exponential moving average of the
    time and the progress between moves (``smoothed``)."""
    f_now = c.f_at(upto)
    if f_now * 100 < MIN_PROGRESS_FOR_RATE or f_now >= 1.0:
        return None
    if not smoothed:
        return upto / f_now * (1.0 - f_now)
    dt = df = 0.0
    n = 0
    last_a, last_f = c.a[0], c.f[0]
    for a, f in zip(c.a, c.f, strict=True):
        if a > upto:
            break
        if f > last_f:
            dt = SMOOTHING * (a - last_a) + (1 - SMOOTHING) * dt
            df = SMOOTHING * (f - last_f) + (1 - SMOOTHING) * df
            n += 1
            last_a, last_f = a, f
    if n < MIN_TREND_INTERVALS or df <= 0:
        return None
    return dt / df * (1.0 - f_now)


def _overall(
    state: MigrationState, now: datetime, history: ProgressHistory, prior: Mapping[str, float], graph: Estimate,
) -> Estimate:
    """The graph's estimate, and two progress bars' read of the overall progress (on active
    time), each asked what it would have said earlier in this run and scored by how well the
    pace it implied then matched the progress made since; mixed as the phase estimators are."""
    curve = _overall_curve(state, history, now)
    assert graph.remaining_seconds is not None
    if curve is None:
        return graph
    a_now = curve.a[-1]
    f_now = curve.f[-1]
    if a_now <= 0 or f_now >= 1.0:
        return graph
    assert state.started_at is not None

    def candidates(at: datetime, upto: float, st: MigrationState) -> dict[str, float | None]:
        g = graph.remaining_seconds if st is state else _graph_estimate(st, at, history, prior).remaining_seconds
        return {"graph": g, "overall-linear": _bar_remaining(curve, upto, False),
                "overall-smoothed": _bar_remaining(curve, upto, True)}

    now_left = {k: v for k, v in candidates(now, a_now, state).items() if v is not None and v > 0}
    # the truth at an earlier instant is not known yet: the time run since plus what the graph,
    # knowing more now, says is left stands in for it (the graph's own answer then is judged
    # against it too: it must have agreed with what it learned since)
    reference = graph.remaining_seconds
    errors: dict[str, list[float]] = {}
    for share in OVERALL_SCORE_AT:
        upto = share * a_now
        f_then = curve.f_at(upto)
        if (f_now - f_then) * 100 < MIN_PROGRESS_FOR_RATE or f_then * 100 < MIN_PROGRESS_FOR_RATE:
            continue
        at = _wall_at(state, upto, now)
        if at is None:
            continue
        for name, left in candidates(at, upto, _state_at(state, at, history)).items():
            if left is None or left <= 0:
                continue
            errors.setdefault(name, []).append(math.log((a_now - upto + reference) / left))
    judged = {k: v for k, v in errors.items() if k in now_left and len(v) >= 2}
    if "graph" not in judged or len(judged) < 2:
        return graph
    # the later instants count more (each twice the one before): the run's recent behaviour
    score = {}
    for k, v in judged.items():
        ws = [OVERALL_RECENCY ** i for i in range(len(v))]
        score[k] = sum(w * abs(e) for w, e in zip(ws, v, strict=True)) / sum(ws)
    best = min(score, key=lambda k: score[k])
    temperature = max(TEMPERATURE, score[best] / 2)
    weights = {k: math.exp(-(s - score[best]) / temperature) for k, s in score.items()}
    total_w = sum(weights.values())
    logs = {k: math.log(now_left[k]) for k in weights}
    centre = sum(weights[k] * logs[k] for k in weights) / total_w
    point = math.exp(centre)
    # the graph's interval, moved to the mix and widened by the candidates' disagreement
    assert graph.earliest is not None and graph.latest is not None
    disagreement = sum(weights[k] * (logs[k] - centre) ** 2 for k in weights) / total_w

    def widened(end: datetime) -> float:
        spread = abs(math.log(max((end - now).total_seconds(), 1e-9) / graph_left)) / Z90
        return math.sqrt(spread * spread + disagreement) * Z90

    graph_left = graph.remaining_seconds
    low = point * math.exp(-widened(graph.earliest))
    high = point * math.exp(widened(graph.latest))
    if best == "graph":
        method, reason = graph.method, graph.reason
    else:
        others = ", ".join(f"{k} {score[k]:.0%}" for k in sorted(score, key=lambda k: score[k]) if k != best)
        method = best
        reason = (f"{best} predicted the overall progress made so far best (mean error {score[best]:.0%}; "
                  f"{others})")
    return replace(graph, completion=now + timedelta(seconds=point), earliest=now + timedelta(seconds=low),
                   latest=now + timedelta(seconds=high), remaining_seconds=point, method=method, reason=reason)


def _wall_at(state: MigrationState, active: float, now: datetime) -> datetime | None:
    """The instant at which the migration had run ``active`` seconds of active time (bisection
    on the wall clock: pauses and throttles are few)."""
    assert state.started_at is not None
    lo_s, hi_s = 0.0, (now - state.started_at).total_seconds()
    if hi_s <= 0:
        return None
    for _ in range(50):
        mid = (lo_s + hi_s) / 2
        if rate_seconds(state, state.started_at, state.started_at + timedelta(seconds=mid)) < active:
            lo_s = mid
        else:
            hi_s = mid
    return state.started_at + timedelta(seconds=hi_s)


def _graph_estimate(
    state: MigrationState, now: datetime, history: ProgressHistory | None, prior: Mapping[str, float],
) -> Estimate:

    def base_of(p: PhaseState) -> float | None:
        got = prior.get(p.id)
        if got is not None and got > 0:
            return got
        if p.estimated_seconds is None:
            return None
        # a plan made for the total first declared grows with a revised total
        return p.estimated_seconds * _total_revision(p, history)

    finished_ratios: list[tuple[float, float]] = []
    for p in state.phases.values():
        base = base_of(p)
        if p.status is Status.COMPLETED and base and p.started_at:
            actual = _active_total(state, p, now)
            if actual > 0:
                finished_ratios.append((math.log(actual / base), base))
    finished_cal = 1.0
    finished_sd: float | None = None
    if finished_ratios:
        m, finished_sd = _weighted_log_stats(finished_ratios)
        finished_cal = min(CAL_CLAMP[1], max(CAL_CLAMP[0], math.exp(m)))
    if state.finished_at is not None:
        f = state.finished_at
        return Estimate(f, f, f, 0.0, (), finished_cal, confidence="high")
    if state.control is Control.CANCELLED:
        return Estimate(None, None, None, None, (), finished_cal, unknown_reason="the migration was cancelled")
    durations = [_active_total(state, p, now) for p in state.phases.values()
                 if p.status is Status.COMPLETED and p.started_at]
    typical = statistics.median(durations) if durations else None
    plan_spread = finished_sd if finished_sd is not None else PLAN_SPREAD

    parts: dict[str, _Part] = {}
    running_ratios: list[tuple[float, float]] = []
    for pid, p in state.phases.items():
        if p.status.finished:
            parts[pid] = _Part(0.0, 0.0, "done", "finished")
            continue
        if p.status is not Status.IN_PROGRESS or p.started_at is None:
            continue
        base = base_of(p)
        plan_total = None if base is None else base * finished_cal
        samples = history.samples.get(pid) if history is not None else None
        part = _in_progress(state, p, now, plan_total if plan_total is not None else typical, plan_spread, samples)
        if part is None:
            return _unknown(state, finished_cal, f"phase {pid!r} has no estimated_duration and too little "
                                                 "progress for a rate, and no phase has finished yet")
        parts[pid] = part
        frac = _fraction(p)
        if base and frac > 0:
            total = _active_total(state, p, now) + part.remaining
            if total > 0:  # no time spent and nothing left: nothing to learn about the plan yet
                running_ratios.append((math.log(total / base), base * frac))
    ratios = finished_ratios + running_ratios
    calibration = finished_cal
    pending_spread = PLAN_SPREAD
    if ratios:
        m, sd = _weighted_log_stats(ratios)
        calibration = min(CAL_CLAMP[1], max(CAL_CLAMP[0], math.exp(m)))
        # fewer than two measured phases: how far the one measured strays from its plan
        pending_spread = sd if sd is not None else max(abs(m), 0.1)
        pending_spread = max(pending_spread, 0.05)
    n_measured = len(ratios)
    for pid, p in state.phases.items():
        if pid in parts:
            continue
        base = base_of(p)
        got = _plan_part(p, base, calibration, pending_spread, typical, pid in prior, n_measured)
        if got is None:
            return _unknown(state, calibration, f"phase {pid!r} has no estimated_duration and no progress, "
                                                "and no phase has finished to give a typical duration")
        total, spread, method, reason = got
        parts[pid] = _Part(total, spread if base is not None else plan_spread, method, reason)

    deps = {pid: p.dependencies for pid, p in state.phases.items()}
    finish = longest_finish(deps, lambda pid: parts[pid].remaining)
    low = longest_finish(deps, lambda pid: parts[pid].remaining * math.exp(-Z90 * parts[pid].spread))
    high = longest_finish(deps, lambda pid: parts[pid].remaining * math.exp(Z90 * parts[pid].spread))
    point_s = _bounded(max(finish.values(), default=0.0))
    low_s = min(point_s, _bounded(max(low.values(), default=0.0)))
    high_s = max(point_s, _bounded(max(high.values(), default=0.0)))
    path = tuple(p for p in critical_path(deps, finish) if not state.phases[p].status.finished)
    driver = max(path, key=lambda pid: parts[pid].remaining) if path else None
    width = (high_s - low_s) / point_s if point_s > 0 else 0.0
    return Estimate(
        completion=now + timedelta(seconds=point_s),
        earliest=now + timedelta(seconds=low_s),
        latest=now + timedelta(seconds=high_s),
        remaining_seconds=point_s,
        critical_path=path,
        calibration=calibration,
        driver=driver,
        method=parts[driver].method if driver else None,
        reason=parts[driver].reason if driver else None,
        confidence="high" if width <= 0.3 else "medium" if width <= 0.8 else "low",
    )


#: the farthest an estimate reaches (about a century): a wide spread's upper bound, exp(z * spread)
#: times the remaining work, can pass what a datetime can hold
HORIZON_SECONDS = 100 * 365 * 86_400.0


def _bounded(seconds: float) -> float:
    return HORIZON_SECONDS if not seconds <= HORIZON_SECONDS else max(seconds, 0.0)  # NaN and inf too


def _unknown(state: MigrationState, calibration: float, reason: str) -> Estimate:
    return Estimate(None, None, None, None, (), calibration, unknown_reason=reason)
