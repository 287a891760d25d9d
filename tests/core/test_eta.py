"""The completion estimate: plan, observed rate, calibration, critical path, pauses."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from migratrack.core.commands import Cancel, CompletePhase, FailPhase, Pause, Resume, RetryPhase, SkipPhase, StartPhase
from migratrack.service import MigrationService

from .conftest import ACTOR

if TYPE_CHECKING:
    from conftest import FakeClock

M = "eta"


def init(svc: MigrationService, phases: list[dict[str, Any]]) -> None:
    svc.initialize(M, phases, actor=ACTOR)


def remaining(svc: MigrationService) -> float | None:
    return svc.estimate(M).remaining_seconds


def test_unknown_while_a_phase_has_neither_plan_nor_progress(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a"}, {"id": "b", "dependencies": ["a"]}])
    est = service.estimate(M)
    assert est.completion is None and est.earliest is None and est.remaining_seconds is None
    assert service.overview(M).estimated_completion is None


def test_plan_only_estimate_sums_a_chain(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 10}, {"id": "b", "dependencies": ["a"], "estimated_duration": 5}])
    est = service.estimate(M)
    assert est.remaining_seconds == 15 * 60
    assert est.completion == clock() + timedelta(minutes=15)
    # nothing measured yet: the interval is a plan's usual error, around the plan
    assert est.earliest is not None and est.latest is not None
    assert est.earliest < est.completion < est.latest
    assert est.critical_path == ("a", "b")
    assert est.driver == "a" and est.method == "plan" and est.confidence == "low"


def test_independent_branches_run_side_by_side(service: MigrationService, clock: FakeClock) -> None:
    init(service, [
        {"id": "setup", "estimated_duration": 10},
        {"id": "db", "dependencies": ["setup"], "estimated_duration": 40},
        {"id": "files", "dependencies": ["setup"], "estimated_duration": 30},
        {"id": "cutover", "dependencies": ["db", "files"], "estimated_duration": 5},
    ])
    est = service.estimate(M)
    assert est.remaining_seconds == (10 + 40 + 5) * 60  # not the sum of all (85 minutes)
    assert est.critical_path == ("setup", "db", "cutover")


def test_finished_phases_leave_the_critical_path(service: MigrationService, clock: FakeClock) -> None:
    init(service, [
        {"id": "setup", "estimated_duration": 10},
        {"id": "db", "dependencies": ["setup"], "estimated_duration": 40},
        {"id": "files", "dependencies": ["setup"], "estimated_duration": 30},
    ])
    service.execute(M, StartPhase("setup"), actor=ACTOR)
    clock.advance(minutes=10)
    service.execute(M, CompletePhase("setup"), actor=ACTOR)
    service.execute(M, SkipPhase("db", "done elsewhere"), actor=ACTOR)
    est = service.estimate(M)
    assert est.critical_path == ("files",)
    assert est.remaining_seconds == 30 * 60


def test_observed_rate_blends_in_as_progress_grows(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 100}])  # plan: 100 minutes
    service.execute(M, StartPhase("a"), actor=ACTOR)
    clock.advance(minutes=10)
    service.update_phase_progress(M, "a", 50, actor=ACTOR)  # observed: 10 more minutes
    est = service.estimate(M)
    plan_left, observed_left = 50 * 60, 10 * 60
    assert est.remaining_seconds == pytest.approx(0.5 * observed_left + 0.5 * plan_left)
    # the interval spans the disagreement between the plan and the rate
    assert clock() + timedelta(seconds=observed_left) < est.earliest < est.completion
    assert est.completion < est.latest
    clock.advance(minutes=8)
    service.update_phase_progress(M, "a", 90, actor=ACTOR)  # 18 min for 90%: 2 min left observed
    est = service.estimate(M)
    # the plan said 50% -> 90% would take 40 minutes; it took 8, as the observed pace said: the
    # history judges the estimators, and the plan's voice is gone
    assert est.remaining_seconds == pytest.approx(120, rel=0.05)
    assert est.method != "plan" and est.reason is not None and "plan" in est.reason


def test_tiny_progress_is_not_trusted_as_a_rate(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 60}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    clock.advance(minutes=30)
    service.update_phase_progress(M, "a", 0.1, actor=ACTOR)
    assert remaining(service) == pytest.approx(60 * 60 * 0.999)


def test_without_a_plan_the_observed_rate_speaks_alone(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a"}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    assert remaining(service) is None
    clock.advance(100)
    service.update_phase_progress(M, "a", 25, actor=ACTOR)
    assert remaining(service) == pytest.approx(300)


def test_pending_phases_are_calibrated_by_completed_ones(service: MigrationService, clock: FakeClock) -> None:
    init(service, [
        {"id": "a", "estimated_duration": 10},
        {"id": "b", "dependencies": ["a"], "estimated_duration": 20},
    ])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    clock.advance(minutes=20)  # took twice its plan
    service.execute(M, CompletePhase("a"), actor=ACTOR)
    est = service.estimate(M)
    assert est.calibration == pytest.approx(2.0)
    assert est.remaining_seconds == pytest.approx(40 * 60)


def test_calibration_is_clamped(service: MigrationService, clock: FakeClock) -> None:
    init(service, [
        {"id": "a", "estimated_duration": 1},
        {"id": "b", "dependencies": ["a"], "estimated_duration": 10},
    ])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    clock.advance(minutes=100)
    service.execute(M, CompletePhase("a"), actor=ACTOR)
    assert service.estimate(M).calibration == 4.0
    assert remaining(service) == pytest.approx(40 * 60)


def test_unplanned_pending_phase_takes_the_typical_duration(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a"}, {"id": "b", "dependencies": ["a"]}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    clock.advance(300)
    service.execute(M, CompletePhase("a"), actor=ACTOR)
    assert remaining(service) == pytest.approx(300)


def test_paused_time_is_not_slowness(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 1000}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    clock.advance(600)
    service.update_phase_progress(M, "a", 50, actor=ACTOR)
    before = remaining(service)
    service.execute(M, Pause("night"), actor="ops")
    clock.advance(hours=8)
    service.execute(M, Resume(), actor="ops")
    after = remaining(service)
    assert after == pytest.approx(before)  # 8 paused hours did not change the observed rate
    # and a paused-then-finished phase is not counted as slow when calibrating the next
    service.execute(M, CompletePhase("a"), actor=ACTOR)
    assert service.estimate(M).completion == clock()


def test_paused_time_does_not_slow_calibration(service: MigrationService, clock: FakeClock) -> None:
    init(service, [
        {"id": "a", "estimated_duration": 10},
        {"id": "b", "dependencies": ["a"], "estimated_duration": 10},
    ])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    clock.advance(minutes=5)
    service.execute(M, Pause(), actor="ops")
    clock.advance(hours=3)
    service.execute(M, Resume(), actor="ops")
    clock.advance(minutes=5)
    service.execute(M, CompletePhase("a"), actor=ACTOR)
    assert service.estimate(M).calibration == pytest.approx(1.0)
    assert remaining(service) == pytest.approx(600)


def test_finished_and_cancelled_migrations(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 5}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    clock.advance(60)
    service.execute(M, CompletePhase("a"), actor=ACTOR)
    done_at = clock()
    clock.advance(3600)
    est = service.estimate(M)
    assert est.completion == done_at and est.remaining_seconds == 0
    service.initialize("c", [{"id": "a", "estimated_duration": 5}], actor=ACTOR)
    service.execute("c", Cancel(), actor="ops")
    assert service.estimate("c").completion is None


def test_a_retry_does_not_make_the_phase_look_fast(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 100}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    clock.advance(minutes=50)
    service.update_phase_progress(M, "a", 50, actor=ACTOR)
    before = remaining(service)
    assert before == pytest.approx(50 * 60)
    service.execute(M, FailPhase("a", "network blip"), actor=ACTOR)
    service.execute(M, RetryPhase("a"), actor=ACTOR)
    clock.advance(1)
    # 50% took 50 active minutes over two attempts: the rest is still about 50 minutes away,
    # not the one second that "50% in the 1 s since the retry" would suggest
    assert remaining(service) == pytest.approx(50 * 60, rel=0.01)


def test_while_paused_the_remaining_time_stands_still(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 60}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    clock.advance(minutes=10)
    service.update_phase_progress(M, "a", 25, actor=ACTOR)
    service.execute(M, Pause(), actor="ops")
    first = service.estimate(M)
    clock.advance(hours=2)
    later = service.estimate(M)
    assert later.remaining_seconds == pytest.approx(first.remaining_seconds)
    assert later.completion == first.completion + timedelta(hours=2)  # pushed back by the pause itself


def test_a_phase_planned_at_zero_minutes_takes_no_time(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "copy", "estimated_duration": 10},
                   {"id": "dns-switch", "dependencies": ["copy"], "estimated_duration": 0}])
    est = service.estimate(M)
    assert est.remaining_seconds == 600
    assert est.completion == clock() + timedelta(minutes=10)


def test_a_stall_pushes_the_estimate_back_gradually(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 20}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    clock.advance(minutes=10)
    service.update_phase_progress(M, "a", 50, actor=ACTOR)
    on_time = service.estimate(M).completion
    clock.advance(minutes=30)  # no progress for half an hour
    stalled = service.estimate(M)
    assert stalled.completion is not None and on_time is not None
    assert stalled.completion > on_time + timedelta(minutes=30)  # later than "the same, 30 minutes on"
    assert stalled.remaining_seconds == pytest.approx(0.5 * 40 * 60 + 0.5 * 10 * 60)


def test_unknown_says_why(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 5}, {"id": "b", "dependencies": ["a"]}])
    est = service.estimate(M)
    assert est.completion is None
    assert est.unknown_reason is not None and "'b'" in est.unknown_reason and "estimated_duration" in est.unknown_reason
    assert service.overview(M).estimate.explanation() == est.unknown_reason
    service.execute(M, Cancel(), actor="ops")
    assert service.estimate(M).unknown_reason == "the migration was cancelled"


def report(svc: MigrationService, clock: FakeClock, phase: str, steps: list[tuple[float, float]]) -> None:
    """(seconds to wait, progress) in turn."""
    for wait, progress in steps:
        clock.advance(wait)
        svc.update_phase_progress(M, phase, progress, actor=ACTOR)


def test_a_phase_that_slows_down_is_seen_slowing(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 60}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    # each 5% takes longer than the last: 30 s, 40 s, 50 s...
    report(service, clock, "a", [(30 + 10 * i, 5 * (i + 1)) for i in range(12)])
    active = sum(30 + 10 * i for i in range(12))
    average_left = active / 0.6 * 0.4
    est = service.estimate(M)
    assert est.method == "trend", est.reason
    true_left = sum(30 + 10 * i for i in range(12, 20))  # 1160 s; the average pace says 680 s
    assert est.remaining_seconds is not None
    assert average_left < est.remaining_seconds == pytest.approx(true_left, rel=0.1)
    assert est.earliest is not None and est.latest is not None and est.earliest < est.completion < est.latest


def test_a_finished_stall_is_not_extrapolated(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 30}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    report(service, clock, "a", [(60, 5), (60, 10), (60, 15), (1800, 20)])  # a half-hour lock wait
    report(service, clock, "a", [(60, 25 + 5 * i) for i in range(8)])
    est = service.estimate(M)
    # flowing, the phase does 5% a minute: 40% is 8 minutes; the average (stall included) says 22
    assert est.method == "flowing", est.reason
    assert est.remaining_seconds == pytest.approx(8 * 60, rel=0.15)


def test_paused_hours_between_reports_are_not_slowness(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 100}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    report(service, clock, "a", [(60, 10 * (i + 1)) for i in range(4)])
    service.execute(M, Pause("night"), actor="ops")
    clock.advance(hours=8)
    service.execute(M, Resume(), actor="ops")
    report(service, clock, "a", [(60, 50), (60, 60)])
    assert remaining(service) == pytest.approx(4 * 60, rel=0.02)  # 10% a minute, paused or not


def test_a_revised_total_rescales_instead_of_reading_due(service: MigrationService, clock: FakeClock) -> None:
    init(service, [{"id": "a", "estimated_duration": 10}])
    service.execute(M, StartPhase("a"), actor=ACTOR)
    for i in range(1, 9):
        clock.advance(60)
        service.update_phase_progress(M, "a", done=100 * i, total=1000, actor=ACTOR)
    assert remaining(service) == pytest.approx(120, rel=0.1)  # 800 of 1000 at 100 a minute
    clock.advance(60)
    service.update_phase_progress(M, "a", done=900, total=3000, actor=ACTOR)  # the table was three times bigger
    # percent progress never goes back (it stays at 80%), but the estimate counts items: 2100 to go
    assert service.state(M).phases["a"].progress == 80
    assert remaining(service) == pytest.approx(21 * 60, rel=0.1)


def test_a_rehearsal_is_the_prior_of_the_real_run(service: MigrationService, clock: FakeClock) -> None:
    plan = [{"id": "copy", "estimated_duration": 10},
            {"id": "check", "dependencies": ["copy"], "estimated_duration": 10}]
    service.initialize("rehearsal", plan, actor=ACTOR)
    for pid, minutes in (("copy", 30), ("check", 5)):  # the plan was wrong both ways
        service.execute("rehearsal", StartPhase(pid), actor=ACTOR)
        clock.advance(minutes=minutes)
        service.execute("rehearsal", CompletePhase(pid), actor=ACTOR)
    service.initialize(M, plan, actor=ACTOR, metadata={"eta_prior": "rehearsal"})
    est = service.estimate(M)
    assert est.remaining_seconds == pytest.approx(35 * 60)
    assert est.method == "prior" and est.driver == "copy"
    # a run with no prior (or a prior that does not exist) keeps its plan
    service.initialize("other", plan, actor=ACTOR, metadata={"eta_prior": ["missing"]})
    assert service.estimate("other").remaining_seconds == pytest.approx(20 * 60)


def test_the_explanation_names_the_driving_phase(service: MigrationService, clock: FakeClock) -> None:
    init(service, [
        {"id": "setup", "estimated_duration": 5},
        {"id": "db", "dependencies": ["setup"], "estimated_duration": 60},
        {"id": "files", "dependencies": ["setup"], "estimated_duration": 20},
    ])
    est = service.overview(M).estimate
    assert est.driver == "db" and est.method == "plan" and est.confidence in ("high", "medium", "low")
    text = est.explanation()
    assert text is not None and text.startswith("driven by db (plan:")


def test_a_wide_spread_far_from_its_plan_still_gives_an_estimate(service: MigrationService, clock: FakeClock) -> None:
    """Once a phase has run far past its plan, the interval's upper bound (the remaining work
    times exp(z * spread)) can pass what a date can hold; the estimate is bounded, not a crash
    (it once made a whole /metrics scrape fail)."""
    from migratrack.core.eta import HORIZON_SECONDS
    from migratrack.service import ProgressUpdate

    init(service, [{"id": "p0", "estimated_duration": 60},
                   *({"id": f"p{i}", "dependencies": [f"p{i - 1}"], "estimated_duration": 60 * i}
                     for i in range(1, 8))])
    service.execute(M, StartPhase("p0"), actor=ACTOR)
    for pct in range(5, 100, 5):
        service.apply_updates(M, [ProgressUpdate("p0", progress=pct)], actor=ACTOR)
    service.execute(M, CompletePhase("p0"), actor=ACTOR)
    service.execute(M, StartPhase("p1"), actor=ACTOR)
    service.apply_updates(M, [ProgressUpdate("p1", progress=40)], actor=ACTOR)
    for hours in (1, 24, 24 * 365):
        clock.advance(hours * 3600)
        est = service.estimate(M)
        assert est.remaining_seconds is not None and 0 < est.remaining_seconds <= HORIZON_SECONDS
        assert est.latest is not None and est.completion is not None and est.completion <= est.latest
