"""Several OS processes updating one migration in one SQLite file lose nothing."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from migratrack import MigrationProgressTracker
from migratrack.core.commands import StartPhase, StartSubTask
from migratrack.service import MigrationService

MID = "shared"
SUBS = ["s0", "s1", "s2"]
ROUNDS = 150


def sub_value(worker: int, k: int, workers: int) -> float:
    """Interleaved values, so each sub-task's maximum comes from whichever worker ran last."""
    return round(100.0 * (k * workers + worker + 1) / (ROUNDS * workers), 6)


def worker(url: str, index: int, workers: int, coalesce: float, barrier: Barrier) -> None:
    t = MigrationProgressTracker(MID, storage=url, actor=f"proc-{index}", coalesce=coalesce)
    barrier.wait(timeout=60)
    for k in range(ROUNDS):
        t.add_progress("load", 1)
        t.record(succeeded=2, failed=k % 2, bytes=1000)
        t.update_sub_task_progress("load", SUBS[k % len(SUBS)], sub_value(index, k, workers))
        if k % 50 == 0:  # cold-path writes interleaved with the hot path
            t.update_phase_progress("load", metadata={f"proc-{index}": k})
            t.create_alert("info", f"proc {index} at round {k}", "load")
    t.close()


@pytest.mark.slow
@pytest.mark.parametrize("workers,coalesce", [(2, 0.0), (4, 0.0), (4, 0.01)])
def test_processes_sharing_one_file_lose_nothing(tmp_path: Path, workers: int, coalesce: float) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    setup = MigrationService(url)
    setup.initialize(MID, [{"id": "load", "sub_tasks": SUBS}], actor="setup")
    setup.execute(MID, StartPhase("load"), actor="setup")
    setup.update_phase_progress(MID, "load", total=workers * ROUNDS, actor="setup")
    for s in SUBS:
        setup.execute(MID, StartSubTask("load", s), actor="setup")

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=worker, args=(url, i, workers, coalesce, barrier)) for i in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0] * workers

    state = MigrationService(url).state(MID)
    phase = state.phases["load"]
    assert phase.done == workers * ROUNDS
    assert phase.progress == 100
    assert phase.metadata == {f"proc-{i}": max(range(0, ROUNDS, 50)) for i in range(workers)}
    m = state.metrics
    assert m.successful_operations == 2 * workers * ROUNDS
    assert m.failed_operations == workers * (ROUNDS // 2)
    assert m.total_data_migrated == 1000 * workers * ROUNDS
    for j, s in enumerate(SUBS):
        expected = max(sub_value(i, k, workers) for i in range(workers) for k in range(ROUNDS) if k % len(SUBS) == j)
        assert phase.sub_tasks[s].progress == pytest.approx(expected)
    events = setup.events(MID, limit=1_000_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].seq == state.seq
    increments = [e.payload["increment"] for e in events if e.type == "metrics.updated"]
    assert sum(i.get("successful_operations", 0) for i in increments) == m.successful_operations
    assert {e.actor for e in events if e.type == "phase.progress"} >= {f"proc-{i}" for i in range(workers)}
    alerts = setup.alerts(MID, limit=1000)
    assert len([a for a in alerts if a.source == "user"]) == workers * len(range(0, ROUNDS, 50))
    # a third of the operations fail: the error-rate warning is raised once, not once per process
    assert len([a for a in alerts if a.source == "rule:error-rate"]) == 1
    setup.storage.close()
