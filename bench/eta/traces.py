"""Progress traces: what really happened in a migration, generated deterministically from a seed.

A trace is a plan (what the author declared: phases, dependencies, estimates in minutes) and the
truth (how long each phase really took, in active seconds, and how its progress grew over that
time). Pauses are operator pauses: wall time in which nothing runs. The replay (``replay.py``)
turns a trace into SDK calls at the right instants of an injected clock.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

#: fraction of the phase's active time elapsed -> fraction of its progress
Profile = Callable[[float], float]


def linear(u: float) -> float:
    return u


def from_time_curve(time_of_progress: Callable[[float], float]) -> Profile:
    """The progress profile of a phase whose (normalised) time to reach progress p is
    ``time_of_progress(p)`` (increasing, 0 at 0, 1 at 1): inverted by bisection."""

    def profile(u: float) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if time_of_progress(mid) < u:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    return profile


def slowing(k: float = 2.0) -> Profile:
    """Each item costs more than the last (a B-tree filling): the rate ends at 1/(1+k) of its start."""
    return from_time_curve(lambda p: (p + k * p * p / 2) / (1 + k / 2))


def speeding(k: float = 0.7) -> Profile:
    """Each item costs less than the last (a cache warming): the rate ends at 1/(1-k) of its start."""
    return from_time_curve(lambda p: (p - k * p * p / 2) / (1 - k / 2))


def stalled(at: float, length: float) -> Profile:
    """Constant rate, but no progress at all for ``length`` of the phase's time from ``at``."""
    rate = 1.0 / (1.0 - length)

    def profile(u: float) -> float:
        if u < at:
            return u * rate
        if u < at + length:
            return at * rate
        return min(1.0, (u - length) * rate)

    return profile


def bursty(rng: random.Random, bursts: int = 14) -> Profile:
    """Progress in bursts separated by idle gaps of random length (a queue drained in batches)."""
    edges: list[tuple[float, float]] = []  # (time, progress) corners
    t_parts = [rng.expovariate(1.0) for _ in range(2 * bursts)]
    p_parts = [rng.uniform(0.5, 1.5) for _ in range(bursts)]
    t_total, p_total = sum(t_parts), sum(p_parts)
    t = p = 0.0
    edges.append((0.0, 0.0))
    for i in range(bursts):
        t += t_parts[2 * i] / t_total  # a burst: progress moves
        p += p_parts[i] / p_total
        edges.append((t, p))
        t += t_parts[2 * i + 1] / t_total  # a gap: nothing moves
        edges.append((t, p))
    edges[-1] = (1.0, 1.0)

    def profile(u: float) -> float:
        for (t0, p0), (t1, p1) in itertools.pairwise(edges):
            if u <= t1:
                return p0 if t1 == t0 else p0 + (p1 - p0) * (u - t0) / (t1 - t0)
        return 1.0

    return profile


@dataclass(frozen=True)
class Sub:
    id: str
    plan_min: float | None
    seconds: float


@dataclass(frozen=True)
class Counts:
    """The phase reports done/total; it first believes the total is ``first_total`` and revises
    it to the true ``total`` when ``revise_at`` of its time has passed."""

    total: int
    first_total: int
    revise_at: float


@dataclass
class PhaseSpec:
    id: str
    plan_min: float | None
    seconds: float  # true active duration
    deps: tuple[str, ...] = ()
    profile: Profile = linear
    subs: tuple[Sub, ...] = ()
    counts: Counts | None = None


@dataclass
class Trace:
    name: str
    shape: str
    phases: list[PhaseSpec]
    #: operator pauses: (active second at which it starts, wall seconds it lasts)
    pauses: list[tuple[float, float]] = field(default_factory=list)
    #: a rehearsal of the same plan, replayed (not scored) before this run
    rehearsal: Trace | None = None

    def schedule(self) -> dict[str, tuple[float, float]]:
        """(start, end) of each phase in active seconds: a phase starts when its dependencies end."""
        out: dict[str, tuple[float, float]] = {}
        for p in self.phases:  # declared in dependency order
            start = max((out[d][1] for d in p.deps), default=0.0)
            out[p.id] = (start, start + p.seconds)
        return out

    @property
    def active_total(self) -> float:
        return max(end for _, end in self.schedule().values())

    def wall(self, active: float) -> float:
        """Wall seconds from the start at which ``active`` active seconds have run."""
        return active + sum(length for at, length in self.pauses if at < active)

    @property
    def wall_total(self) -> float:
        return self.wall(self.active_total)


def _noise(rng: random.Random, sigma: float) -> float:
    return math.exp(rng.gauss(0.0, sigma))


def _chain(prefix: str, plans: list[float], truths: list[float], profiles: list[Profile] | None = None
           ) -> list[PhaseSpec]:
    out = []
    for i, (plan, true) in enumerate(zip(plans, truths, strict=True)):
        out.append(PhaseSpec(f"{prefix}{i + 1}", plan, true * 60.0, (f"{prefix}{i}",) if i else (),
                             profiles[i] if profiles else linear))
    return out


