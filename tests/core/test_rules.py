"""The domain rules, exercised through the service on every embedded store."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from migratrack import (
    ApprovalRequired,
    DependencyNotMet,
    InvalidInput,
    InvalidTransition,
    MigrationNotFound,
    RuleViolation,
)
from migratrack.core.commands import (
    ApprovePhase,
    Cancel,
    CompletePhase,
    CompleteSubTask,
    FailPhase,
    FailSubTask,
    Pause,
    Resume,
    RetryPhase,
    SkipPhase,
    SkipSubTask,
    StartPhase,
    StartSubTask,
)
from migratrack.errors import PhaseNotFound, SubTaskNotFound
from migratrack.service import MigrationService

from .conftest import ACTOR, MID

if TYPE_CHECKING:
    from conftest import FakeClock


def status(svc: MigrationService, phase: str) -> str:
    return svc.state(MID).phases[phase].status.value


def progress(svc: MigrationService, phase: str) -> float:
    return svc.state(MID).phases[phase].progress


def run_setup(svc: MigrationService) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.execute(MID, CompletePhase("setup"), actor=ACTOR)


def snapshot(svc: MigrationService) -> tuple[Any, ...]:
    state = svc.state(MID)
    return (
        {pid: p.to_dict() for pid, p in state.phases.items()},
        state.metrics.to_dict(), state.header_dict(), state.seq,
        [e.to_dict() for e in svc.events(MID)],
        [a.to_dict() for a in svc.alerts(MID)],
    )


# -- the status table ---------------------------------------------------------------------

def test_a_phase_goes_pending_in_progress_completed(svc: MigrationService) -> None:
    assert status(svc, "setup") == "pending"
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    assert status(svc, "setup") == "in_progress"
    svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    assert status(svc, "setup") == "completed"
    assert progress(svc, "setup") == 100


def test_a_phase_can_fail_from_in_progress_and_be_retried_only_then(svc: MigrationService) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.execute(MID, FailPhase("setup", "disk full"), actor=ACTOR)
    assert status(svc, "setup") == "failed"
    with pytest.raises(InvalidTransition, match="retry_phase"):
        svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.execute(MID, RetryPhase("setup"), actor=ACTOR)
    phase = svc.state(MID).phases["setup"]
    assert phase.status.value == "in_progress"
    assert phase.attempts == 2
    assert phase.errors == ["disk full"]  # the history of failures is kept


@pytest.mark.parametrize("prepare", ["pending", "in_progress", "completed", "skipped"])
def test_retry_is_refused_unless_failed(svc: MigrationService, prepare: str) -> None:
    if prepare in ("in_progress", "completed"):
        svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    if prepare == "completed":
        svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    if prepare == "skipped":
        svc.execute(MID, SkipPhase("setup", "not needed"), actor=ACTOR)
    before = snapshot(svc)
    if prepare == "in_progress":
        svc.execute(MID, RetryPhase("setup"), actor=ACTOR)  # already running: a repeat is harmless
    else:
        with pytest.raises(InvalidTransition) as info:
            svc.execute(MID, RetryPhase("setup"), actor=ACTOR)
        assert info.value.current == prepare
        assert info.value.requested == "retry"
    assert snapshot(svc) == before


def test_skip_from_pending_and_failed_but_not_from_running_or_completed(svc: MigrationService) -> None:
    svc.execute(MID, SkipPhase("setup", "done by hand"), actor=ACTOR)
    phase = svc.state(MID).phases["setup"]
    assert phase.status.value == "skipped" and phase.skip_reason == "done by hand"
    svc.execute(MID, StartPhase("files"), actor=ACTOR)
    with pytest.raises(InvalidTransition, match="only pending or failed"):
        svc.execute(MID, SkipPhase("files", "x"), actor=ACTOR)
    svc.execute(MID, FailPhase("files", "boom"), actor=ACTOR)
    svc.execute(MID, SkipPhase("files", "copied by the vendor"), actor=ACTOR)
    assert status(svc, "files") == "skipped"
    svc.execute(MID, StartPhase("copy"), actor=ACTOR)  # a skipped dependency counts as done
    for sub in ("users", "orders"):
        svc.execute(MID, StartSubTask("copy", sub), actor=ACTOR)
        svc.execute(MID, CompleteSubTask("copy", sub), actor=ACTOR)
    svc.execute(MID, CompletePhase("copy"), actor=ACTOR)
    with pytest.raises(InvalidTransition):
        svc.execute(MID, SkipPhase("copy", "x"), actor=ACTOR)


@pytest.mark.parametrize("verb", ["complete", "start_after_complete", "fail_after_complete", "fail_after_skip"])
def test_illegal_moves_carry_current_and_requested_state(svc: MigrationService, verb: str) -> None:
    if verb != "complete":
        svc.execute(MID, StartPhase("setup"), actor=ACTOR)
        svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    if verb == "fail_after_skip":
        svc.execute(MID, SkipPhase("files", "no"), actor=ACTOR)
    before = snapshot(svc)
    with pytest.raises(InvalidTransition) as info:
        if verb == "complete":
            svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
        elif verb == "start_after_complete":
            svc.execute(MID, StartPhase("setup"), actor=ACTOR)
        elif verb == "fail_after_complete":
            svc.execute(MID, FailPhase("setup", "late"), actor=ACTOR)
        else:
            svc.execute(MID, FailPhase("files", "late"), actor=ACTOR)
    expected = {"complete": ("pending", "complete"), "start_after_complete": ("completed", "start"),
                "fail_after_complete": ("completed", "fail"), "fail_after_skip": ("skipped", "fail")}[verb]
    assert (info.value.current, info.value.requested) == expected
    assert snapshot(svc) == before


def test_repeating_a_transition_is_idempotent(svc: MigrationService) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    seq = svc.state(MID).seq
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    assert svc.state(MID).seq == seq
    assert svc.state(MID).phases["setup"].attempts == 1
    svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    seq = svc.state(MID).seq
    svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    assert svc.state(MID).seq == seq
    svc.execute(MID, StartPhase("files"), actor=ACTOR)
    svc.execute(MID, FailPhase("files", "boom"), actor=ACTOR)
    seq = svc.state(MID).seq
    svc.execute(MID, FailPhase("files", "boom"), actor=ACTOR)  # the same failure reported twice
    assert svc.state(MID).seq == seq
    assert svc.state(MID).phases["files"].errors == ["boom"]
    svc.execute(MID, SkipPhase("files", "later"), actor=ACTOR)
    seq = svc.state(MID).seq
    svc.execute(MID, SkipPhase("files", "later"), actor=ACTOR)
    assert svc.state(MID).seq == seq


def test_unknown_migration_phase_and_sub_task_are_not_found(svc: MigrationService) -> None:
    with pytest.raises(MigrationNotFound, match="initialize_migration"):
        svc.execute("nope", StartPhase("setup"), actor=ACTOR)
    with pytest.raises(PhaseNotFound, match="known phases: setup, copy, files, cutover"):
        svc.execute(MID, StartPhase("nope"), actor=ACTOR)
    run_setup(svc)
    svc.execute(MID, StartPhase("copy"), actor=ACTOR)
    with pytest.raises(SubTaskNotFound, match="known sub-tasks: users, orders"):
        svc.execute(MID, StartSubTask("copy", "nope"), actor=ACTOR)
    with pytest.raises(SubTaskNotFound):
        svc.update_sub_task_progress(MID, "copy", "nope", 10, actor=ACTOR)


# -- dependencies and approval ------------------------------------------------------------

def test_dependency_error_names_every_blocking_phase(svc: MigrationService) -> None:
    before = snapshot(svc)
    with pytest.raises(DependencyNotMet) as info:
        svc.execute(MID, StartPhase("cutover"), actor=ACTOR)
    assert info.value.blocking == ["copy", "files"]
    assert "'copy'" in str(info.value) and "'files'" in str(info.value)
    assert snapshot(svc) == before
    run_setup(svc)
    svc.execute(MID, StartPhase("files"), actor=ACTOR)
    svc.execute(MID, CompletePhase("files"), actor=ACTOR)
    with pytest.raises(DependencyNotMet) as info:
        svc.execute(MID, StartPhase("cutover"), actor=ACTOR)
    assert info.value.blocking == ["copy"]


def test_an_in_progress_or_failed_dependency_still_blocks(svc: MigrationService) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    with pytest.raises(DependencyNotMet, match="'setup'"):
        svc.execute(MID, StartPhase("files"), actor=ACTOR)
    svc.execute(MID, FailPhase("setup", "x"), actor=ACTOR)
    with pytest.raises(DependencyNotMet, match="'setup'"):
        svc.execute(MID, StartPhase("files"), actor=ACTOR)


def finish_all_but_cutover(svc: MigrationService) -> None:
    run_setup(svc)
    svc.execute(MID, SkipPhase("copy", "no data"), actor=ACTOR)
    svc.execute(MID, StartPhase("files"), actor=ACTOR)
    svc.execute(MID, CompletePhase("files"), actor=ACTOR)


def test_approval_gate(svc: MigrationService, clock: FakeClock) -> None:
    finish_all_but_cutover(svc)
    before = snapshot(svc)
    with pytest.raises(ApprovalRequired, match=r"approve_phase\('cutover'"):
        svc.execute(MID, StartPhase("cutover"), actor=ACTOR)
    assert snapshot(svc) == before
    svc.execute(MID, ApprovePhase("cutover", "alice"), actor="ops")
    phase = svc.state(MID).phases["cutover"]
    assert phase.approved_by == "alice" and phase.approved_at == clock()
    svc.execute(MID, StartPhase("cutover"), actor=ACTOR)
    assert status(svc, "cutover") == "in_progress"
    approval = [e for e in svc.events(MID) if e.type == "phase.approved"]
    assert [(e.actor, e.payload) for e in approval] == [("ops", {"phase": "cutover", "by": "alice"})]


def test_approval_may_come_before_the_dependencies_finish(svc: MigrationService) -> None:
    svc.execute(MID, ApprovePhase("cutover", "alice"), actor=ACTOR)
    with pytest.raises(DependencyNotMet):
        svc.execute(MID, StartPhase("cutover"), actor=ACTOR)
    finish_all_but_cutover(svc)
    svc.execute(MID, StartPhase("cutover"), actor=ACTOR)


def test_approval_needs_an_approver_and_is_refused_for_finished_phases(svc: MigrationService) -> None:
    with pytest.raises(InvalidInput):
        svc.execute(MID, ApprovePhase("cutover", "  "), actor=ACTOR)
    run_setup(svc)
    with pytest.raises(InvalidTransition):
        svc.execute(MID, ApprovePhase("setup", "alice"), actor=ACTOR)


# -- progress -----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), -0.1, 100.5, True, "50", None])
def test_invalid_progress_is_rejected_and_writes_nothing(svc: MigrationService, bad: Any) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.update_phase_progress(MID, "setup", 10, actor=ACTOR)
    before = snapshot(svc)
    with pytest.raises(InvalidInput):
        if bad is None:
            svc.update_phase_progress(MID, "setup", "x", actor=ACTOR)  # type: ignore[arg-type]
        else:
            svc.update_phase_progress(MID, "setup", bad, actor=ACTOR)
    with pytest.raises(InvalidInput):
        svc.update_sub_task_progress(MID, "setup", "users", bad if bad is not None else "x", actor=ACTOR)
    assert snapshot(svc) == before


def run_setup_copy_started(svc: MigrationService) -> None:
    run_setup(svc)
    svc.execute(MID, StartPhase("copy"), actor=ACTOR)


@pytest.mark.parametrize("value", [0, 0.0, 42, 99.999, 100])
def test_progress_bounds_are_inclusive(svc: MigrationService, value: float) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.update_phase_progress(MID, "setup", value, actor=ACTOR)
    assert progress(svc, "setup") == value
    assert status(svc, "setup") == "in_progress"  # 100% is not completion


def test_progress_never_goes_backwards_and_stale_values_are_silently_ignored(svc: MigrationService) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.update_phase_progress(MID, "setup", 60, actor=ACTOR)
    seq = svc.state(MID).seq
    svc.update_phase_progress(MID, "setup", 30, actor=ACTOR)  # a stale update from another worker
    svc.update_phase_progress(MID, "setup", 60, actor=ACTOR)  # a repeat
    assert progress(svc, "setup") == 60
    assert svc.state(MID).seq == seq  # nothing recorded for a no-op
    svc.update_phase_progress(MID, "setup", 61.5, actor=ACTOR)
    assert progress(svc, "setup") == 61.5


def test_progress_on_a_pending_phase_is_an_error_and_late_progress_after_the_end_is_ignored(
    svc: MigrationService,
) -> None:
    with pytest.raises(InvalidTransition, match=r"start_phase\('setup'\) first"):
        svc.update_phase_progress(MID, "setup", 10, actor=ACTOR)
    run_setup(svc)
    seq = svc.state(MID).seq
    svc.update_phase_progress(MID, "setup", 10, actor=ACTOR)
    svc.update_phase_progress(MID, "setup", done=3, total=10, actor=ACTOR)
    assert progress(svc, "setup") == 100
    assert svc.state(MID).seq == seq


def test_counts_give_progress_and_the_total_may_be_revised(svc: MigrationService) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.update_phase_progress(MID, "setup", done=25, total=100, actor=ACTOR)
    phase = svc.state(MID).phases["setup"]
    assert (phase.done, phase.total, phase.progress) == (25, 100, 25)
    svc.update_phase_progress(MID, "setup", done=50, actor=ACTOR)
    assert progress(svc, "setup") == 50
    svc.update_phase_progress(MID, "setup", total=200, actor=ACTOR)  # the total grew: progress does not drop
    phase = svc.state(MID).phases["setup"]
    assert (phase.done, phase.total, phase.progress) == (50, 200, 50)
    svc.update_phase_progress(MID, "setup", done=150, actor=ACTOR)
    assert progress(svc, "setup") == 75
    svc.update_phase_progress(MID, "setup", done=120, actor=ACTOR)  # stale count
    assert svc.state(MID).phases["setup"].done == 150


def test_done_above_total_warns_once_and_caps_progress(svc: MigrationService) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.update_phase_progress(MID, "setup", done=10, total=100, actor=ACTOR)
    svc.update_phase_progress(MID, "setup", done=120, actor=ACTOR)
    phase = svc.state(MID).phases["setup"]
    assert phase.done == 120 and phase.progress == 100
    assert phase.status.value == "in_progress"
    [alert] = svc.alerts(MID)
    assert alert.level.value == "warning" and alert.phase == "setup"
    assert "120" in alert.message and "100" in alert.message
    assert phase.warnings == [alert.message]
    svc.update_phase_progress(MID, "setup", done=130, actor=ACTOR)
    svc.update_phase_progress(MID, "setup", add=5, actor=ACTOR)
    assert len(svc.alerts(MID)) == 1  # once per crossing, not per report
    assert svc.state(MID).phases["setup"].done == 135
    svc.update_phase_progress(MID, "setup", total=200, actor=ACTOR)  # revised: back under
    svc.update_phase_progress(MID, "setup", done=201, actor=ACTOR)  # crosses again
    assert len(svc.alerts(MID)) == 2
    assert len(svc.state(MID).phases["setup"].warnings) == 2


def test_add_progress_sums_increments(svc: MigrationService) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.update_phase_progress(MID, "setup", total=40, actor=ACTOR)
    for _ in range(10):
        svc.update_phase_progress(MID, "setup", add=2, actor=ACTOR)
    phase = svc.state(MID).phases["setup"]
    assert phase.done == 20 and phase.progress == 50


@pytest.mark.parametrize("field", ["done", "total", "add"])
@pytest.mark.parametrize("bad", [-1, 1.5, float("nan"), True, "3"])
def test_invalid_counts_are_rejected(svc: MigrationService, field: str, bad: Any) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    before = snapshot(svc)
    with pytest.raises(InvalidInput):
        svc.update_phase_progress(MID, "setup", **{field: bad}, actor=ACTOR)
    assert snapshot(svc) == before


def test_zero_total_means_done(svc: MigrationService) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.update_phase_progress(MID, "setup", done=0, total=0, actor=ACTOR)
    assert progress(svc, "setup") == 100


def test_metadata_is_merged_per_phase(svc: MigrationService) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.update_phase_progress(MID, "setup", 50, {"currentTask": "Creating VPC", "resourcesCreated": 10},
                              actor=ACTOR)
    svc.update_phase_progress(MID, "setup", 40, {"resourcesCreated": 12}, actor=ACTOR)
    phase = svc.state(MID).phases["setup"]
    assert phase.metadata == {"currentTask": "Creating VPC", "resourcesCreated": 12}
    assert phase.progress == 50
    with pytest.raises(InvalidInput, match="metadata"):
        svc.update_phase_progress(MID, "setup", 60, ["not", "a", "dict"], actor=ACTOR)  # type: ignore[arg-type]


# -- sub-tasks ----------------------------------------------------------------------------

def test_sub_tasks_roll_up_weighted_by_estimate(svc: MigrationService) -> None:
    run_setup_copy_started(svc)
    svc.execute(MID, StartSubTask("copy", "orders"), actor=ACTOR)  # weight 3 of 4
    svc.update_sub_task_progress(MID, "copy", "orders", 50, actor=ACTOR)
    assert svc.dashboard(MID).phases[1].progress == pytest.approx(37.5)
    svc.execute(MID, StartSubTask("copy", "users"), actor=ACTOR)
    svc.execute(MID, CompleteSubTask("copy", "users"), actor=ACTOR)
    assert svc.dashboard(MID).phases[1].progress == pytest.approx(62.5)
    svc.update_sub_task_progress(MID, "copy", "orders", 20, actor=ACTOR)  # stale: ignored
    assert svc.state(MID).phases["copy"].sub_tasks["orders"].progress == 50


def test_a_phase_completes_only_when_its_sub_tasks_are_finished(svc: MigrationService) -> None:
    run_setup_copy_started(svc)
    svc.execute(MID, StartSubTask("copy", "users"), actor=ACTOR)
    svc.execute(MID, CompleteSubTask("copy", "users"), actor=ACTOR)
    before = snapshot(svc)
    with pytest.raises(RuleViolation, match="orders"):
        svc.execute(MID, CompletePhase("copy"), actor=ACTOR)
    assert snapshot(svc) == before
    svc.execute(MID, SkipSubTask("copy", "orders", "empty table"), actor=ACTOR)
    svc.execute(MID, CompletePhase("copy"), actor=ACTOR)
    assert status(svc, "copy") == "completed"


def test_sub_task_lifecycle_and_errors(svc: MigrationService) -> None:
    with pytest.raises(InvalidTransition, match="start phase 'copy' first"):
        svc.execute(MID, StartSubTask("copy", "users"), actor=ACTOR)
    run_setup_copy_started(svc)
    with pytest.raises(InvalidTransition, match="start_sub_task"):
        svc.update_sub_task_progress(MID, "copy", "users", 5, actor=ACTOR)
    with pytest.raises(InvalidTransition):
        svc.execute(MID, CompleteSubTask("copy", "users"), actor=ACTOR)
    svc.execute(MID, StartSubTask("copy", "users"), actor=ACTOR)
    svc.update_sub_task_progress(MID, "copy", "users", 40, actor=ACTOR)
    svc.execute(MID, FailSubTask("copy", "users", "connection reset"), actor=ACTOR)
    state = svc.state(MID)
    sub = state.phases["copy"].sub_tasks["users"]
    assert sub.status.value == "failed" and sub.error == "connection reset"
    assert state.phases["copy"].errors == ["users: connection reset"]
    [alert] = svc.alerts(MID)
    assert alert.level.value == "warning" and "connection reset" in alert.message
    svc.execute(MID, StartSubTask("copy", "users"), actor=ACTOR)  # a failed sub-task starts again
    sub = svc.state(MID).phases["copy"].sub_tasks["users"]
    assert sub.status.value == "in_progress" and sub.error is None and sub.progress == 40
    svc.execute(MID, CompleteSubTask("copy", "users"), actor=ACTOR)
    assert svc.state(MID).phases["copy"].sub_tasks["users"].progress == 100


def test_retry_of_a_phase_resets_its_failed_sub_tasks(svc: MigrationService) -> None:
    run_setup_copy_started(svc)
    svc.execute(MID, StartSubTask("copy", "users"), actor=ACTOR)
    svc.execute(MID, CompleteSubTask("copy", "users"), actor=ACTOR)
    svc.execute(MID, StartSubTask("copy", "orders"), actor=ACTOR)
    svc.execute(MID, FailSubTask("copy", "orders", "timeout"), actor=ACTOR)
    svc.execute(MID, FailPhase("copy", "orders failed"), actor=ACTOR)
    svc.execute(MID, RetryPhase("copy"), actor=ACTOR)
    subs = svc.state(MID).phases["copy"].sub_tasks
    assert subs["users"].status.value == "completed"
    assert subs["orders"].status.value == "pending"


# -- overall progress ---------------------------------------------------------------------

def test_overall_progress_is_weighted_by_estimate_and_skipped_counts_as_done(svc: MigrationService) -> None:
    # weights: setup 10, copy 30, files 20, cutover 5 (of 65)
    assert svc.overview(MID).overall_progress == 0
    run_setup(svc)
    assert svc.overview(MID).overall_progress == pytest.approx(100 * 10 / 65, abs=1e-3)
    svc.execute(MID, StartPhase("files"), actor=ACTOR)
    svc.update_phase_progress(MID, "files", 50, actor=ACTOR)
    assert svc.overview(MID).overall_progress == pytest.approx(100 * 20 / 65, abs=1e-3)
    svc.execute(MID, SkipPhase("copy", "already there"), actor=ACTOR)
    assert svc.overview(MID).overall_progress == pytest.approx(100 * 50 / 65, abs=1e-3)


def test_overall_progress_is_equal_weights_without_estimates(service: MigrationService) -> None:
    service.initialize("m", [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}], actor=ACTOR)
    service.execute("m", StartPhase("a"), actor=ACTOR)
    service.update_phase_progress("m", "a", 100, actor=ACTOR)
    service.execute("m", SkipPhase("b", "no"), actor=ACTOR)
    assert service.overview("m").overall_progress == 50


# -- metrics ------------------------------------------------------------------------------

def test_counters_are_exact_and_error_rate_is_derived(svc: MigrationService) -> None:
    for _ in range(50):
        svc.update_metrics(MID, increments={"successful_operations": 3, "total_data_migrated": 1024}, actor=ACTOR)
    svc.update_metrics(MID, increments={"failed_operations": 2}, actor=ACTOR)
    m = svc.dashboard(MID).metrics
    assert (m.successful_operations, m.failed_operations, m.total_data_migrated) == (150, 2, 51200)
    assert m.error_rate == pytest.approx(200 / 152)


def test_a_client_error_rate_is_not_trusted_when_counts_are_known(svc: MigrationService) -> None:
    svc.update_metrics(MID, {"errorRate": 1.2}, actor=ACTOR)
    assert svc.dashboard(MID).metrics.error_rate == 1.2  # no counts yet: the reported gauge
    svc.update_metrics(MID, {"successfulOperations": 150, "failedOperations": 3, "errorRate": 50}, actor=ACTOR)
    assert svc.dashboard(MID).metrics.error_rate == pytest.approx(300 / 153)


def test_error_rate_above_ten_percent_warns_once_per_crossing(svc: MigrationService) -> None:
    def rate_alerts() -> list[Any]:
        return [a for a in svc.alerts(MID) if a.source == "rule:error-rate"]

    svc.update_metrics(MID, increments={"successful_operations": 90, "failed_operations": 10}, actor=ACTOR)
    assert rate_alerts() == []  # exactly 10% is not above
    svc.update_metrics(MID, increments={"failed_operations": 1}, actor=ACTOR)
    [alert] = rate_alerts()
    assert alert.level.value == "warning" and "10%" in alert.message
    svc.update_metrics(MID, increments={"failed_operations": 5}, actor=ACTOR)
    assert len(rate_alerts()) == 1  # still above: no new alert
    svc.update_metrics(MID, increments={"successful_operations": 1000}, actor=ACTOR)  # back under
    svc.update_metrics(MID, {"failed_operations": 500}, actor=ACTOR)  # a set crosses again
    assert len(rate_alerts()) == 2


def test_an_error_rate_hovering_around_the_threshold_warns_once(svc: MigrationService) -> None:
    def rate_alerts() -> list[Any]:
        return [a for a in svc.alerts(MID) if a.source == "rule:error-rate"]

    svc.update_metrics(MID, increments={"successful_operations": 88, "failed_operations": 12}, actor=ACTOR)
    assert len(rate_alerts()) == 1  # 12%
    for _ in range(5):  # 9.x% and back above 10%, again and again: no new alert
        svc.update_metrics(MID, increments={"successful_operations": 30}, actor=ACTOR)
        svc.update_metrics(MID, increments={"failed_operations": 5}, actor=ACTOR)
    assert len(rate_alerts()) == 1
    svc.update_metrics(MID, increments={"successful_operations": 2000}, actor=ACTOR)  # down to half: re-armed
    svc.update_metrics(MID, increments={"failed_operations": 400}, actor=ACTOR)
    assert len(rate_alerts()) == 2


def test_nested_resource_and_cost_metrics(svc: MigrationService) -> None:
    svc.update_metrics(MID, {
        "migrationSpeed": 25 * 1024 * 1024, "averageOperationTime": 12.5,
        "resourceUtilization": {"cpu": 55, "memory": 70, "network": 1e6, "storage": 5e9},
        "costMetrics": {"estimatedCost": 1200, "actualCost": 35.5, "costPerGB": 0.02},
    }, actor=ACTOR)
    svc.update_metrics(MID, {"resource_utilization": {"cpu": 60}}, actor=ACTOR)  # partial: memory kept
    m = svc.dashboard(MID).metrics
    assert m.migration_speed == 25 * 1024 * 1024
    assert m.average_operation_time == 12.5
    assert m.resource_utilization == {"cpu": 60, "memory": 70, "network": 1e6, "storage": 5e9}
    assert m.cost_metrics == {"estimated_cost": 1200, "actual_cost": 35.5, "cost_per_gb": 0.02}


@pytest.mark.parametrize("values,increments", [
    ({"cpu": 5}, {}),
    ({"resource_utilization": {"cpu": 150}}, {}),
    ({"resource_utilization": {"gpu": 1}}, {}),
    ({"error_rate": float("nan")}, {}),
    ({"migration_speed": -1}, {}),
    ({"successful_operations": 1.5}, {}),
    ({}, {"migration_speed": 1}),
    ({}, {"failed_operations": -1}),
    ({"migration_speed": 5}, {"failed_operations": True}),
])
def test_invalid_metrics_are_rejected_and_write_nothing(
    svc: MigrationService, values: dict[str, Any], increments: dict[str, Any]
) -> None:
    before = snapshot(svc)
    with pytest.raises(InvalidInput):
        svc.update_metrics(MID, values, increments, actor=ACTOR)
    assert snapshot(svc) == before


# -- durations, errors --------------------------------------------------------------------

def test_actual_durations_come_from_the_injected_clock(svc: MigrationService, clock: FakeClock) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    clock.advance(90)
    svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    svc.execute(MID, StartPhase("files"), actor=ACTOR)
    clock.advance(30)
    svc.execute(MID, FailPhase("files", "boom"), actor=ACTOR)
    clock.advance(1000)  # time spent failed is not work
    svc.execute(MID, RetryPhase("files"), actor=ACTOR)
    clock.advance(20)
    svc.execute(MID, CompletePhase("files"), actor=ACTOR)
    phases = {p.id: p for p in svc.dashboard(MID).phases}
    assert phases["setup"].actual_seconds == 90
    assert phases["files"].actual_seconds == 50
    assert phases["files"].attempts == 2
    assert phases["copy"].actual_seconds is None
    completed = [e for e in svc.events(MID) if e.type == "phase.completed"]
    assert [e.payload["duration_seconds"] for e in completed] == [90, 20]


def test_errors_and_failure_alerts_are_kept_per_phase(svc: MigrationService) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.execute(MID, FailPhase("setup", "quota exceeded"), actor=ACTOR)
    svc.execute(MID, RetryPhase("setup"), actor=ACTOR)
    svc.execute(MID, FailPhase("setup", "quota still exceeded"), actor=ACTOR)
    d = svc.dashboard(MID)
    assert d.phases[0].errors == ["quota exceeded", "quota still exceeded"]
    assert [(e.phase, e.error) for e in d.overview.errors] == [("setup", "quota exceeded"),
                                                               ("setup", "quota still exceeded")]
    levels = [(a.level.value, a.phase) for a in svc.alerts(MID)]
    assert levels == [("error", "setup"), ("error", "setup")]
    with pytest.raises(InvalidInput):
        svc.execute(MID, FailPhase("files", ""), actor=ACTOR)


# -- alerts -------------------------------------------------------------------------------

def test_alerts_have_levels_and_optional_phase(svc: MigrationService, clock: FakeClock) -> None:
    svc.create_alert(MID, "info", "Migration phase started", actor=ACTOR)
    clock.advance(1)
    svc.create_alert(MID, "warning", "High resource usage", "setup", actor=ACTOR)
    clock.advance(1)
    svc.create_alert(MID, "critical", "Data loss suspected", "copy", actor=ACTOR)
    alerts = svc.alerts(MID)
    assert [(a.level.value, a.message, a.phase) for a in alerts] == [
        ("critical", "Data loss suspected", "copy"),
        ("warning", "High resource usage", "setup"),
        ("info", "Migration phase started", None),
    ]
    assert all(a.source == "user" and a.actor == ACTOR for a in alerts)
    assert svc.overview(MID).alert_counts == {"info": 1, "warning": 1, "error": 0, "critical": 1}


@pytest.mark.parametrize("level,message,phase", [
    ("fatal", "x", None), ("info", "", None), ("info", "x", "nope"), ("info", 5, None),
])
def test_invalid_alerts_are_rejected_and_write_nothing(
    svc: MigrationService, level: str, message: Any, phase: str | None
) -> None:
    before = snapshot(svc)
    with pytest.raises((InvalidInput, PhaseNotFound)):
        svc.create_alert(MID, level, message, phase, actor=ACTOR)
    assert snapshot(svc) == before


def test_acknowledging_an_alert(svc: MigrationService) -> None:
    alert = svc.create_alert(MID, "error", "x", actor=ACTOR)
    assert svc.overview(MID).unacknowledged_alerts == 1
    svc.acknowledge_alert(MID, alert.id, "bob", actor=ACTOR)
    assert svc.overview(MID).unacknowledged_alerts == 0
    assert svc.alerts(MID)[0].acknowledged_by == "bob"
    assert svc.alerts(MID, unacknowledged_only=True) == []


# -- derived status and control -----------------------------------------------------------

def test_migration_status_is_derived(svc: MigrationService) -> None:
    def st() -> str:
        return svc.overview(MID).status.value

    assert st() == "pending"
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    assert st() == "running"
    svc.execute(MID, Pause("maintenance window"), actor="ops")
    assert st() == "paused"
    svc.execute(MID, Resume(), actor="ops")
    assert st() == "running"
    svc.execute(MID, FailPhase("setup", "boom"), actor=ACTOR)
    assert st() == "failed"
    svc.execute(MID, RetryPhase("setup"), actor=ACTOR)
    assert st() == "running"
    svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    assert st() == "running"  # started, not finished, nothing in progress right now
    finish_rest(svc)
    assert st() == "completed"
    assert svc.overview(MID).finished_at is not None


def finish_rest(svc: MigrationService) -> None:
    svc.execute(MID, SkipPhase("copy", "no"), actor=ACTOR)
    svc.execute(MID, SkipPhase("files", "no"), actor=ACTOR)
    svc.execute(MID, ApprovePhase("cutover", "alice"), actor=ACTOR)
    svc.execute(MID, StartPhase("cutover"), actor=ACTOR)
    svc.execute(MID, CompletePhase("cutover"), actor=ACTOR)


def test_completion_records_an_event_and_an_info_alert(svc: MigrationService) -> None:
    run_setup(svc)
    finish_rest(svc)
    types = [e.type for e in svc.events(MID)]
    assert types.count("migration.completed") == 1
    last_phase_done = max(i for i, t in enumerate(types) if t == "phase.completed")
    assert types[last_phase_done + 1] == "migration.completed"  # announced by the change that finished it
    assert any(a.source == "rule:completed" and a.level.value == "info" for a in svc.alerts(MID))
    with pytest.raises(InvalidTransition):
        svc.execute(MID, Pause(), actor=ACTOR)
    with pytest.raises(InvalidTransition):
        svc.execute(MID, Cancel(), actor=ACTOR)


def test_pause_resume_cancel(svc: MigrationService, clock: FakeClock) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.execute(MID, Pause("risky step next"), actor="ops")
    seq = svc.state(MID).seq
    svc.execute(MID, Pause(), actor="ops")  # already paused
    assert svc.state(MID).seq == seq
    assert svc.control(MID).value == "paused"
    clock.advance(60)
    svc.execute(MID, Resume(), actor="ops")
    svc.execute(MID, Resume(), actor="ops")
    assert svc.control(MID).value == "running"
    assert svc.overview(MID).paused_seconds == 60
    svc.execute(MID, Cancel("wrong account"), actor="ops")
    assert svc.overview(MID).status.value == "cancelled"
    svc.execute(MID, Cancel(), actor="ops")
    before = snapshot(svc)
    for action in (lambda: svc.execute(MID, Resume(), actor="ops"), lambda: svc.execute(MID, Pause(), actor="ops")):
        with pytest.raises(InvalidTransition, match="cancelled"):
            action()
    assert snapshot(svc) == before
    control_events = [(e.type, e.actor, e.payload) for e in svc.events(MID) if e.type.startswith("migration.")][1:]
    assert control_events == [("migration.paused", "ops", {"reason": "risky step next"}),
                              ("migration.resumed", "ops", {}),
                              ("migration.cancelled", "ops", {"reason": "wrong account"})]


def test_cancel_while_paused_closes_the_pause(svc: MigrationService, clock: FakeClock) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    svc.execute(MID, Pause(), actor="ops")
    clock.advance(30)
    svc.execute(MID, Cancel(), actor="ops")
    clock.advance(100)
    o = svc.overview(MID)
    assert o.status.value == "cancelled"
    assert o.paused_seconds == 30


def test_no_phase_starts_after_cancel(svc: MigrationService) -> None:
    svc.execute(MID, Cancel(), actor="ops")
    with pytest.raises(InvalidTransition, match="cancelled"):
        svc.execute(MID, StartPhase("setup"), actor=ACTOR)


# -- the event log ------------------------------------------------------------------------

def test_every_change_is_in_a_gap_free_event_log(svc: MigrationService, clock: FakeClock) -> None:
    steps: list[Callable[[], object]] = [
        lambda: svc.execute(MID, StartPhase("setup"), actor="w1"),
        lambda: svc.update_phase_progress(MID, "setup", 10, actor="w1"),
        lambda: svc.update_phase_progress(MID, "setup", done=5, total=10, actor="w2"),
        lambda: svc.update_metrics(MID, increments={"successful_operations": 1}, actor="w2"),
        lambda: svc.update_metrics(MID, {"migration_speed": 3}, actor="w2"),
        lambda: svc.create_alert(MID, "info", "hello", actor="w1"),
        lambda: svc.execute(MID, Pause(), actor="ops"),
        lambda: svc.execute(MID, Resume(), actor="ops"),
        lambda: svc.execute(MID, CompletePhase("setup"), actor="w1"),
        lambda: svc.execute(MID, ApprovePhase("cutover", "alice"), actor="ops"),
    ]
    for step in steps:
        clock.advance(1)
        step()
    events = svc.events(MID)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].seq == svc.state(MID).seq == svc.overview(MID).last_seq
    assert [e.type for e in events] == [
        "migration.initialized", "phase.started", "phase.progress", "phase.progress", "metrics.updated",
        "metrics.updated", "alert.created", "migration.paused", "alert.created", "migration.resumed",
        "alert.created", "phase.completed", "phase.approved",
    ]
    assert [e.actor for e in events][1:5] == ["w1", "w1", "w2", "w2"]
    ts = [e.ts for e in events]
    assert ts == sorted(ts) and ts[-1] == clock()
    assert events[3].payload == {"phase": "setup", "progress": 50.0, "done": 5, "total": 10}
    assert events[4].payload == {"increment": {"successful_operations": 1}}
    assert svc.events(MID, after=10) == events[10:]
    assert svc.events(MID, after=2, limit=3) == events[2:5]


def test_a_phase_failed_before_it_started_is_retried_only_when_its_dependencies_are_done(
    svc: MigrationService,
) -> None:
    svc.execute(MID, FailPhase("files", "pre-check: bucket missing"), actor=ACTOR)  # pending -> failed
    before = snapshot(svc)
    with pytest.raises(DependencyNotMet, match="'setup'"):
        svc.execute(MID, RetryPhase("files"), actor=ACTOR)
    assert snapshot(svc) == before
    run_setup(svc)
    svc.execute(MID, RetryPhase("files"), actor=ACTOR)
    assert status(svc, "files") == "in_progress"


def test_a_gated_phase_failed_before_it_started_still_needs_approval(svc: MigrationService) -> None:
    finish_all_but_cutover(svc)
    svc.execute(MID, FailPhase("cutover", "change freeze"), actor=ACTOR)
    with pytest.raises(ApprovalRequired):
        svc.execute(MID, RetryPhase("cutover"), actor=ACTOR)
    svc.execute(MID, ApprovePhase("cutover", "alice"), actor=ACTOR)
    svc.execute(MID, RetryPhase("cutover"), actor=ACTOR)
    assert status(svc, "cutover") == "in_progress"


def test_the_error_rate_threshold_comes_from_the_migration_metadata(service: MigrationService) -> None:
    service.initialize("m", [{"id": "a"}], metadata={"error_rate_threshold": 50}, actor=ACTOR)
    service.update_metrics("m", increments={"successful_operations": 8, "failed_operations": 2}, actor=ACTOR)
    assert [a for a in service.alerts("m") if a.source == "rule:error-rate"] == []  # 20% is under 50%
    # the same id started afresh with the default threshold (10%)
    service.initialize("m", [{"id": "a"}], replace=True, actor=ACTOR)
    service.update_metrics("m", increments={"successful_operations": 8, "failed_operations": 2}, actor=ACTOR)
    assert [a.message for a in service.alerts("m") if a.source == "rule:error-rate"] == [
        "error rate 20.0% is above the 10% threshold"]


def test_an_empty_increment_is_still_checked(svc: MigrationService) -> None:
    with pytest.raises(InvalidTransition, match="start_phase"):
        svc.update_phase_progress(MID, "setup", add=0, actor=ACTOR)
    with pytest.raises(PhaseNotFound):
        svc.update_phase_progress(MID, "nope", add=0, actor=ACTOR)
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    seq = svc.state(MID).seq
    svc.update_phase_progress(MID, "setup", add=0, actor=ACTOR)  # running: a harmless no-op
    assert svc.state(MID).seq == seq


def test_a_cancelled_migration_is_not_announced_as_completed(svc: MigrationService) -> None:
    run_setup(svc)
    svc.execute(MID, SkipPhase("copy", "no"), actor=ACTOR)
    svc.execute(MID, SkipPhase("cutover", "no"), actor=ACTOR)
    svc.execute(MID, StartPhase("files"), actor=ACTOR)
    svc.execute(MID, Cancel("abandon"), actor="ops")
    svc.execute(MID, CompletePhase("files"), actor=ACTOR)  # the worker finishes the step it was on
    assert status(svc, "files") == "completed"  # the truth is recorded
    assert svc.overview(MID).status.value == "cancelled"
    assert "migration.completed" not in [e.type for e in svc.events(MID)]
    assert not [a for a in svc.alerts(MID) if a.source == "rule:completed"]


def test_acknowledging_an_unknown_alert(svc: MigrationService) -> None:
    from migratrack.errors import AlertNotFound

    with pytest.raises(AlertNotFound):
        svc.acknowledge_alert(MID, "nope", "bob", actor=ACTOR)
