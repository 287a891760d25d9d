"""Transitions against the size of the migration: does one cost what it touches?

    python bench/bench_scale.py [--quick] [--stores memory,sqlite,redis,postgresql]
                                [--compare OTHER_TREE] [--redis URL] [--postgres URL]

Two shapes, each at size 10 and at the big size:

* sub-tasks: one phase of N sub-tasks (N = 10 and 100,000): start + complete one sub-task (a
  pair), fail one, skip one;
* phases: N independent phases (N = 10 and 5,000): start one, a metadata update of one (the
  cold path: through the rules), complete one, fail one, skip one.

Each operation is timed on its own (median over the operations of a round, on distinct
targets); the figure that matters is the ratio big / 10, which should stay under 1.5.

``--compare OTHER_TREE`` runs the same bench, in the same run, on another checkout of
migratrack (its ``src``): the before and after of a change side by side, store by store
(each store's rounds alternate between the trees). Every run uses names of its own: a Redis key
prefix and a PostgreSQL database with this process's id, a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REDIS = "redis://127.0.0.1:6379/14"
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
HERE = Path(__file__).resolve().parent
#: (shape, small size, big size)
SHAPES = (("sub-tasks", 10, 100_000), ("phases", 10, 5_000))
OPS = {"sub-tasks": ("start+complete sub-task", "fail sub-task", "skip sub-task"),
       "phases": ("start phase", "metadata update", "complete phase", "fail phase", "skip phase")}


# -- one tree, one store, one shape, one size (run in a child process) -------------------------

def _plan(shape: str, n: int) -> list[dict[str, Any]]:
    if shape == "sub-tasks":
        return [{"id": "big", "sub_tasks": [f"s{i}" for i in range(n)]}]
    return [{"id": f"p{i}"} for i in range(n)]


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return (time.perf_counter() - t0) * 1000.0


def measure(url: str, shape: str, n: int, per_op: int, budget: float = 60.0) -> dict[str, float]:
    """ms per operation (median) on a fresh migration of this shape and size; past ``budget``
    seconds, with 2 measured rounds at least, it stops (an old tree takes seconds per operation
    on the big sizes)."""
    from migratrack.core.commands import (
        CompletePhase,
        CompleteSubTask,
        FailPhase,
        FailSubTask,
        SkipPhase,
        SkipSubTask,
        StartPhase,
        StartSubTask,
    )
    from migratrack.service import MigrationService

    svc = MigrationService(url)
    out: dict[str, list[float]] = {op: [] for op in OPS[shape]}
    ex = svc.execute
    made: list[str] = []

    def fresh() -> str:
        mid = f"scale-{shape}-{n}-{len(made)}"
        svc.initialize(mid, _plan(shape, n), actor="bench", replace=True)
        if shape == "sub-tasks":
            ex(mid, StartPhase("big"), actor="b")
        made.append(mid)
        return mid

    def targets(prefix: str) -> Any:
        """(migration, target) pairs spread over the plan (never only its cheap end); a small
        migration is made again when its targets run out."""
        k = max(1, (n - 1) // (3 * per_op + 4))
        while True:
            mid = fresh()
            for i in range(0, n, k):
                yield mid, f"{prefix}{i}"

    if shape == "sub-tasks":
        it = targets("s")
        t_end = time.perf_counter() + budget
        for r in range(per_op + 1):
            if r >= 3 and time.perf_counter() > t_end:
                break
            mid, s = next(it)
            out["start+complete sub-task"].append(
                _timed(ex, mid, StartSubTask("big", s), actor="b")
                + _timed(ex, mid, CompleteSubTask("big", s), actor="b"))
            mid, s = next(it)
            ex(mid, StartSubTask("big", s), actor="b")
            out["fail sub-task"].append(_timed(ex, mid, FailSubTask("big", s, "boom"), actor="b"))
            mid, s = next(it)
            out["skip sub-task"].append(_timed(ex, mid, SkipSubTask("big", s, "not needed"), actor="b"))
    else:
        it = targets("p")
        t_end = time.perf_counter() + budget
        for r in range(per_op + 1):
            if r >= 3 and time.perf_counter() > t_end:
                break
            mid, p = next(it)
            out["start phase"].append(_timed(ex, mid, StartPhase(p), actor="b"))
            out["metadata update"].append(_timed(svc.update_phase_progress, mid, p, 10.0, {"rows": 1},
                                                 actor="b"))
            out["complete phase"].append(_timed(ex, mid, CompletePhase(p), actor="b"))
            mid, p = next(it)
            ex(mid, StartPhase(p), actor="b")
            out["fail phase"].append(_timed(ex, mid, FailPhase(p, "boom"), actor="b"))
            mid, p = next(it)
            out["skip phase"].append(_timed(ex, mid, SkipPhase(p, "not needed"), actor="b"))
    for mid in made:
        svc.storage.delete(mid)
    svc.storage.close()
    # the first of each is a warm-up (statement caches, pages, the first header write)
    return {op: statistics.median(v[1:]) for op, v in out.items()}


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.src)
    result = measure(args.url, args.shape, args.n, args.per_op)
    print(json.dumps(result))


# -- the driver ----------------------------------------------------------------------------------

def run_child(src: str, url: str, shape: str, n: int, per_op: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", "--src", src, "--url", url, "--shape", shape,
           "--n", str(n), "--per-op", str(per_op)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def store_urls(stores: list[str], tmp: str, redis_url: str, pg_url: str) -> dict[str, str]:
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    urls = {"memory": "memory://", "sqlite": f"sqlite:///{tmp}/scale.db",
            "redis": f"{redis_url}?prefix=mtscale{tag}",
            "postgresql": pg_url.rsplit("/", 1)[0] + f"/migratrack_scale_{tag}"}
    return {s: urls[s] for s in stores}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer operations per size")
    ap.add_argument("--stores", default="memory,sqlite,redis,postgresql")
    ap.add_argument("--compare", help="another checkout of migratrack to measure beside this one")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure each size this many times, sizes alternating (small, big, small, big...), "
                         "and keep each operation's lowest median: a machine whose load moves during the run "
                         "then weighs less on the ratio")
    ap.add_argument("--redis", default=REDIS)
    ap.add_argument("--postgres", default=POSTGRES_SERVER)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--shape", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--per-op", type=int, default=10, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    per_op = 4 if args.quick else 10
    trees = {"this": str(HERE.parent / "src")}
    if args.compare:
        trees = {"before": str(Path(args.compare).resolve() / "src"), "after": trees["this"]}
    stores = args.stores.split(",")
    import psycopg
    import redis

    with tempfile.TemporaryDirectory() as tmp:
        urls = store_urls(stores, tmp, args.redis, args.postgres)
        if "postgresql" in urls:
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{urls["postgresql"].rsplit("/", 1)[1]}"')
        results: dict[tuple[str, str, str, int], dict[str, float]] = {}
        try:
            for store, url in urls.items():
                for shape, small, big in SHAPES:
                    for n in (small, big) * args.repeat:
                        for tree, src in trees.items():
                            # a tree's own SQLite file / Redis prefix: schemas may differ between trees
                            u = url.replace("scale.db", f"scale-{tree}.db") if store == "sqlite" else url
                            if store == "redis":
                                u = url + tree
                            t0 = time.time()
                            got = run_child(src, u, shape, n, per_op)
                            seen = results.setdefault((store, tree, shape, n), got)
                            for op, ms in got.items():
                                seen[op] = min(seen[op], ms)
                            print(f"  {store:10} {tree:6} {shape:9} n={n:<7} done in {time.time() - t0:5.1f} s",
                                  file=sys.stderr, flush=True)
        finally:
            if "postgresql" in urls:
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{urls["postgresql"].rsplit("/", 1)[1]}" WITH (FORCE)')
            if "redis" in urls:
                r = redis.Redis.from_url(args.redis)
                prefix = urls["redis"].split("prefix=", 1)[1]
                keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
                if keys:
                    r.delete(*keys)
    print(f"\nms per operation (median of {per_op}, or of 2 at least when a round passes 60 s); "
          "ratio = big / 10 (target <= 1.5)\n")
    header = "| store | operation | " + " | ".join(
        f"{tree}: 10 | {tree}: big | {tree}: ratio" for tree in trees) + " |"
    print(header)
    print("|" + "---|" * (2 + 3 * len(trees)))
    for store in urls:
        for shape, small, big in SHAPES:
            for op in OPS[shape]:
                cells = []
                for tree in trees:
                    a = results[(store, tree, shape, small)][op]
                    b = results[(store, tree, shape, big)][op]
                    cells.append(f"{a:.2f} | {b:.2f} | {b / a:.2f}x")
                print(f"| {store} | {op} ({shape}, {big:,}) | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
