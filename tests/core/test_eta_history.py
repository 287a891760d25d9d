"""The estimator's progress history, folded from the event log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from migratrack import estimate_inputs
from migratrack.core.commands import CompletePhase, StartPhase, StartSubTask
from migratrack.core.eta_history import MAX_SAMPLES, ProgressHistory, Sample, history_of
from migratrack.service import MigrationService

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_phase_progress_counts_and_sub_task_roll_up() -> None:
    clock = Clock()
    svc = MigrationService("memory://", clock)
    svc.initialize("m", [
        {"id": "rows"},
        {"id": "tables", "sub_tasks": [{"id": "small", "estimated_duration": 1},
                                       {"id": "big", "estimated_duration": 3}]},
    ], actor="t")
    svc.execute("m", StartPhase("rows"), actor="t")
    clock.now += timedelta(seconds=10)
    svc.update_phase_progress("m", "rows", done=50, total=100, actor="t")
    svc.execute("m", CompletePhase("rows"), actor="t")
    svc.execute("m", StartPhase("tables"), actor="t")
    svc.execute("m", StartSubTask("tables", "big"), actor="t")
    clock.now += timedelta(seconds=10)
    svc.update_sub_task_progress("m", "tables", "big", 50, actor="t")
    state = svc.state("m")
    h = history_of(state, svc.events("m"))
    assert h.seq == state.seq
    rows = h.samples["rows"]
    assert rows[0] == Sample(T0, 0.0)  # started
    assert rows[1] == Sample(T0 + timedelta(seconds=10), 50.0, 50, 100)
    assert rows[-1].progress == 100.0
    # the big sub-task weighs 3 of 4: half of it is 37.5% of the phase
    assert h.samples["tables"][-1] == Sample(T0 + timedelta(seconds=20), 37.5)


def test_folding_page_by_page_equals_folding_at_once_and_old_events_are_skipped() -> None:
    clock = Clock()
    svc = MigrationService("memory://", clock)
    svc.initialize("m", [{"id": "a"}], actor="t")
    svc.execute("m", StartPhase("a"), actor="t")
    for i in range(1, 30):
        clock.now += timedelta(seconds=1)
        svc.update_phase_progress("m", "a", i, actor="t")
    state, events = svc.state("m"), svc.events("m")
    paged = ProgressHistory()
    for i in range(0, len(events), 7):
        paged.fold(state, events[i:i + 7])
    paged.fold(state, events)  # seen already: nothing added twice
    assert paged.samples == history_of(state, events).samples


def test_a_long_run_keeps_a_bounded_history_with_its_recent_end_whole() -> None:
    clock = Clock()
    svc = MigrationService("memory://", clock)
    svc.initialize("m", [{"id": "a"}], actor="t")
    svc.execute("m", StartPhase("a"), actor="t")
    n = 3 * MAX_SAMPLES
    for i in range(1, n + 1):
        clock.now += timedelta(seconds=1)
        svc.update_phase_progress("m", "a", 100 * i / n, actor="t")
    h = history_of(svc.state("m"), svc.events("m", limit=10 * n))
    rows = h.samples["a"]
    assert len(rows) <= MAX_SAMPLES
    assert rows[0].at == T0 and rows[-1].progress == 100.0  # the whole run's shape survives
    assert [r.at for r in rows[-10:]] == [clock.now - timedelta(seconds=9 - k) for k in range(10)]


def test_the_service_catches_up_and_starts_over_for_a_recreated_migration() -> None:
    clock = Clock()
    svc = MigrationService("memory://", clock)
    plan = [{"id": "a", "estimated_duration": 10}]
    svc.initialize("m", plan, actor="t")
    svc.execute("m", StartPhase("a"), actor="t")
    for i in range(1, 6):
        clock.now += timedelta(seconds=60)
        svc.update_phase_progress("m", "a", 10 * i, actor="t")
        svc.estimate("m")  # folds the new events only
    assert svc.estimate("m").remaining_seconds == svc.estimate("m").remaining_seconds
    clock.now += timedelta(hours=1)
    svc.initialize("m", plan, actor="t", replace=True)
    svc.execute("m", StartPhase("a"), actor="t")
    clock.now += timedelta(seconds=60)
    svc.update_phase_progress("m", "a", 50, actor="t")
    # nothing of the first run leaks in: 50% in a minute, blended with the 10-minute plan
    assert svc.estimate("m").remaining_seconds == 0.5 * 60 + 0.5 * 300


def test_a_first_read_of_a_long_log_folds_only_its_recent_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimate_inputs, "MAX_CATCH_UP", 10)
    clock = Clock()
    svc = MigrationService("memory://", clock)
    svc.initialize("m", [{"id": "a"}], actor="t")
    svc.execute("m", StartPhase("a"), actor="t")
    for i in range(1, 41):
        clock.now += timedelta(seconds=1)
        svc.update_phase_progress("m", "a", i, actor="t")
    state = svc.state("m")
    h = estimate_inputs.EstimateInputs(svc.storage).history(state)
    assert h.seq == state.seq
    assert [s.progress for s in h.samples["a"]] == [float(i) for i in range(31, 41)]
