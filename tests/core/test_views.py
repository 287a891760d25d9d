"""What the overview and the dashboard show, and that they serialise to JSON."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

from migratrack import Dashboard, Overview
from migratrack.core.commands import (
    ApprovePhase,
    Cancel,
    CompletePhase,
    CompleteSubTask,
    FailPhase,
    Pause,
    Resume,
    SkipPhase,
    StartPhase,
    StartSubTask,
)
from migratrack.service import MigrationService

from .conftest import ACTOR, MID

if TYPE_CHECKING:
    from conftest import FakeClock


def test_overview_contents(svc: MigrationService, clock: FakeClock) -> None:
    t0 = clock()
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    clock.advance(600)
    svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    svc.execute(MID, StartPhase("files"), actor=ACTOR)
    svc.execute(MID, StartPhase("copy"), actor=ACTOR)
    svc.update_phase_progress(MID, "files", 40, actor=ACTOR)
    svc.execute(MID, FailPhase("copy", "permission denied"), actor=ACTOR)
    svc.execute(MID, Pause(), actor="ops")
    clock.advance(100)
    o = svc.overview(MID)
    assert isinstance(o, Overview)
    assert o.migration_id == MID and o.name == MID
    assert o.status.value == "paused" and o.control.value == "paused"
    assert o.phase_counts == {"pending": 1, "in_progress": 1, "completed": 1, "failed": 1, "skipped": 0}
    assert o.total_phases == 4
    assert [(p.id, p.progress) for p in o.current_phases] == [("files", 40)]
    assert o.started_at == t0
    assert o.elapsed_seconds == 700
    assert o.active_seconds == 600
    assert o.paused_seconds == 100
    assert [(e.phase, e.error) for e in o.errors] == [("copy", "permission denied")]
    assert o.alert_counts["error"] == 1 and o.alert_counts["info"] == 1  # failure + pause
    assert o.estimated_completion == o.estimate.completion
    assert o.last_seq == svc.events(MID)[-1].seq


def test_dashboard_phases_sub_tasks_and_blocking(svc: MigrationService, clock: FakeClock) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    svc.execute(MID, StartPhase("copy"), actor=ACTOR)
    svc.execute(MID, StartSubTask("copy", "users"), actor=ACTOR)
    clock.advance(42)
    svc.execute(MID, CompleteSubTask("copy", "users"), actor=ACTOR)
    d = svc.dashboard(MID)
    phases = {p.id: p for p in d.phases}
    assert list(phases) == ["setup", "copy", "files", "cutover"]
    assert phases["cutover"].blocked_by == ["copy", "files"]
    assert phases["cutover"].requires_approval and phases["cutover"].approved_by is None
    assert phases["copy"].estimated_seconds == 1800
    users, orders = phases["copy"].sub_tasks
    assert (users.id, users.status.value, users.progress, users.duration_seconds) == ("users", "completed", 100, 42)
    assert (orders.status.value, orders.progress, orders.started_at) == ("pending", 0, None)
    assert phases["copy"].progress == 25  # users weighs 1 of 4


def test_timeline_planned_and_actual(svc: MigrationService, clock: FakeClock) -> None:
    t0 = clock()
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    clock.advance(minutes=15)
    svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    svc.execute(MID, StartPhase("files"), actor=ACTOR)
    timeline = {t.phase: t for t in svc.dashboard(MID).timeline}
    minute = timedelta(minutes=1)
    # planned from the first start: setup 0-10, copy 10-40, files 10-30, cutover 40-45 (minutes)
    assert (timeline["setup"].planned_start, timeline["setup"].planned_end) == (t0, t0 + 10 * minute)
    assert (timeline["copy"].planned_start, timeline["copy"].planned_end) == (t0 + 10 * minute, t0 + 40 * minute)
    assert (timeline["files"].planned_start, timeline["files"].planned_end) == (t0 + 10 * minute, t0 + 30 * minute)
    assert (timeline["cutover"].planned_start, timeline["cutover"].planned_end) == (t0 + 40 * minute,
                                                                                  t0 + 45 * minute)
    assert (timeline["setup"].actual_start, timeline["setup"].actual_end) == (t0, t0 + 15 * minute)
    assert (timeline["files"].actual_start, timeline["files"].actual_end) == (t0 + 15 * minute, None)
    assert timeline["copy"].actual_start is None
    assert timeline["files"].status.value == "in_progress"


def test_recent_alerts_newest_first_and_limited(svc: MigrationService, clock: FakeClock) -> None:
    for i in range(30):
        clock.advance(1)
        svc.create_alert(MID, "info", f"note {i}", actor=ACTOR)
    d = svc.dashboard(MID, alerts=5)
    assert [a.message for a in d.recent_alerts] == [f"note {i}" for i in range(29, 24, -1)]
    assert len(svc.dashboard(MID).recent_alerts) == 20


def test_metrics_speed_is_derived_from_data_and_active_time(svc: MigrationService, clock: FakeClock) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    clock.advance(100)
    svc.execute(MID, Pause(), actor="ops")
    clock.advance(1000)
    svc.execute(MID, Resume(), actor="ops")
    svc.update_metrics(MID, increments={"total_data_migrated": 5000}, actor=ACTOR)
    assert svc.dashboard(MID).metrics.migration_speed == 50
    svc.update_metrics(MID, {"migration_speed": 7}, actor=ACTOR)  # a reported speed wins
    assert svc.dashboard(MID).metrics.migration_speed == 7


def test_dashboard_is_json_ready(svc: MigrationService, clock: FakeClock) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.update_phase_progress(MID, "setup", 50, {"currentTask": "Creating VPC", "resourcesCreated": 10},
                              actor=ACTOR)
    svc.create_alert(MID, "warning", "High resource usage detected", "setup", actor=ACTOR)
    svc.update_metrics(MID, {"totalDataMigrated": 500, "resourceUtilization": {"cpu": 12.5},
                             "costMetrics": {"estimatedCost": 99}}, actor=ACTOR)
    d = svc.dashboard(MID)
    data = json.loads(d.model_dump_json())
    assert data["overview"]["status"] == "running"
    assert data["overview"]["overall_progress"] == round(100 * 5 / 65, 4)
    assert data["phases"][0]["metadata"] == {"currentTask": "Creating VPC", "resourcesCreated": 10}
    assert data["recent_alerts"][0]["level"] == "warning"
    assert data["metrics"]["resource_utilization"] == {"cpu": 12.5}
    assert data["metrics"]["cost_metrics"] == {"estimated_cost": 99}
    assert data["metrics"]["total_data_migrated"] == 500
    assert data["timeline"][0]["actual_start"] == clock().isoformat().replace("+00:00", "Z")
    assert Dashboard.model_validate_json(d.model_dump_json()) == d


def test_a_migration_finished_while_paused_stops_counting_paused_time(
    service: MigrationService, clock: FakeClock
) -> None:
    service.initialize("p", [{"id": "a"}], actor=ACTOR)
    service.execute("p", StartPhase("a"), actor=ACTOR)
    clock.advance(100)
    service.execute("p", Pause(), actor="ops")
    clock.advance(50)
    service.execute("p", CompletePhase("a"), actor=ACTOR)  # the worker finished its step after the pause
    clock.advance(3600)
    o = service.overview("p")
    assert o.status.value == "completed"
    assert o.elapsed_seconds == 150
    assert o.paused_seconds == 50
    assert o.active_seconds == 100


def test_conditions_tell_blocked_gated_paused_and_cancelled_apart(svc: MigrationService) -> None:
    def conditions() -> dict[str, str]:
        return {p.id: p.condition.value for p in svc.dashboard(MID).phases}

    assert conditions() == {"setup": "ready", "copy": "blocked", "files": "blocked", "cutover": "blocked"}
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    assert conditions()["copy"] == "ready"
    svc.execute(MID, StartPhase("copy"), actor=ACTOR)
    assert conditions()["copy"] == "running"
    svc.execute(MID, FailPhase("copy", "disk full"), actor=ACTOR)
    svc.execute(MID, SkipPhase("copy", "done by hand"), actor=ACTOR)
    svc.execute(MID, StartPhase("files"), actor=ACTOR)
    svc.execute(MID, CompletePhase("files"), actor=ACTOR)
    assert conditions()["cutover"] == "waiting_for_approval"
    assert svc.overview(MID).waiting_for_approval == ["cutover"]
    assert str(svc.dashboard(MID).phases[-1].condition) == "waiting for approval"
    svc.execute(MID, ApprovePhase("cutover", by="ops"), actor="ops")
    assert conditions()["cutover"] == "ready" and svc.overview(MID).waiting_for_approval == []
    svc.execute(MID, StartPhase("cutover"), actor=ACTOR)
    svc.execute(MID, Pause(), actor="ops")
    assert conditions()["cutover"] == "paused"
    assert svc.overview(MID).current_phases[0].condition.value == "paused"
    svc.execute(MID, Cancel(), actor="ops")
    assert conditions() == {"setup": "completed", "copy": "skipped", "files": "completed", "cutover": "cancelled"}
