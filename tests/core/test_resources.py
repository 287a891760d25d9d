"""Workers' resource shares add up per migration; a dead worker's share expires."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from migratrack.errors import InvalidInput
from migratrack.service import MigrationService

from .conftest import ACTOR, MID

if TYPE_CHECKING:
    from conftest import FakeClock


def report(svc: MigrationService, worker: str, cpu: float, memory: float, ttl: float = 30) -> None:
    svc.update_metrics(MID, {"worker_resources": {f"{worker}.cpu": cpu, f"{worker}.memory": memory,
                                                  f"{worker}.network": 1000, f"{worker}.ttl": ttl}}, actor=ACTOR)


def test_shares_add_up_and_a_dead_workers_share_expires(svc: MigrationService, clock: FakeClock) -> None:
    report(svc, "w1", 10, 5)
    report(svc, "w2", 20, 7)
    r = svc.dashboard(MID).metrics.resource_utilization
    assert (r["cpu"], r["memory"], r["network"], r["workers"]) == (30, 12, 2000, 2)
    clock.advance(20)
    report(svc, "w2", 25, 7)  # w1 has died: it reports no more
    clock.advance(15)
    r = svc.dashboard(MID).metrics.resource_utilization
    assert (r["cpu"], r["memory"], r["workers"]) == (25, 7, 1)
    report(svc, "w3", 1, 1)  # a write drops the expired share from the store
    assert set(svc.state(MID).metrics.gauges["worker_resources"]) == {"w2", "w3"}


def test_a_scripts_own_figures_stand_until_a_sampler_reports(svc: MigrationService, clock: FakeClock) -> None:
    svc.update_metrics(MID, {"resource_utilization": {"cpu": 50, "storage": 9e9}}, actor=ACTOR)
    assert svc.dashboard(MID).metrics.resource_utilization == {"cpu": 50, "storage": 9e9}
    report(svc, "w1", 10, 5)
    r = svc.dashboard(MID).metrics.resource_utilization
    assert (r["cpu"], r["storage"], r["workers"]) == (10, 9e9, 1)
    clock.advance(31)
    assert svc.dashboard(MID).metrics.resource_utilization == {"cpu": 50, "storage": 9e9}


@pytest.mark.parametrize("bad", [{"w.1.cpu": 1}, {"w1.disk": 1}, {"w1.cpu": 101}, {"w1.ttl": -1}, {"bad name.cpu": 1}])
def test_bad_shares_are_refused_whole(svc: MigrationService, bad: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        svc.update_metrics(MID, {"worker_resources": {"ok.cpu": 1, **bad}}, actor=ACTOR)
    assert "worker_resources" not in svc.state(MID).metrics.gauges
