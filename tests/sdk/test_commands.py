"""Commands as values: every verb runs through one ``execute``, and a new verb (revising a
phase's estimate mid-run) reaches the ETA and the audit trail."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest

from migratrack.core.commands import BY_VERB, COMMANDS, StartPhase, Target
from migratrack.errors import InvalidInput, InvalidTransition, PhaseNotFound

from .conftest import TrackerFactory


def test_every_verb_has_one_class_and_one_address() -> None:
    assert len(BY_VERB) == len(COMMANDS)
    paths = {c.path() for c in COMMANDS}
    assert len(paths) == len(COMMANDS)
    assert StartPhase.path() == "phases/{phase}/start"
    assert BY_VERB[(Target.MIGRATION, "pause")].path() == "pause"
    for c in COMMANDS:
        names = {f.name for f in fields(c)}
        assert ("sub_task" in names) == (c.target is Target.SUB_TASK), c
        assert ("phase" in names) == (c.target is not Target.MIGRATION), c


def test_a_revised_estimate_moves_the_eta_and_is_audited(make_tracker: TrackerFactory) -> None:
    now = [datetime(2030, 5, 1, tzinfo=UTC)]
    t = make_tracker("est", clock=lambda: now[0])
    t.initialize_migration([{"id": "copy", "estimated_duration": 60}, {"id": "verify", "dependencies": ["copy"],
                                                                        "estimated_duration": 10}])
    t.start_phase("copy")
    before = t.estimate().remaining_seconds
    assert before is not None
    # the team learns the verify step takes two hours, not ten minutes
    t.revise_estimate("verify", 120)
    after = t.estimate().remaining_seconds
    assert after is not None
    assert after - before == pytest.approx(110 * 60, rel=0.05)
    assert t.get_phase("verify").estimated_seconds == 120 * 60
    event = t.events()[-1]
    assert event.type == "phase.estimate_revised"
    assert event.payload == {"phase": "verify", "minutes": 120.0, "previous_minutes": 10.0}
    assert event.actor == "worker"
    now[0] += timedelta(minutes=1)
    t.revise_estimate("copy", 30)  # mid-run, on the running phase too
    assert t.get_phase("copy").estimated_seconds == 30 * 60


def test_a_revised_estimate_survives_reopening_the_store(make_tracker: TrackerFactory) -> None:
    t = make_tracker("est2")
    t.initialize_migration([{"id": "a", "estimated_duration": 5}])
    t.revise_estimate("a", 45.5)
    t2 = make_tracker("est2", own_connection=True)
    assert t2.get_phase("a").estimated_seconds == 45.5 * 60
    assert t2.initialize_migration([{"id": "a", "estimated_duration": 5}]) is False  # same plan: resumed


@pytest.mark.parametrize("minutes", [0, -5, float("nan"), float("inf"), True, "10"])
def test_a_bad_estimate_is_refused_and_writes_nothing(make_tracker: TrackerFactory, minutes: object) -> None:
    t = make_tracker("est3")
    t.initialize_migration([{"id": "a", "estimated_duration": 5}])
    seq = t.events()[-1].seq
    with pytest.raises(InvalidInput, match="minutes must be a positive number"):
        t.revise_estimate("a", minutes)  # type: ignore[arg-type]
    assert t.events()[-1].seq == seq
    assert t.get_phase("a").estimated_seconds == 5 * 60


def test_a_finished_phase_keeps_its_estimate(make_tracker: TrackerFactory) -> None:
    t = make_tracker("est4")
    t.initialize_migration([{"id": "a", "estimated_duration": 5}])
    t.start_phase("a")
    t.complete_phase("a")
    with pytest.raises(InvalidTransition, match="cannot revise the estimate of phase 'a': it is completed"):
        t.revise_estimate("a", 10)
    with pytest.raises(PhaseNotFound):
        t.revise_estimate("nope", 10)
