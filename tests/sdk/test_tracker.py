"""The tracker's public methods, with the seed's meaning, on every embedded store."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from migratrack import (
    ApprovalRequired,
    DependencyNotMet,
    InvalidInput,
    InvalidTransition,
    MigrationProgressTracker,
    PlanMismatch,
)
from migratrack.service import MigrationService

from .conftest import MID, PLAN, TrackerFactory


def phase_of(viewer: MigrationService, phase_id: str) -> dict[str, object]:
    return viewer.state(MID).phases[phase_id].to_dict()


def finish_infrastructure(t: MigrationProgressTracker) -> None:
    t.start_phase("infrastructure-setup")
    for sub in ("vpc-creation", "security-groups"):
        t.start_sub_task("infrastructure-setup", sub)
        t.complete_sub_task("infrastructure-setup", sub)
    t.complete_phase("infrastructure-setup")


def test_the_seed_usage(tracker: MigrationProgressTracker, viewer: MigrationService) -> None:
    tracker.start_phase("infrastructure-setup")
    tracker.update_phase_progress("infrastructure-setup", 50, {"currentTask": "Creating VPC", "resourcesCreated": 10})
    tracker.start_sub_task("infrastructure-setup", "vpc-creation")
    tracker.update_sub_task_progress("infrastructure-setup", "vpc-creation", 75)
    tracker.complete_sub_task("infrastructure-setup", "vpc-creation")
    tracker.create_alert("info", "Migration phase started")
    tracker.create_alert("warning", "High resource usage detected", "infrastructure-setup")
    tracker.create_alert("error", "Phase failed due to timeout", "database-migration")
    tracker.update_metrics({
        "totalDataMigrated": 1024 * 1024 * 500, "migrationSpeed": 1024 * 1024 * 25, "errorRate": 1.2,
        "successfulOperations": 150, "failedOperations": 3,
    })
    tracker.flush()
    phase = viewer.state(MID).phases["infrastructure-setup"]
    assert phase.status.value == "in_progress"
    assert phase.progress == 50
    assert phase.metadata == {"currentTask": "Creating VPC", "resourcesCreated": 10}
    assert phase.sub_tasks["vpc-creation"].status.value == "completed"
    assert [a.level.value for a in viewer.alerts(MID)] == ["error", "warning", "info"]
    d = tracker.get_dashboard()
    assert d.metrics.total_data_migrated == 500 * 1024 * 1024
    assert d.metrics.successful_operations == 150
    assert d.metrics.error_rate == pytest.approx(300 / 153)  # derived from the counts, not the 1.2 sent
    o = tracker.get_overview()
    assert o.status.value == "running"
    assert [p.id for p in o.current_phases] == ["infrastructure-setup"]
    assert tracker.estimate_completion() is not None
    tracker.fail_phase("infrastructure-setup", "quota exceeded")
    assert viewer.state(MID).phases["infrastructure-setup"].errors == ["quota exceeded"]


def test_the_whole_lifecycle(tracker: MigrationProgressTracker, viewer: MigrationService) -> None:
    with pytest.raises(DependencyNotMet, match="infrastructure-setup"):
        tracker.start_phase("database-migration")
    finish_infrastructure(tracker)
    tracker.start_phase("database-migration")
    tracker.update_phase_progress("database-migration", done=10, total=40)
    tracker.add_progress("database-migration", 30)
    tracker.complete_phase("database-migration")
    tracker.start_phase("file-migration")
    tracker.fail_phase("file-migration", RuntimeError("S3 SlowDown"))
    tracker.retry_phase("file-migration")
    tracker.complete_phase("file-migration")
    with pytest.raises(ApprovalRequired):
        tracker.start_phase("cutover")
    tracker.approve_phase("cutover", by="alice")
    tracker.start_phase("cutover")
    tracker.complete_phase("cutover")
    o = tracker.get_overview()
    assert o.status.value == "completed" and o.overall_progress == 100
    db = viewer.state(MID).phases["database-migration"]
    assert (db.done, db.total) == (40, 40)
    files = viewer.state(MID).phases["file-migration"]
    assert files.attempts == 2 and "S3 SlowDown" in files.errors[0]
    assert tracker.estimate_completion() == o.finished_at


def test_skip_and_sub_task_failures(tracker: MigrationProgressTracker, viewer: MigrationService) -> None:
    tracker.start_phase("infrastructure-setup")
    tracker.start_sub_task("infrastructure-setup", "vpc-creation")
    tracker.fail_sub_task("infrastructure-setup", "vpc-creation", "CIDR overlap")
    tracker.skip_sub_task("infrastructure-setup", "security-groups", "reuse the old ones")
    sub = viewer.state(MID).phases["infrastructure-setup"].sub_tasks["vpc-creation"]
    assert sub.status.value == "failed" and sub.error == "CIDR overlap"
    tracker.start_sub_task("infrastructure-setup", "vpc-creation")
    tracker.complete_sub_task("infrastructure-setup", "vpc-creation")
    tracker.complete_phase("infrastructure-setup")
    tracker.skip_phase("file-migration", "bucket already replicated")
    assert viewer.state(MID).phases["file-migration"].skip_reason == "bucket already replicated"


def test_metrics_as_keywords_nested_parts_and_increments(
    tracker: MigrationProgressTracker, viewer: MigrationService
) -> None:
    tracker.update_metrics(migration_speed=1000.0, resource_utilization={"cpu": 40, "memory": 55.5},
                           cost_metrics={"estimated_cost": 1200})
    tracker.update_metrics({"costMetrics": {"actualCost": 35.0}}, average_operation_time=12)
    tracker.update_metrics(increment={"successful_operations": 5, "total_data_migrated": 4096})
    tracker.record(succeeded=2, failed=1, bytes=100)
    tracker.flush()
    m = tracker.get_dashboard().metrics
    assert m.migration_speed == 1000
    assert m.resource_utilization == {"cpu": 40, "memory": 55.5}
    assert m.cost_metrics == {"estimated_cost": 1200, "actual_cost": 35}
    assert m.average_operation_time == 12
    assert (m.successful_operations, m.failed_operations, m.total_data_migrated) == (7, 1, 4196)
    with pytest.raises(InvalidInput):
        tracker.update_metrics(cpu=3)
    with pytest.raises(InvalidInput):
        tracker.update_metrics(increment={"migration_speed": 1})


def test_invalid_calls_raise_at_once(tracker: MigrationProgressTracker) -> None:
    tracker.start_phase("infrastructure-setup")
    with pytest.raises(InvalidInput):
        tracker.update_phase_progress("infrastructure-setup")
    with pytest.raises(InvalidInput):
        tracker.update_phase_progress("infrastructure-setup", float("nan"))
    with pytest.raises(InvalidInput):
        tracker.update_phase_progress("infrastructure-setup", 101)
    with pytest.raises(InvalidInput):
        tracker.update_sub_task_progress("infrastructure-setup", "vpc-creation", float("inf"))
    with pytest.raises(InvalidInput):
        tracker.add_progress("infrastructure-setup", -1)
    with pytest.raises(InvalidInput):
        tracker.create_alert("panic", "x")
    with pytest.raises(InvalidInput):
        MigrationProgressTracker("", storage="memory://")


def test_progress_on_a_pending_phase_raises_where_it_was_made(tracker: MigrationProgressTracker) -> None:
    with pytest.raises(InvalidTransition, match="start_phase"):
        tracker.update_phase_progress("database-migration", 10)
    with pytest.raises(InvalidTransition, match="start_phase"):
        tracker.add_progress("file-migration", 1)
    tracker.start_phase("infrastructure-setup")
    with pytest.raises(InvalidTransition, match="start_sub_task"):
        tracker.update_sub_task_progress("infrastructure-setup", "vpc-creation", 10)


def test_events_are_the_audit_trail(tracker: MigrationProgressTracker) -> None:
    tracker.start_phase("infrastructure-setup")
    tracker.update_phase_progress("infrastructure-setup", 10)
    events = tracker.events()
    assert [e.type for e in events] == ["migration.initialized", "phase.started", "phase.progress"]
    assert all(e.actor == "worker" for e in events)
    assert tracker.events(after=2) == events[2:]
    assert json.loads(json.dumps(events[2].to_dict()))["payload"]["progress"] == 10


def test_initialize_resumes_with_the_same_plan_and_refuses_another(make_tracker: TrackerFactory) -> None:
    first = make_tracker()
    assert first.initialize_migration(PLAN) is True
    first.start_phase("infrastructure-setup")
    again = make_tracker()
    assert again.initialize_migration(PLAN) is False  # a restarted script resumes
    assert again.get_overview().status.value == "running"
    with pytest.raises(PlanMismatch, match="different plan"):
        again.initialize_migration(PLAN[:2])
    assert again.initialize_migration(PLAN[:2], replace=True) is True
    assert again.get_overview().total_phases == 2


def test_clock_is_injectable(make_tracker: TrackerFactory) -> None:
    from datetime import UTC, datetime

    now = [datetime(2030, 5, 1, tzinfo=UTC)]
    t = make_tracker(clock=lambda: now[0])
    t.initialize_migration([{"id": "a", "estimated_duration": 10}])
    t.start_phase("a")
    now[0] += timedelta(minutes=5)
    t.update_phase_progress("a", 50)
    assert t.estimate_completion() == now[0] + timedelta(minutes=5)
    assert t.events()[-1].ts == now[0]


def test_a_restarted_script_meets_the_pause_or_cancel_it_left(make_tracker: TrackerFactory) -> None:
    from migratrack import MigrationCancelled

    first = make_tracker()
    first.initialize_migration(PLAN)
    first.cancel("wrong account")
    again = make_tracker(own_connection=True)
    assert again.initialize_migration(PLAN) is False
    with pytest.raises(MigrationCancelled):
        again.start_phase("infrastructure-setup")
    assert again.initialize_migration(PLAN, replace=True) is True  # a fresh start is explicit
    again.start_phase("infrastructure-setup")


def test_a_naive_clock_is_refused(make_tracker: TrackerFactory) -> None:
    from datetime import datetime

    t = make_tracker(clock=lambda: datetime(2030, 1, 1))
    with pytest.raises(InvalidInput, match="timezone-aware"):
        t.initialize_migration(PLAN)


def test_the_alert_cap_is_logged_not_raised_into_the_migration(
        make_tracker: TrackerFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from migratrack.errors import LimitExceeded

    monkeypatch.setenv("MIGRATRACK_MAX_ALERTS", "2")
    t = make_tracker()
    t.initialize_migration(PLAN)
    assert t.create_alert("info", "one") is not None and t.create_alert("info", "two") is not None
    with caplog.at_level("WARNING", logger="migratrack"):
        assert t.create_alert("warning", "three") is None
        assert t.create_alert("warning", "four") is None
    said = [r.getMessage() for r in caplog.records if "alert not recorded" in r.getMessage()]
    assert len(said) == 1 and "MIGRATRACK_MAX_ALERTS" in said[0]  # once, with what to do
    t.start_phase("infrastructure-setup")  # the migration goes on
    assert [a.message for a in t.alerts()] == ["two", "one"]
    strict = make_tracker(strict=True)
    with pytest.raises(LimitExceeded):
        strict.create_alert("error", "five")
