"""Hostile or careless input gets a 422 naming the field, and nothing is written."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

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
