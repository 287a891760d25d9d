"""Scores of replayed traces, the targets, and the Markdown tables for docs/benchmarks.md.

* APE: |predicted remaining - true remaining| / true remaining, in percent; an unknown
  estimate counts as 100% (as wrong as saying "done now").
* Coverage (migratrack only): the share of checkpoints whose true end lies inside the reported
  interval [earliest, latest].
* Movement: how far the predicted completion time moved between consecutive checkpoints, in
  percent of the run's true duration (mean of the four moves); moves next to an unknown
  estimate are left out.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass

from .replay import TraceResult

ESTIMATORS = ("migratrack", "linear", "tqdm")


@dataclass
class Scores:
    mape: dict[str, float]
    movement: dict[str, float]
    coverage: float
    unknown: dict[str, int]


def ape(predicted: float | None, true: float) -> float:
    if predicted is None:
        return 100.0
    return 100.0 * abs(predicted - true) / true


def score(result: TraceResult) -> Scores:
    mape: dict[str, float] = {}
    movement: dict[str, float] = {}
    unknown: dict[str, int] = {}
    cps = result.checkpoints
    for name in ESTIMATORS:
        mape[name] = statistics.fmean(ape(c.readings[name].remaining, c.true_remaining) for c in cps)
        unknown[name] = sum(c.readings[name].remaining is None for c in cps)
        moves = []
        for a, b in itertools.pairwise(cps):
            ra, rb = a.readings[name].remaining, b.readings[name].remaining
            if ra is None or rb is None:
                continue
            # completion = now + remaining; now moved by (true_remaining a - true_remaining b)
            moved = (rb - ra) + (a.true_remaining - b.true_remaining)
            moves.append(100.0 * abs(moved) / result.wall_total)
        movement[name] = statistics.fmean(moves) if moves else 0.0
    inside = 0
    for c in cps:
        r = c.readings["migratrack"]
        if r.low is not None and r.high is not None and r.low <= c.true_remaining <= r.high:
            inside += 1
    return Scores(mape, movement, 100.0 * inside / len(cps), unknown)


@dataclass
class Verdict:
    suite: dict[str, float]
    movement: dict[str, float]
    coverage: float
    improvement: float  # 1 - migratrack / better baseline (suite MAPE)
    worst_ratio: float  # max over traces of migratrack / better baseline there
    worst_trace: str
    per_trace: dict[str, Scores]

    @property
    def targets(self) -> dict[str, bool]:
        return {
            "MAPE >= 40% lower than the better baseline": self.improvement >= 0.40,
            "no trace more than 10% worse than its better baseline": self.worst_ratio <= 1.10,
            "p10-p90 interval holds the true end in 70-90% of checkpoints": 70.0 <= self.coverage <= 90.0,
            "moves less than either baseline": self.movement["migratrack"] < min(
                self.movement["linear"], self.movement["tqdm"]),
        }


def verdict(results: list[TraceResult]) -> Verdict:
    per = {r.trace.name: score(r) for r in results}
    suite = {n: statistics.fmean(s.mape[n] for s in per.values()) for n in ESTIMATORS}
    movement = {n: statistics.fmean(s.movement[n] for s in per.values()) for n in ESTIMATORS}
    coverage = statistics.fmean(s.coverage for s in per.values())
    better = min(suite["linear"], suite["tqdm"])
    ratios = {name: s.mape["migratrack"] / max(min(s.mape["linear"], s.mape["tqdm"]), 1e-9)
              for name, s in per.items()}
    worst = max(ratios, key=lambda k: ratios[k])
    return Verdict(suite, movement, coverage, 1.0 - suite["migratrack"] / better, ratios[worst], worst, per)


def markdown(results: list[TraceResult], v: Verdict) -> str:
    lines = [
        "| trace | shape | MAPE migratrack | MAPE linear | MAPE tqdm | vs better baseline | "
        "interval coverage | movement migratrack / linear / tqdm |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = v.per_trace[r.trace.name]
        better = min(s.mape["linear"], s.mape["tqdm"])
        lines.append(
            f"| {r.trace.name} | {r.trace.shape} | {s.mape['migratrack']:.1f}% | {s.mape['linear']:.1f}% | "
            f"{s.mape['tqdm']:.1f}% | {s.mape['migratrack'] / max(better, 1e-9):.2f}x | {s.coverage:.0f}% | "
            f"{s.movement['migratrack']:.1f} / {s.movement['linear']:.1f} / {s.movement['tqdm']:.1f} |")
    lines.append(
        f"| **suite** | {len(results)} traces, {sum(len(r.checkpoints) for r in results)} checkpoints | "
        f"**{v.suite['migratrack']:.1f}%** | {v.suite['linear']:.1f}% | {v.suite['tqdm']:.1f}% | "
        f"{1 - v.improvement:.2f}x | **{v.coverage:.0f}%** | "
        f"**{v.movement['migratrack']:.1f}** / {v.movement['linear']:.1f} / {v.movement['tqdm']:.1f} |")
    return "\n".join(lines)


def checkpoint_table(result: TraceResult) -> str:
    """Every checkpoint of one trace: true and predicted remaining minutes, and the method."""
    lines = ["| at | true left | migratrack [interval] | linear | tqdm | method |", "|---|---|---|---|---|---|"]

    def m(x: float | None) -> str:
        return "unknown" if x is None else f"{x / 60:.0f} min"

    for c in result.checkpoints:
        r = c.readings["migratrack"]
        interval = "" if r.low is None else f" [{m(r.low)}, {m(r.high)}]"
        lines.append(f"| {c.fraction:.0%} | {m(c.true_remaining)} | {m(r.remaining)}{interval} | "
                     f"{m(c.readings['linear'].remaining)} | {m(c.readings['tqdm'].remaining)} | "
                     f"{r.info.get('method') or ''} |")
    return "\n".join(lines)
