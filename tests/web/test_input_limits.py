"""Hostile or careless input gets a 422 naming the field, and nothing is written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from migratrack import InvalidPlan, MigrationProgressTracker
from migratrack.web.app import create_app

from .live import LiveServer

Client = Callable[[str | None], httpx.Client]


def nested(depth: int) -> str:
    return '{"x":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.fixture
def running(client: Client, migration: str) -> httpx.Client:
    admin = client("admin")
    assert admin.post(f"/api/migrations/{migration}/phases/schema/start").status_code == 200
    return admin


@pytest.mark.parametrize("body", [
    b'{"progress": 10, "metadata": {"x": NaN}}',
    b'{"progress": 10, "metadata": {"x": Infinity}}',
    b'{"progress": 10, "metadata": ' + nested(500).encode() + b"}",
    b'{"progress": 10, "metadata": ' + nested(40).encode() + b"}",
    b'{"progress": true}',
    b'{"add": "3"}',
    b'{"progress": "50"}',
])
def test_bad_progress_reports_are_422_and_write_nothing(running: httpx.Client, body: bytes) -> None:
    base = "/api/migrations/m1"
    before = running.get(f"{base}/audit").json()["events"]
    r = running.post(f"{base}/phases/schema/progress", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"].startswith("body")
    assert running.get(f"{base}/audit").json()["events"] == before
    # the migration still reads back, in strict JSON
    for path in ("", "/dashboard", "/state"):
        reply = running.get(base + path)
        assert reply.status_code == 200
        json.loads(reply.text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_a_batch_with_nan_metadata_is_refused_whole(running: httpx.Client) -> None:
    r = running.post("/api/migrations/m1/batch", content=b'{"updates": [{"phase": "schema", "progress": 5}, '
                     b'{"phase": "schema", "metadata": {"x": NaN}}]}', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert "finite" in r.json()["detail"]
    phase = next(p for p in running.get("/api/migrations/m1/dashboard").json()["phases"] if p["id"] == "schema")
    assert phase["progress"] == 0


def test_loose_counter_increments_are_422(running: httpx.Client) -> None:
    r = running.patch("/api/migrations/m1/metrics", json={"increment": {"successful_operations": True}})
    assert r.status_code == 422, r.text
    metrics = running.get("/api/migrations/m1/dashboard").json()["metrics"]
    assert metrics["successful_operations"] == 0


def test_a_plan_over_the_phase_cap_is_refused_whole(admin: httpx.Client) -> None:
    phases = [{"id": f"p{i}"} for i in range(10_001)]
    r = admin.post("/api/migrations", json={"id": "huge", "phases": phases})
    assert r.status_code == 422
    assert "10001 phases: at most 10000" in r.text and "MIGRATRACK_MAX_PHASES" in r.text
    assert admin.get("/api/migrations/huge").status_code == 404


def test_the_caps_come_from_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MIGRATRACK_MAX_PHASES", "3")
    monkeypatch.setenv("MIGRATRACK_MAX_SUB_TASKS", "2")
    server = LiveServer(create_app(f"sqlite:///{tmp_path / 'm.db'}", auth=False)).start()
    with httpx.Client(base_url=server.url) as c:
        r = c.post("/api/migrations", json={"id": "m", "phases": [{"id": f"p{i}"} for i in range(4)]})
        assert r.status_code == 422 and "4 phases: at most 3" in r.text
        r = c.post("/api/migrations", json={"id": "m", "phases": [{"id": "a", "sub_tasks": ["x", "y", "z"]}]})
        assert r.status_code == 422 and "phase 'a' has 3 sub-tasks: at most 2" in r.text
        assert c.get("/api/migrations").json() == []
        r = c.post("/api/migrations", json={"id": "m", "phases": [{"id": "a", "sub_tasks": ["x"]}]})
        assert r.status_code == 201
    server.stop()
    with pytest.raises(InvalidPlan, match="at most 3"):
        MigrationProgressTracker("m2", storage=f"sqlite:///{tmp_path / 'm.db'}").initialize_migration(
            [{"id": f"p{i}"} for i in range(4)])


def test_alerts_past_the_cap_are_422_on_every_route(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MIGRATRACK_MAX_ALERTS", "2")
    server = LiveServer(create_app(f"sqlite:///{tmp_path / 'm.db'}", auth=False)).start()
    with httpx.Client(base_url=server.url) as c:
        assert c.post("/api/migrations", json={"id": "m", "phases": [{"id": "a"}]}).status_code == 201
        for i in range(2):
            assert c.post("/api/migrations/m/alerts", json={"level": "info", "message": f"n{i}"}).status_code == 201
        r = c.post("/api/migrations/m/alerts", json={"level": "error", "message": "one too many"})
        assert r.status_code == 422 and r.json()["error"] == "LimitExceeded"
        assert "keeps 2 alerts" in r.text and "MIGRATRACK_MAX_ALERTS" in r.text
        r = c.post("/api/migration/progress", json={"migrationId": "m", "action": "createAlert",
                                                     "type": "error", "message": "original design's route"})
        assert r.status_code == 422 and "MIGRATRACK_MAX_ALERTS" in r.text
        assert [a["message"] for a in c.get("/api/migrations/m/alerts").json()] == ["n1", "n0"]
        audit = c.get("/api/migrations/m/audit").json()["events"]
        assert [e["type"] for e in audit].count("alert.created") == 2
    server.stop()
