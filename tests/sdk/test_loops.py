"""`with tracker.phase(...)`, `with tracker.sub_task(...)` and `tracker.track(...)`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from migratrack import MigrationCancelled, MigrationProgressTracker
from migratrack.service import MigrationService

from .conftest import MID, TrackerFactory


@pytest.fixture
def t(make_tracker: TrackerFactory) -> MigrationProgressTracker:
    t = make_tracker()
    t.initialize_migration([{"id": "copy", "sub_tasks": ["users", "orders"]}, {"id": "rows"},
                            {"id": "more", "dependencies": ["rows"]}])
    return t


def status(viewer: MigrationService, phase: str) -> str:
    return viewer.state(MID).phases[phase].status.value


def test_phase_context_completes(t: MigrationProgressTracker, viewer: MigrationService) -> None:
    with t.phase("rows") as same:
        assert same is t
        assert status(viewer, "rows") == "in_progress"
        t.update_phase_progress("rows", 30)
    assert status(viewer, "rows") == "completed"
    assert viewer.state(MID).phases["rows"].progress == 100


def test_phase_context_fails_with_the_exception_text(t: MigrationProgressTracker, viewer: MigrationService) -> None:
    with pytest.raises(ConnectionError, match="connection reset by peer"), t.phase("rows"):
        t.update_phase_progress("rows", 30)
        raise ConnectionError("connection reset by peer")
    phase = viewer.state(MID).phases["rows"]
    assert phase.status.value == "failed"
    [error] = phase.errors
    # the exception's text, prefixed with its type so an operator knows what kind of failure it was
    assert error == "ConnectionError: connection reset by peer"
    assert phase.progress == 30  # the pending progress was written before the failure
    assert any(a.level.value == "error" and "connection reset by peer" in a.message for a in viewer.alerts(MID))


def test_phase_context_resumes_a_running_phase_and_is_retryable(
    t: MigrationProgressTracker, viewer: MigrationService
) -> None:
    t.start_phase("rows")
    with t.phase("rows"):  # already started by this or another worker: fine
        pass
    assert status(viewer, "rows") == "completed"


def test_phase_context_leaves_a_cancelled_phase_as_it_is(
    t: MigrationProgressTracker, make_tracker: TrackerFactory, viewer: MigrationService
) -> None:
    operator = make_tracker(actor="ops")
    with pytest.raises(MigrationCancelled), t.phase("rows"):
        t.update_phase_progress("rows", 10)
        operator.cancel("wrong target")
        t.checkpoint()
    assert status(viewer, "rows") == "in_progress"
    assert viewer.overview(MID).status.value == "cancelled"


def test_sub_task_context(t: MigrationProgressTracker, viewer: MigrationService) -> None:
    with t.phase("copy"):
        with t.sub_task("copy", "users"):
            t.update_sub_task_progress("copy", "users", 50)
        with pytest.raises(ValueError, match="bad row"), t.sub_task("copy", "orders"):
            raise ValueError("bad row 17")
        assert viewer.state(MID).phases["copy"].sub_tasks["orders"].error == "ValueError: bad row 17"
        with t.sub_task("copy", "orders"):  # a failed sub-task runs again
            pass
    subs = viewer.state(MID).phases["copy"].sub_tasks
    assert [s.status.value for s in subs.values()] == ["completed", "completed"]
    assert status(viewer, "copy") == "completed"


def test_track_reports_done_of_total_and_completes(t: MigrationProgressTracker, viewer: MigrationService) -> None:
    rows = list(range(5000))
    seen = [r for r in t.track(rows, phase="rows")]
    assert seen == rows
    phase = viewer.state(MID).phases["rows"]
    assert (phase.status.value, phase.done, phase.total, phase.progress) == ("completed", 5000, 5000, 100)


def test_track_an_unsized_iterable_with_a_given_total(t: MigrationProgressTracker, viewer: MigrationService) -> None:
    def gen() -> Iterator[int]:
        yield from range(300)

    it = t.track(gen(), phase="rows", total=1000, complete=False)
    assert status(viewer, "rows") == "in_progress"  # started before the first item
    assert sum(1 for _ in it) == 300
    phase = viewer.state(MID).phases["rows"]
    assert (phase.status.value, phase.done, phase.total, phase.progress) == ("in_progress", 300, 1000, 30)


def test_track_without_any_total_counts(t: MigrationProgressTracker, viewer: MigrationService) -> None:
    assert sum(t.track((i for i in range(777)), phase="rows")) == sum(range(777))
    phase = viewer.state(MID).phases["rows"]
    assert (phase.status.value, phase.done, phase.total) == ("completed", 777, None)


def test_track_stopped_early_does_not_complete(t: MigrationProgressTracker, viewer: MigrationService) -> None:
    for i in t.track(range(100), phase="rows"):
        if i == 49:
            break
    t.flush()
    phase = viewer.state(MID).phases["rows"]
    assert phase.status.value == "in_progress"
    assert phase.done <= 50


def test_workers_tracking_one_phase_add_up(make_tracker: TrackerFactory, viewer: MigrationService) -> None:
    a = make_tracker(actor="a")
    a.initialize_migration([{"id": "rows"}])
    a.start_phase("rows")
    b = make_tracker(actor="b", own_connection=True)
    list(a.track(range(1200), phase="rows", start=False, complete=False))
    list(b.track(range(800), phase="rows", start=False, complete=False))
    a.complete_phase("rows")
    assert viewer.state(MID).phases["rows"].done == 2000


def test_track_starts_a_phase_only_when_its_dependencies_are_done(t: MigrationProgressTracker) -> None:
    from migratrack import DependencyNotMet

    with pytest.raises(DependencyNotMet, match="'rows'"):
        t.track(range(3), phase="more")


def test_a_huge_exception_text_still_fails_the_phase(t: MigrationProgressTracker, viewer: MigrationService) -> None:
    statement = "INSERT INTO orders VALUES " + ", ".join(f"({i}, 'x')" for i in range(5000))
    with pytest.raises(RuntimeError), t.phase("rows"):
        raise RuntimeError(f"statement failed: {statement}")
    phase = viewer.state(MID).phases["rows"]
    assert phase.status.value == "failed"
    assert phase.errors[0].startswith("RuntimeError: statement failed: INSERT INTO orders")
    assert len(phase.errors[0]) <= 10_000


def test_track_past_its_total_warns_once_and_caps_progress(
    t: MigrationProgressTracker, viewer: MigrationService
) -> None:
    assert sum(1 for _ in t.track((i for i in range(150)), phase="rows", total=100, complete=False)) == 150
    phase = viewer.state(MID).phases["rows"]
    assert (phase.done, phase.total, phase.progress, phase.status.value) == (150, 100, 100, "in_progress")
    [alert] = [a for a in viewer.alerts(MID) if a.source == "rule:over-total"]
    assert alert.level.value == "warning" and alert.phase == "rows"
