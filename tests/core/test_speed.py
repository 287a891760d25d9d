"""Speed: a sliding window over the data counter while running, the average once finished."""

from __future__ import annotations

from typing import TYPE_CHECKING

from migratrack.core.commands import CompletePhase, Pause, Resume, SkipPhase, StartPhase
from migratrack.service import MigrationService

from .conftest import ACTOR, MID

if TYPE_CHECKING:
    from conftest import FakeClock

MIB = 1024 * 1024


def _add(svc: MigrationService, n: int) -> None:
    svc.update_metrics(MID, increments={"total_data_migrated": n}, actor=ACTOR)


def test_running_speed_comes_from_the_last_minute_of_data(svc: MigrationService, clock: FakeClock) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    for _ in range(120):  # 2 minutes at 10 MiB/s
        clock.advance(1)
        _add(svc, 10 * MIB)
    for _ in range(30):  # then half a minute at 40 MiB/s
        clock.advance(1)
        _add(svc, 40 * MIB)
    speed = svc.dashboard(MID).metrics.migration_speed
    # the window holds 30 s at 10 and 30 s at 40: 25 MiB/s (the average since the start is 16)
    assert speed == 25 * MIB
    clock.advance(30)  # nothing for half a minute: the window's speed falls
    assert svc.dashboard(MID).metrics.migration_speed == 40 * MIB * 30 / 60


def test_paused_time_in_the_window_is_not_slowness(svc: MigrationService, clock: FakeClock) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    for _ in range(100):
        clock.advance(1)
        _add(svc, MIB)
    svc.execute(MID, Pause(), actor="ops")
    clock.advance(40)
    svc.execute(MID, Resume(), actor="ops")
    for _ in range(20):
        clock.advance(1)
        _add(svc, MIB)
    assert svc.dashboard(MID).metrics.migration_speed == MIB  # 20 s before the pause, 20 after: 40 MiB / 40 s


def test_a_finished_migration_shows_its_average_not_its_last_report(svc: MigrationService, clock: FakeClock) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    for _ in range(100):  # 100 s at 119 MiB/s
        clock.advance(1)
        _add(svc, 119 * MIB)
    svc.update_metrics(MID, {"migration_speed": 25 * MIB}, actor=ACTOR)  # the demo's stale report
    assert svc.dashboard(MID).metrics.migration_speed == 25 * MIB  # running: the script's word stands
    svc.execute(MID, CompletePhase("setup"), actor=ACTOR)
    for phase in ("copy", "files", "cutover"):
        svc.execute(MID, SkipPhase(phase, reason="not needed"), actor=ACTOR)
    clock.advance(3600)  # an hour later the speed has not decayed
    assert svc.dashboard(MID).metrics.migration_speed == 119 * MIB


def test_the_window_starts_no_earlier_than_the_log_that_was_read(svc: MigrationService, clock: FakeClock) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    for _ in range(600):  # 600 events in 6 s: more than the sample read reaches back
        clock.advance(0.01)
        _add(svc, 1000)
    state = svc.state(MID)
    samples, since = svc.speed_samples(state)
    assert since is not None and len(samples) < 600
    speed = svc.dashboard(MID).metrics.migration_speed
    assert speed is not None and abs(speed - 100_000) < 1_000  # 1000 bytes every 10 ms


def test_no_data_no_speed(svc: MigrationService, clock: FakeClock) -> None:
    svc.execute(MID, StartPhase("setup"), actor=ACTOR)
    clock.advance(10)
    assert svc.dashboard(MID).metrics.migration_speed is None