def build_traces(seed: int = 15) -> list[Trace]:
    """The suite: one trace per shape users complain about, all from ``seed``."""
    rng = random.Random(seed)
    traces: list[Trace] = []

    plans = [20.0, 60.0, 30.0]
    traces.append(Trace("constant", "constant rate, plans within 10%",
                        _chain("p", plans, [p * _noise(rng, 0.1) for p in plans])))

    traces.append(Trace("slowing", "a phase that slows as it goes (B-tree filling); plan 20% short", [
        PhaseSpec("setup", 5, 5 * 60 * _noise(rng, 0.1)),
        PhaseSpec("load", 100, 120 * 60, ("setup",), slowing(2.0)),
    ]))

    traces.append(Trace("speeding", "a phase that speeds up (cache warming); plan 30% long", [
        PhaseSpec("setup", 5, 5 * 60 * _noise(rng, 0.1)),
        PhaseSpec("load", 100, 70 * 60, ("setup",), speeding(0.7)),
    ]))

    traces.append(Trace("stall", "a long stall (a lock wait, 30% of the phase), then resume", [
        PhaseSpec("schema", 10, 10 * 60 * _noise(rng, 0.1)),
        PhaseSpec("copy", 60, 85 * 60, ("schema",), stalled(0.3, 0.3)),
        PhaseSpec("verify", 10, 10 * 60 * _noise(rng, 0.1), ("copy",)),
    ]))

    plans = [15.0, 60.0, 15.0]
    traces.append(Trace("pause", "an operator pause of 2 hours in the middle of the copy",
                        _chain("p", plans, [p * _noise(rng, 0.1) for p in plans]),
                        pauses=[(45 * 60, 2 * 3600)]))

    traces.append(Trace("bursty", "work that comes in bursts with idle gaps", [
        PhaseSpec("drain", 60, 60 * 60 * _noise(rng, 0.15), (), bursty(rng)),
        PhaseSpec("replay", 30, 30 * 60 * _noise(rng, 0.15), ("drain",), bursty(rng)),
    ]))

    traces.append(Trace("revised-total", "counts against a total that is revised from 1.0M to 2.5M mid-run", [
        PhaseSpec("scan", 5, 5 * 60 * _noise(rng, 0.1)),
        PhaseSpec("rows", 40, 100 * 60, ("scan",), counts=Counts(2_500_000, 1_000_000, 0.35)),
        PhaseSpec("check", 10, 10 * 60 * _noise(rng, 0.1), ("rows",)),
    ]))

    plans = [10.0, 30.0, 20.0, 25.0, 15.0]
    traces.append(Trace("optimistic-chain", "a chain whose plans are all half the truth",
                        _chain("p", plans, [2.0 * p * _noise(rng, 0.08) for p in plans])))

    traces.append(Trace("parallel-mixed", "parallel branches: one plan optimistic, one pessimistic", [
        PhaseSpec("setup", 10, 10 * 60 * _noise(rng, 0.1)),
        PhaseSpec("db", 60, 95 * 60, ("setup",)),
        PhaseSpec("files", 80, 45 * 60, ("setup",)),
        PhaseSpec("search", 40, 42 * 60, ("setup",)),
        PhaseSpec("cutover", 10, 10 * 60 * _noise(rng, 0.1), ("db", "files", "search")),
    ]))

    sizes = sorted((rng.paretovariate(1.2) for _ in range(12)), reverse=True)
    rng.shuffle(sizes)
    subs = []
    for i, size in enumerate(sizes):
        seconds = size * 120.0 * _noise(rng, 0.15) * (1.6 if size == max(sizes) else 1.0)
        subs.append(Sub(f"table{i + 1}", size * 2.0, seconds))
    traces.append(Trace("heavy-tail", "tables of Pareto sizes, the huge one 60% slower than planned", [
        PhaseSpec("prepare", 5, 5 * 60 * _noise(rng, 0.1)),
        PhaseSpec("tables", sum(s.plan_min or 0 for s in subs), sum(s.seconds for s in subs), ("prepare",),
                  subs=tuple(subs)),
    ]))

    plans = [rng.uniform(1.0, 3.0) for _ in range(30)]
    traces.append(Trace("many-small", "30 small phases in a chain, plans unbiased but noisy",
                        _chain("s", plans, [p * _noise(rng, 0.35) for p in plans])))

    plans = [10.0, 40.0, 30.0, 10.0]
    factors = [1.8, 0.7, 1.4, 2.0]
    rehearsal_truth = [p * f * _noise(rng, 0.1) for p, f in zip(plans, factors, strict=True)]
    rehearsal = Trace("rehearsal", "the rehearsal", _chain("p", plans, rehearsal_truth))
    traces.append(Trace("rehearsed", "the real run of a plan rehearsed before (per-phase biases repeat)",
                        _chain("p", plans, [t * _noise(rng, 0.06) for t in rehearsal_truth]),
                        rehearsal=rehearsal))
    return traces
