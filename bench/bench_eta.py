"""Completion-estimate benchmark: migratrack's estimate against linear extrapolation and tqdm's
smoothed rate on twelve progress traces replayed through the SDK (see bench/eta/).

Run: .venv/bin/python bench/bench_eta.py [--steps N] [--seed S] [--detail]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.eta.replay import replay
from bench.eta.score import checkpoint_table, markdown, verdict
from bench.eta.traces import build_traces


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400, help="progress reports per trace")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--detail", action="store_true", help="print every checkpoint of every trace")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = [replay(t, steps=args.steps) for t in build_traces(args.seed)]
    v = verdict(results)
    print(markdown(results, v))
    if args.detail:
        for r in results:
            print(f"\n{r.trace.name}\n{checkpoint_table(r)}")
    print()
    for target, ok in v.targets.items():
        print(f"{'met    ' if ok else 'NOT MET'}  {target}")
    print(f"suite MAPE {v.suite['migratrack']:.1f}% vs better baseline "
          f"{min(v.suite['linear'], v.suite['tqdm']):.1f}% ({v.improvement:.0%} lower); worst trace "
          f"{v.worst_trace} at {v.worst_ratio:.2f}x its better baseline; coverage {v.coverage:.0f}%")
    print(f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
