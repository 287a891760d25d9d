"""The clocked rules: the error rate over a sliding window (minimum operations, two thresholds,
hysteresis, resolved notice) and the deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from migratrack.alerts.config import ErrorRateConfig
from migratrack.alerts.dispatcher import Dispatcher
from migratrack.alerts.rules import RateLevel, next_rate_level, window_rate
from migratrack.core.commands import StartPhase
from migratrack.service import MigrationService
from migratrack.storage import open_storage

from .helpers import config, run_until
from .receiver import Receiver

C = ErrorRateConfig(warning=10, critical=25, window=timedelta(minutes=5), min_operations=20)


def test_three_early_failures_page_no_one() -> None:
    assert next_rate_level(RateLevel.OK, 100.0, 3, C) is RateLevel.OK


def test_two_thresholds_and_hysteresis() -> None:
    assert next_rate_level(RateLevel.OK, 12, 100, C) is RateLevel.WARNING
    assert next_rate_level(RateLevel.OK, 30, 100, C) is RateLevel.CRITICAL
    assert next_rate_level(RateLevel.CRITICAL, 20, 100, C) is RateLevel.CRITICAL  # above half of 25
    assert next_rate_level(RateLevel.CRITICAL, 12, 100, C) is RateLevel.WARNING
    assert next_rate_level(RateLevel.WARNING, 8, 100, C) is RateLevel.WARNING      # above half of 10
    assert next_rate_level(RateLevel.WARNING, 5, 100, C) is RateLevel.OK


def test_the_window_forgets_old_operations() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    samples = [[(now - timedelta(minutes=10)).isoformat(), 0, 100], [(now - timedelta(minutes=1)).isoformat(), 90, 10]]
    assert window_rate(samples, now, timedelta(minutes=5)) == (10.0, 100)


def test_a_windowed_error_rate_fires_then_resolves(receiver: Receiver) -> None:
    store = open_storage("memory://")
    svc = MigrationService(store)
    svc.initialize("m", [{"id": "copy"}], actor="t", metadata={"error_rate_threshold": 90,
                                                                "error_rate_critical": 40, "error_rate_window": "1h"})
    d = Dispatcher(store, config({"hook": {"type": "webhook", "url": receiver.url, "min_level": "warning"}}))
    svc.update_metrics("m", increments={"successful_operations": 50, "failed_operations": 50}, actor="w")
    run_until(d, lambda: len(receiver.accepted) >= 1)
    fired = receiver.accepted[0].json
    assert fired["level"] == "critical" and "error rate 50.0%" in fired["alerts"][0]["message"]
    svc.update_metrics("m", increments={"successful_operations": 5000}, actor="w")
    run_until(d, lambda: len(receiver.accepted) >= 2)
    resolved = receiver.accepted[1].json
    assert resolved["kind"] == "resolved" and resolved["fingerprint"] == fired["fingerprint"]
    # after its resolve, the same condition firing again is news, not a duplicate
    svc.update_metrics("m", increments={"failed_operations": 20000}, actor="w")
    run_until(d, lambda: len(receiver.accepted) >= 3)
    assert receiver.accepted[2].json["kind"] == "firing"


def test_an_estimate_past_the_deadline_alerts(receiver: Receiver) -> None:
    store = open_storage("memory://")
    svc = MigrationService(store)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    svc.initialize("m", [{"id": "copy", "estimated_duration": 3600}], actor="t", metadata={"deadline": past})
    svc.execute("m", StartPhase("copy"), actor="t")
    d = Dispatcher(store, config({"hook": {"type": "webhook", "url": receiver.url}}))
    run_until(d, lambda: len(receiver.accepted) >= 1)
    assert "passes the deadline" in receiver.accepted[0].json["alerts"][0]["message"]
    for _ in range(3):
        d.tick()
    assert len(receiver.accepted) == 1
