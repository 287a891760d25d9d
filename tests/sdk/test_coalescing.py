"""Coalescing: many reports, few writes, nothing lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from migratrack import MigrationProgressTracker
from migratrack.service import MigrationService

from .conftest import MID, TrackerFactory


def progress_events(viewer: MigrationService, kind: str = "phase.progress") -> list[dict[str, object]]:
    return [e.payload for e in viewer.events(MID, limit=1_000_000) if e.type == kind]


@pytest.fixture
def t(make_tracker: TrackerFactory) -> MigrationProgressTracker:
    t = make_tracker(coalesce=3600)  # nothing is due during the test: only forced writes happen
    t.initialize_migration([{"id": "load", "sub_tasks": ["part"]}, {"id": "other"}])
    t.start_phase("load")
    return t


def test_a_hundred_thousand_ticks_write_a_bounded_number_of_events(
    t: MigrationProgressTracker, viewer: MigrationService
) -> None:
    for i in range(100_000):
        t.update_phase_progress("load", done=i + 1, total=100_000)
    # the first report is written at once; the rest wait for the next due time or a flush
    assert len(progress_events(viewer)) == 1
    t.flush()
    events = progress_events(viewer)
    assert len(events) == 2
    assert events[-1] == {"phase": "load", "progress": 100.0, "done": 100_000, "total": 100_000}


def test_the_default_interval_bounds_writes(make_tracker: TrackerFactory, viewer: MigrationService) -> None:
    t = make_tracker()  # 100 ms by default
    t.initialize_migration([{"id": "load"}])
    t.start_phase("load")
    for _ in range(100_000):
        t.add_progress("load")
    t.close()
    assert viewer.state(MID).phases["load"].done == 100_000
    assert len(progress_events(viewer)) < 2_000  # one per 100 ms at most, plus the forced ones


def test_close_persists_the_final_value(t: MigrationProgressTracker, viewer: MigrationService) -> None:
    t.start_sub_task("load", "part")
    for p in range(1, 101):
        t.update_phase_progress("load", p / 2)
        t.update_sub_task_progress("load", "part", p)
    t.record(succeeded=7)
    t.record(succeeded=3, failed=1)
    state = viewer.state(MID)
    assert state.phases["load"].progress == 0.5 and state.phases["load"].sub_tasks["part"].progress == 1
    t.close()
    state = viewer.state(MID)
    assert state.phases["load"].progress == 50
    assert state.phases["load"].sub_tasks["part"].progress == 100
    assert (state.metrics.successful_operations, state.metrics.failed_operations) == (10, 1)
    assert len(progress_events(viewer, "subtask.progress")) == 2
    t.close()  # twice is fine


def test_a_transition_writes_the_pending_progress_first(t: MigrationProgressTracker, viewer: MigrationService) -> None:
    t.update_phase_progress("load", 10, {"step": 1})
    t.update_phase_progress("load", 80, {"step": 2})
    t.fail_phase("load", "disk full")
    phase = viewer.state(MID).phases["load"]
    assert phase.progress == 80 and phase.metadata == {"step": 2}
    types = [e.type for e in viewer.events(MID)]
    assert types.index("phase.failed") > max(i for i, x in enumerate(types) if x == "phase.progress")


def test_reads_through_the_tracker_see_its_own_pending_reports(t: MigrationProgressTracker) -> None:
    t.add_progress("load", 5)
    t.add_progress("load", 5)
    assert t.get_dashboard().phases[0].done == 10
    t.add_progress("load", 1)
    assert t.get_overview().current_phases[0].id == "load"
    assert t.events()[-1].payload["done"] == 11


def test_the_first_report_on_a_pending_phase_raises_at_once(t: MigrationProgressTracker) -> None:
    from migratrack import InvalidTransition

    with pytest.raises(InvalidTransition, match="start_phase"):
        t.update_phase_progress("other", 5)


def test_coalesce_zero_persists_every_call(make_tracker: TrackerFactory, viewer: MigrationService) -> None:
    t = make_tracker(coalesce=0)
    t.initialize_migration([{"id": "load"}])
    t.start_phase("load")
    for p in range(1, 51):
        t.update_phase_progress("load", p)
        assert viewer.state(MID).phases["load"].progress == p  # durable before the call returns
    for _ in range(10):
        t.record(succeeded=1)
    assert viewer.state(MID).metrics.successful_operations == 10
    assert len(progress_events(viewer)) == 50
    t.complete_phase("load")
    t.update_phase_progress("load", 5)  # a late report after the end is ignored, not an error
    assert viewer.state(MID).phases["load"].progress == 100


def test_coalescing_from_the_environment(monkeypatch: pytest.MonkeyPatch, make_tracker: TrackerFactory,
                                         viewer: MigrationService) -> None:
    monkeypatch.setenv("MIGRATRACK_COALESCE_MS", "0")
    t = make_tracker()
    t.initialize_migration([{"id": "load"}])
    t.start_phase("load")
    for p in range(1, 11):
        t.update_phase_progress("load", p)
    assert len(progress_events(viewer)) == 10


def test_a_script_that_never_closes_its_tracker_still_persists_at_exit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/exit.db"
    script = f"""
