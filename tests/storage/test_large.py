"""A migration of 100 phases x 100 sub-tasks reads back whole from every store (speed: bench/)."""

from __future__ import annotations

from typing import Any

from migratrack.core.commands import StartPhase, StartSubTask
from migratrack.core.models import NewEvent, build_state
from migratrack.service import MigrationService
from migratrack.storage import Storage

PHASES, SUBS = 100, 100


def big_plan() -> list[dict[str, Any]]:
    return [{"id": f"p{i:03d}", "name": f"Phase {i}", "dependencies": [f"p{i - 1:03d}"] if i else [],
             "estimated_duration": 10, "sub_tasks": [f"s{j:03d}" for j in range(SUBS)]} for i in range(PHASES)]


def test_ten_thousand_sub_tasks_read_back(store: Storage, clock: Any) -> None:
    state = build_state("big", big_plan(), clock())
    phase = state.phases["p000"]
    store.create(state, [NewEvent("migration.initialized", clock(), "a", {})])
    svc = MigrationService(store, clock)
    svc.execute("big", StartPhase("p000"), actor="a")
    for j in range(0, SUBS, 10):
        svc.execute("big", StartSubTask("p000", f"s{j:03d}"), actor="a")
        svc.update_sub_task_progress("big", "p000", f"s{j:03d}", j / 3, actor="a")
    dash = svc.dashboard("big")
    assert len(dash.phases) == PHASES
    assert sum(len(p.sub_tasks) for p in dash.phases) == PHASES * SUBS
    first = dash.phases[0]
    assert [s.id for s in first.sub_tasks] == list(phase.sub_tasks)
    assert {s.id: s.progress for s in first.sub_tasks if s.progress} == {
        f"s{j:03d}": j / 3 for j in range(10, SUBS, 10)}
    assert [p.id for p in dash.phases] == [f"p{i:03d}" for i in range(PHASES)]
