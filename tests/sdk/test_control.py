"""Pause, resume and cancel reach every worker at its next report."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from migratrack import MigrationCancelled, MigrationProgressTracker
from migratrack.service import MigrationService

from .conftest import MID, TrackerFactory


@pytest.fixture
def pair(make_tracker: TrackerFactory) -> tuple[MigrationProgressTracker, MigrationProgressTracker]:
    """A worker and an operator, each with its own store connection."""
    worker = make_tracker(actor="worker", poll_interval=0.01, own_connection=True)
    worker.initialize_migration([{"id": "load"}, {"id": "next", "dependencies": ["load"]}])
    worker.start_phase("load")
    operator = make_tracker(actor="ops", own_connection=True)
    return worker, operator


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, errors


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def settled(value: Callable[[], int], timeout: float = 10.0) -> int:
    """The value once it stopped changing for a while (the worker noticed the pause)."""
    deadline = time.monotonic() + timeout
    last = value()
    while True:
        time.sleep(0.2)
        now = value()
        if now == last or time.monotonic() > deadline:
            return now
        last = now


def test_checkpoint_blocks_while_paused_and_returns_on_resume(
    pair: tuple[MigrationProgressTracker, MigrationProgressTracker], viewer: MigrationService
) -> None:
    worker, operator = pair
    worker.checkpoint()  # running: returns at once
    operator.pause("DBA wants a snapshot")
    passed = threading.Event()

    def work() -> None:
        worker.checkpoint()
        passed.set()

    th, errors = in_thread(work)
    time.sleep(0.2)
    assert not passed.is_set()  # still waiting: the migration is paused
    assert viewer.overview(MID).status.value == "paused"
    operator.resume()
    th.join(10)
    assert passed.is_set() and not errors


def test_checkpoint_raises_once_cancelled_even_while_waiting(
    pair: tuple[MigrationProgressTracker, MigrationProgressTracker],
) -> None:
    worker, operator = pair
    operator.pause()
    th, errors = in_thread(worker.checkpoint)
    time.sleep(0.1)
    assert th.is_alive()
    operator.cancel("abort")
    th.join(10)
    assert not th.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], MigrationCancelled)
    with pytest.raises(MigrationCancelled, match="cancelled"):
        worker.checkpoint()


def test_progress_calls_block_while_paused(
    pair: tuple[MigrationProgressTracker, MigrationProgressTracker], viewer: MigrationService
) -> None:
    worker, operator = pair
    operator.pause()
    reported: list[int] = []

    def loop() -> None:
        for i in range(1, 4):
            worker.update_phase_progress("load", i * 10)
            reported.append(i)
            time.sleep(0.06)  # longer than the control re-check interval

    th, errors = in_thread(loop)
    time.sleep(0.5)
    # the worker stopped inside a progress call (the report itself is recorded: that work was done)
    assert len(reported) <= 2
    operator.resume()
    th.join(10)
    assert reported == [1, 2, 3] and not errors


@pytest.mark.parametrize("sized", [True, False])
def test_track_honours_pause_and_cancel(
    pair: tuple[MigrationProgressTracker, MigrationProgressTracker], viewer: MigrationService, sized: bool
) -> None:
    worker, operator = pair
    seen: list[int] = []
    rows = range(10_000) if sized else (i for i in range(10_000))

    def loop() -> None:
        for row in worker.track(rows, phase="load", start=False):
            seen.append(row)
            if row == 100:
                operator.pause()
            time.sleep(0.0005)

    th, errors = in_thread(loop)
    wait_until(lambda: viewer.control(MID).value == "paused")
    count = settled(lambda: len(seen))
    time.sleep(0.3)
    assert len(seen) == count < 10_000  # no items while paused
    operator.cancel()
    th.join(10)
    assert len(errors) == 1 and isinstance(errors[0], MigrationCancelled)
    assert viewer.state(MID).phases["load"].status.value == "in_progress"


def test_opting_out_of_blocking(
    make_tracker: TrackerFactory, pair: tuple[MigrationProgressTracker, MigrationProgressTracker]
) -> None:
    _, operator = pair
    free = make_tracker(actor="free", block_on_pause=False, own_connection=True)
    assert free.paused is False
    operator.pause()
    assert free.paused is True
    free.update_phase_progress("load", 10)  # does not block
    free.checkpoint()  # does not block either
    operator.resume()
    assert free.paused is False
    operator.cancel()
    assert free.cancelled is True
    with pytest.raises(MigrationCancelled):
        free.checkpoint()


def test_transitions_wait_for_resume_and_fail_after_cancel(
    pair: tuple[MigrationProgressTracker, MigrationProgressTracker], viewer: MigrationService
) -> None:
    worker, operator = pair
    worker.complete_phase("load")
    operator.pause()
    th, errors = in_thread(lambda: worker.start_phase("next"))
    time.sleep(0.2)
    assert viewer.state(MID).phases["next"].status.value == "pending"
    operator.resume()
    th.join(10)
    assert not errors
    assert viewer.state(MID).phases["next"].status.value == "in_progress"


def test_control_is_in_the_audit_trail(
    pair: tuple[MigrationProgressTracker, MigrationProgressTracker], viewer: MigrationService
) -> None:
    _, operator = pair
    operator.pause("maintenance")
    operator.resume()
    operator.cancel("abandon")
    control = [(e.type, e.actor, e.payload) for e in viewer.events(MID) if e.type in
               ("migration.paused", "migration.resumed", "migration.cancelled")]
    assert control == [("migration.paused", "ops", {"reason": "maintenance"}), ("migration.resumed", "ops", {}),
                       ("migration.cancelled", "ops", {"reason": "abandon"})]
    assert viewer.overview(MID).status.value == "cancelled"