from migratrack import MigrationProgressTracker
t = MigrationProgressTracker("exit", storage={url!r}, coalesce=3600, actor="script")
t.initialize_migration([{{"id": "load"}}])
t.start_phase("load")
for i in range(1, 1001):
    t.update_phase_progress("load", done=i, total=1000)
t.record(succeeded=1000)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    state = MigrationService(url).state("exit")
    assert state.phases["load"].done == 1000 and state.phases["load"].progress == 100
    assert state.metrics.successful_operations == 1000


def test_a_report_made_while_failed_is_not_credited_to_the_retry(
    t: MigrationProgressTracker, viewer: MigrationService
) -> None:
    t.update_phase_progress("load", 10)
    t.fail_phase("load", "disk full")
    t.update_phase_progress("load", 90)  # a late report from the failed attempt: waits, coalesced
    t.retry_phase("load")
    t.flush()
    assert viewer.state(MID).phases["load"].progress == 10


def test_a_stale_report_does_not_stop_a_sub_task_transition(
    t: MigrationProgressTracker, viewer: MigrationService
) -> None:
    from migratrack import InvalidTransition

    with pytest.raises(InvalidTransition):
        t.update_sub_task_progress("load", "part", 5)  # not started: the first report raises
    t.update_sub_task_progress("load", "part", 6)  # the next one waits for the flush
    t.fail_sub_task("load", "part", "source table missing")  # pending -> failed, despite that report
    sub = viewer.state(MID).phases["load"].sub_tasks["part"]
    assert (sub.status.value, sub.error, sub.progress) == ("failed", "source table missing", 0)


def test_threads_with_their_own_trackers_lose_nothing(make_tracker: TrackerFactory, viewer: MigrationService) -> None:
    import threading

    setup = make_tracker(actor="setup")
    setup.initialize_migration([{"id": "load", "sub_tasks": ["part"]}])
    setup.start_phase("load")
    setup.start_sub_task("load", "part")
    workers = [make_tracker(actor=f"t{i}", own_connection=True, coalesce=c) for i, c in enumerate([0, 0.001, 0.05, 1])]
    errors: list[BaseException] = []

    def run(t: MigrationProgressTracker, index: int) -> None:
        try:
            for k in range(500):
                t.add_progress("load", 1)
                t.record(succeeded=1, bytes=3)
                t.update_sub_task_progress("load", "part", (k * 4 + index) / 20)
            t.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t, i)) for i, t in enumerate(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    state = viewer.state(MID)
    assert state.phases["load"].done == 2000
    assert state.metrics.successful_operations == 2000 and state.metrics.total_data_migrated == 6000
    assert state.phases["load"].sub_tasks["part"].progress == (499 * 4 + 3) / 20
    events = viewer.events(MID, limit=100_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
