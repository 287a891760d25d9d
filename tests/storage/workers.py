"""Work that test processes run against a shared store (imported by spawned processes)."""

from __future__ import annotations

import random
import time
from typing import Any

from migratrack.core.commands import CompletePhase, StartPhase, StartSubTask
from migratrack.errors import DependencyNotMet, RuleViolation
from migratrack.service import MigrationService
from migratrack.storage import Storage

SUB_TASKS = [f"s{i:03d}" for i in range(200)]
#: phase that takes `add` counts; its total is never reached
COUNTED_TOTAL = 10**9


def plan(workers: int) -> list[dict[str, Any]]:
    return [
        {"id": "bulk", "sub_tasks": SUB_TASKS},
        {"id": "counted"},
        {"id": "pct"},
        {"id": "gated", "dependencies": ["bulk"]},
        *({"id": f"side{w}"} for w in range(workers)),
    ]


def set_up(url: str | Storage, mid: str, workers: int) -> None:
    """The migration the workers share: bulk's 200 sub-tasks started, counted and pct running."""
    svc = MigrationService(url)
    svc.initialize(mid, plan(workers), actor="setup", replace=True, metadata={"error_rate_threshold": 100})
    for pid in ("bulk", "counted", "pct"):
        svc.execute(mid, StartPhase(pid), actor="setup")
    for sid in SUB_TASKS:
        svc.execute(mid, StartSubTask("bulk", sid), actor="setup")
    svc.update_phase_progress(mid, "counted", total=COUNTED_TOTAL, actor="setup")
    if isinstance(url, str):
        svc.storage.close()


def mixed_worker(url: str | Storage, mid: str, worker: int, ops: int) -> dict[str, Any]:
    """``ops`` mixed operations; returns what it reported so the test can check the sum."""
    rng = random.Random(1000 + worker)
    svc = MigrationService(url)
    actor = f"worker-{worker}"
    best: dict[str, float] = {}
    pct_best = 0.0
    counters = {"successful_operations": 0, "failed_operations": 0, "total_data_migrated": 0}
    adds = alerts = violations = increments = 0
    errors: list[str] = []
    side_started = side_completed = False
    t0 = time.monotonic()
    for i in range(ops):
        r = rng.random()
        try:
            if r < 0.55:
                sid = rng.choice(SUB_TASKS)
                value = round(rng.uniform(0, 99.9), 3)
                svc.update_sub_task_progress(mid, "bulk", sid, value, actor=actor)
                best[sid] = max(best.get(sid, 0.0), value)
            elif r < 0.75:
                inc = {"successful_operations": rng.randint(1, 5), "failed_operations": int(rng.random() < 0.05),
                       "total_data_migrated": rng.randint(0, 1 << 20)}
                svc.update_metrics(mid, None, inc, actor=actor)
                increments += 1
                for k, v in inc.items():
                    counters[k] += v
            elif r < 0.85:
                # now and then with metadata: that goes through a transition that rewrites the phase
                # row, racing the other workers' in-place merges; no increment may be lost
                meta = {"last_worker": worker} if rng.random() < 0.15 else None
                svc.update_phase_progress(mid, "counted", None, meta, add=1, actor=actor)
                adds += 1
            elif r < 0.92:
                value = round(rng.uniform(0, 99.9), 3)  # out of order on purpose: stale ones are ignored
                meta = {"last_worker": worker} if rng.random() < 0.15 else None
                svc.update_phase_progress(mid, "pct", value, meta, actor=actor)
                pct_best = max(pct_best, value)
            elif r < 0.96:
                svc.create_alert(mid, rng.choice(["info", "warning"]), f"worker {worker} op {i}", actor=actor)
                alerts += 1
            elif r < 0.98:
                if not side_started:
                    svc.execute(mid, StartPhase(f"side{worker}"), actor=actor)
                    side_started = True
                elif not side_completed:
                    svc.execute(mid, CompletePhase(f"side{worker}"), actor=actor)
                    side_completed = True
                else:  # expected rule violation: gated waits for bulk
                    try:
                        svc.execute(mid, StartPhase("gated"), actor=actor)
                        errors.append("gated started before bulk completed")
                    except DependencyNotMet:
                        violations += 1
            else:
                svc.control(mid)
                svc.events(mid, max(0, i - 5), 5)
        except RuleViolation as exc:
            errors.append(f"unexpected rule violation: {exc}")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    svc.storage.close()
    return {"best": best, "pct_best": pct_best, "counters": counters, "adds": adds, "alerts": alerts,
            "violations": violations, "increments": increments, "errors": errors,
            "side": (side_started, side_completed),
            "seconds": time.monotonic() - t0}


def write_later(url: str, mid: str, delay: float) -> float:
    """Wait, then write one progress tick; returns the wall-clock time of the write."""
    svc = MigrationService(url)
    time.sleep(delay)
    at = time.time()
    svc.update_phase_progress(mid, "pct", 42.0, actor="writer-process")
    svc.storage.close()
    return at
