"""The estimate explains itself over HTTP: which phase drives it, which estimator, how sure, or
why it is unknown — in the dashboard JSON, the estimate route and the remote SDK."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from migratrack import MigrationProgressTracker

from .conftest import PLAN
from .live import LiveServer


@pytest.fixture
def tracker(server: LiveServer, tokens: dict[str, str]) -> Iterator[MigrationProgressTracker]:
    t = MigrationProgressTracker("m1", url=server.url, token=tokens["admin"], coalesce=0)
    yield t
    t.close()


def test_an_unknown_estimate_says_why_in_the_dashboard(admin: httpx.Client, migration: str) -> None:
    est = admin.get(f"/api/migrations/{migration}/dashboard").json()["overview"]["estimate"]
    assert est["completion"] is None
    assert "'cutover'" in est["unknown_reason"]  # the plan gives cutover no duration


def test_a_known_estimate_names_its_driver_method_and_confidence(
    admin: httpx.Client, tracker: MigrationProgressTracker
) -> None:
    plan = [{**p, "estimated_duration": p.get("estimated_duration", 2)} for p in PLAN]
    tracker.initialize_migration(plan)
    tracker.start_phase("schema")
    tracker.update_phase_progress("schema", 30)
    est = admin.get("/api/migrations/m1/dashboard").json()["overview"]["estimate"]
    assert est["unknown_reason"] is None and est["completion"] is not None
    assert est["driver"] == "copy"  # the 60-minute phase, on the critical path
    assert est["method"] == "plan" and est["confidence"] in ("high", "medium", "low")
    assert "plan" in est["reason"]
    assert admin.get("/api/migrations/m1/estimate").json()["driver"] == "copy"
    remote = tracker.estimate()  # the remote SDK reads the same fields
    assert (remote.driver, remote.method, remote.confidence) == ("copy", "plan", est["confidence"])
