"""Cost from configured prices: the projection checked against a hand computation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from migratrack.core.commands import StartPhase
from migratrack.metrics.cost import Prices, compute
from migratrack.service import MigrationService
from migratrack.storage import open_storage

PRICES = Prices(per_gb=0.09, per_worker_hour=0.5, fixed=100, workers=4)


def test_the_projection_by_hand() -> None:
    # 250 GB moved in 2 active hours, 40% done, 3 hours to go, 4 workers:
    # actual    = 100 + 0.09 x 250 + 0.5 x (2 x 4)        = 100 + 22.5 + 4  = 126.5
    # per GB    = 126.5 / 250                              = 0.506
    # projected = 100 + 0.09 x (250 / 0.4) + 0.5 x (5 x 4) = 100 + 56.25 + 10 = 166.25
    c = compute(PRICES, data_bytes=250 * 10**9, active_seconds=7200, progress=40, finished=False,
                remaining_seconds=3 * 3600)
    assert (c.actual, c.per_gb, c.projected, c.worker_hours) == (126.5, 0.506, 166.25, 8)
    done = compute(PRICES, data_bytes=250 * 10**9, active_seconds=7200, progress=100, finished=True,
                   remaining_seconds=0)
    assert done.projected == done.actual == 126.5
    unknown = compute(PRICES, data_bytes=0, active_seconds=60, progress=0, finished=False, remaining_seconds=None)
    assert unknown.projected is None and unknown.per_gb is None and unknown.actual == pytest.approx(100 + 0.5 * 4 / 60)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_the_dashboard_shows_cost_from_the_plan_or_the_settings() -> None:
    clock = Clock()
    svc = MigrationService(open_storage("memory://"), clock)
    svc.prices = Prices(per_gb=0.02)  # the settings' price; the plan's pricing wins over it
    svc.initialize("m", [{"id": "copy", "estimated_duration": 5 * 3600}], actor="t",
                   metadata={"pricing": {"per_worker_hour": 0.5, "fixed": 100, "workers": 4, "per_gb": 0.09}})
    svc.execute("m", StartPhase("copy"), actor="t")
    clock.now += timedelta(hours=2)
    svc.update_phase_progress("m", "copy", 40, actor="t")
    svc.update_metrics("m", increments={"total_data_migrated": 250 * 10**9}, actor="t")
    svc.update_metrics("m", {"cost_metrics": {"estimated_cost": 150}}, actor="t")  # a script's own estimate
    cost = svc.dashboard("m").metrics.cost_metrics
    assert cost["actual_cost"] == 126.5 and cost["cost_per_gb"] == 0.506
    assert cost["estimated_cost"] == 150  # the script's word stays
    # the estimate says 3 hours remain for a 5-hour phase 40% done after 2 hours
    remaining = svc.dashboard("m").overview.estimate.remaining_seconds
    assert remaining is not None
    assert cost["projected_cost"] == pytest.approx(100 + 0.09 * 625 + 0.5 * (7200 + remaining) / 3600 * 4)

    svc.initialize("plain", [{"id": "copy"}], actor="t")
    svc.update_metrics("plain", increments={"total_data_migrated": 10**9}, actor="t")
    assert svc.dashboard("plain").metrics.cost_metrics["actual_cost"] == 0.02
    svc.prices = None
    assert svc.dashboard("plain").metrics.cost_metrics == {}
