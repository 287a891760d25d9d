"""The JSON API as an operator's script or curl would use it."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from migratrack.storage import Storage

from .conftest import PLAN

Client = Callable[[str | None], httpx.Client]
JSON = {"Content-Type": "application/json"}


def test_health_needs_no_token(client: Client) -> None:
    r = client(None).get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_a_migration_from_plan_to_finish(admin: httpx.Client, migration: str) -> None:
    base = f"/api/migrations/{migration}"
    listed = admin.get("/api/migrations").json()
    assert [m["migration_id"] for m in listed] == ["m1"]
    assert listed[0]["status"] == "pending"

    assert admin.post(f"{base}/phases/schema/start").status_code == 200
    assert admin.post(f"{base}/phases/schema/progress", json={"progress": 40}).json() == {"control": "running"}
    assert admin.post(f"{base}/phases/schema/complete").status_code == 200
    admin.post(f"{base}/phases/copy/start")
    admin.post(f"{base}/phases/copy/subtasks/orders/start")
    admin.post(f"{base}/phases/copy/subtasks/orders/progress", json={"progress": 50})
    admin.post(f"{base}/phases/copy/subtasks/orders/complete")
    admin.post(f"{base}/phases/copy/subtasks/users/start")
    admin.post(f"{base}/phases/copy/subtasks/users/fail", json={"error": "disk full"})

    dash = admin.get(f"{base}/dashboard").json()
    copy = next(p for p in dash["phases"] if p["id"] == "copy")
    assert copy["progress"] == 50.0
    assert [s["status"] for s in copy["sub_tasks"]] == ["completed", "failed"]

    overview = admin.get(base).json()
    assert overview["status"] == "running"
    assert 0 < overview["overall_progress"] < 100
    est = admin.get(f"{base}/estimate").json()
    assert est["critical_path"][0] == "copy"


def test_alerts_metrics_and_control(admin: httpx.Client, migration: str) -> None:
    base = f"/api/migrations/{migration}"
    r = admin.post(f"{base}/alerts", json={"level": "warning", "message": "replica lag 40 s", "phase": "copy"})
    assert r.status_code == 201
    alert = r.json()
    assert alert["level"] == "warning"
    acked = admin.post(f"{base}/alerts/{alert['id']}/ack", json={"by": "alice"}).json()
    assert acked["acknowledged_by"] == "alice (via token admin-bot)"  # the acting token is always named
    assert admin.get(f"{base}/alerts", params={"unacknowledged": True}).json() == []

    r = admin.patch(f"{base}/metrics", json={"values": {"migrationSpeed": 1000, "resource_utilization": {"cpu": 55}},
                                            "increment": {"successful_operations": 9, "failed_operations": 1}})
    assert r.status_code == 200
    m = admin.get(f"{base}/dashboard").json()["metrics"]
    assert (m["successful_operations"], m["failed_operations"], m["error_rate"]) == (9, 1, 10.0)
    assert m["migration_speed"] == 1000 and m["resource_utilization"]["cpu"] == 55

    assert admin.post(f"{base}/control", json={"action": "pause", "reason": "window"}).json() == {"control": "paused"}
    assert admin.get(base).json()["status"] == "paused"
    assert admin.post(f"{base}/control", json={"action": "resume"}).json() == {"control": "running"}


def test_batch_applies_updates_in_order_and_reports_pause(admin: httpx.Client, migration: str) -> None:
    base = f"/api/migrations/{migration}"
    admin.post(f"{base}/phases/schema/start")
    r = admin.post(f"{base}/batch", json={
        "updates": [{"phase": "schema", "done": 10, "total": 100}, {"phase": "schema", "add": 15}],
        "increments": {"successful_operations": 25}})
    assert r.json() == {"control": "running"}
    admin.post(f"{base}/control", json={"action": "pause"})
    r = admin.post(f"{base}/batch", json={"updates": [{"phase": "schema", "add": 5}]})
    assert r.json() == {"control": "paused"}
    phase = admin.get(f"{base}/dashboard").json()["phases"][0]
    assert (phase["done"], phase["total"], phase["progress"]) == (30, 100, 30.0)


def test_a_retried_write_with_the_same_idempotency_key_counts_once(admin: httpx.Client, migration: str) -> None:
    base = f"/api/migrations/{migration}"
    body = {"increments": {"successful_operations": 7}}
    for _ in range(3):
        assert admin.post(f"{base}/batch", json=body, headers={"Idempotency-Key": "k-1"}).status_code == 200
    admin.post(f"{base}/batch", json=body, headers={"Idempotency-Key": "k-2"})
    assert admin.get(f"{base}/dashboard").json()["metrics"]["successful_operations"] == 14


def test_rule_violations_are_409_with_the_rules_message(admin: httpx.Client, migration: str) -> None:
    base = f"/api/migrations/{migration}"
    r = admin.post(f"{base}/phases/copy/start")
    assert r.status_code == 409
    assert r.json()["detail"] == "cannot start phase 'copy': waiting for 'schema' to complete or be skipped"
    assert r.json()["error"] == "DependencyNotMet"
    r = admin.post(f"{base}/phases/schema/complete")
    assert r.status_code == 409
    assert "it is pending" in r.json()["detail"]
    admin.post(f"{base}/phases/schema/skip", json={"reason": "exists"})
    admin.post(f"{base}/phases/copy/start")
    admin.post(f"{base}/phases/copy/complete")
    r = admin.post(f"{base}/phases/copy/complete")
    assert r.status_code == 409


def test_unknown_ids_are_404(admin: httpx.Client, migration: str) -> None:
    assert admin.get("/api/migrations/nope").status_code == 404
    assert admin.get("/api/migrations/nope/dashboard").status_code == 404
    r = admin.post(f"/api/migrations/{migration}/phases/nope/start")
    assert r.status_code == 404
    assert "known phases: schema, copy, verify, cutover" in r.json()["detail"]
    assert admin.post(f"/api/migrations/{migration}/phases/copy/subtasks/nope/start").status_code == 404
    assert admin.post(f"/api/migrations/{migration}/alerts/nope/ack").status_code == 404
    assert admin.get("/api/migrations/nope/events").status_code == 404
    r = admin.post("/api/migrations/nope/batch", json={"updates": [{"phase": "a", "progress": 1}]})
    assert r.status_code == 404


def test_bad_input_is_422_naming_the_field(admin: httpx.Client, migration: str) -> None:
    base = f"/api/migrations/{migration}"
    admin.post(f"{base}/phases/schema/start")
    r = admin.post(f"{base}/phases/schema/progress", json={"progress": 150})
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "body.progress"
    assert "body.progress" in r.json()["detail"]
    r = admin.post(f"{base}/phases/schema/progress", json={"progress": "half"})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.progress"
    r = admin.post(f"{base}/phases/schema/progress", content=b'{"progress": 4', headers=JSON)
    assert r.status_code == 422
    assert "malformed JSON" in r.json()["detail"]
    r = admin.post(f"{base}/phases/schema/progress", content=b'{"progress": NaN}', headers=JSON)
    assert r.status_code == 422
    r = admin.post(f"{base}/alerts", json={"level": "loud", "message": "x"})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.level"
    r = admin.post(f"{base}/batch", json={"updates": [{"phase": "schema", "progress": 10, "bogus": 1}]})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.updates.0.bogus"


def test_rejected_input_writes_nothing(admin: httpx.Client, migration: str, store: Storage) -> None:
    base = f"/api/migrations/{migration}"
    before = store.load(migration).seq
    r = admin.post("/api/migrations", json={"id": "cyclic", "phases": [
        {"id": "a", "dependencies": ["b"]}, {"id": "b", "dependencies": ["a"]}]})
    assert r.status_code == 422 and "cycle" in r.json()["detail"]
    assert admin.get("/api/migrations/cyclic").status_code == 404
    r = admin.patch(f"{base}/metrics", json={"values": {"cpu_temperature": 80},
                                            "increment": {"successful_operations": 5}})
    assert r.status_code == 422 and "unknown metric" in r.json()["detail"]
    huge = b'{"increments": {"successful_operations": 5}, ' + b" " * (1024 * 1024) + b"}"
    r = admin.post(f"{base}/batch", content=huge, headers=JSON)
    assert r.status_code == 413
    assert store.load(migration).seq == before
    assert store.load(migration).metrics.successful_operations == 0


def test_create_resumes_same_plan_and_refuses_another(admin: httpx.Client, client: Client, migration: str) -> None:
    r = admin.post("/api/migrations", json={"id": migration, "phases": PLAN})
    assert r.status_code == 200 and r.json()["created"] is False
    r = admin.post("/api/migrations", json={"id": migration, "phases": PLAN[:2]})
    assert r.status_code == 409 and "different plan" in r.json()["detail"]
    operator = client("operator")
    replace = {"id": migration, "phases": PLAN[:2], "replace": True}
    assert operator.post("/api/migrations", json=replace).status_code == 403
    assert admin.post("/api/migrations", json=replace).status_code == 201


def test_audit_is_paged_and_names_the_token(client: Client, admin: httpx.Client, migration: str) -> None:
    base = f"/api/migrations/{migration}"
    op = client("operator")
    op.post(f"{base}/phases/schema/start", headers={"X-Migratrack-Actor": "worker-7"})
    op.post(f"{base}/phases/schema/progress", json={"progress": 5})
    page = admin.get(f"{base}/audit", params={"limit": 2}).json()
    assert [e["seq"] for e in page["events"]] == [1, 2]
    assert page["next_after"] == 2
    rest = admin.get(f"{base}/audit", params={"after": 2}).json()
    assert rest["next_after"] is None
    actors = [e["actor"] for e in page["events"] + rest["events"]]
    assert actors[0].startswith("token:admin-bot/")
    assert actors[1].startswith("worker-7 via token:operator-bot/")
    assert actors[2].startswith("token:operator-bot/")
