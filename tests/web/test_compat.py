"""The seed's /api/migration/progress and /api/migration/dashboard, in its camelCase shapes."""

from __future__ import annotations

from collections.abc import Callable

import httpx

Client = Callable[[str | None], httpx.Client]

SEED_PHASES = [
    {"id": "infrastructure-setup", "name": "Infrastructure", "description": "VPC, subnets", "status": "pending",
     "progress": 0, "subTasks": [{"id": "vpc-creation", "name": "VPC"}], "dependencies": [],
     "estimatedDuration": 30, "errors": [], "warnings": [], "metadata": {}},
    {"id": "database-migration", "name": "Database", "description": "", "dependencies": ["infrastructure-setup"],
     "estimatedDuration": 120, "subTasks": [], "metadata": {}},
]


def post(c: httpx.Client, **body: object) -> httpx.Response:
    return c.post("/api/migration/progress", json=body)


def test_the_seed_script_through_the_compatible_routes(client: Client) -> None:
    op = client("operator")
    mid = "aws-conversion-2024"
    r = post(op, action="initializeMigration", migrationId=mid, phases=SEED_PHASES)
    assert r.status_code == 200 and r.json()["created"] is True
    assert post(op, action="startPhase", migrationId=mid, phaseId="infrastructure-setup").json()["success"] is True
    post(op, action="updatePhaseProgress", migrationId=mid, phaseId="infrastructure-setup", progress=50,
         metadata={"currentTask": "Creating VPC", "resourcesCreated": 10})
    post(op, action="startSubTask", migrationId=mid, phaseId="infrastructure-setup", subTaskId="vpc-creation")
    post(op, action="updateSubTaskProgress", migrationId=mid, phaseId="infrastructure-setup",
         subTaskId="vpc-creation", progress=75)
    alert = post(op, action="createAlert", migrationId=mid, type="warning", message="High resource usage detected",
                 phaseId="infrastructure-setup").json()
    assert alert["alertId"]
    post(op, action="updateMetrics", migrationId=mid, metrics={
        "totalDataMigrated": 524288000, "migrationSpeed": 26214400, "errorRate": 1.2,
        "successfulOperations": 150, "failedOperations": 3})

    overview = op.get("/api/migration/progress", params={"migrationId": mid}).json()
    assert overview["migrationId"] == mid
    assert overview["currentPhase"] == "infrastructure-setup"
    assert overview["totalPhases"] == 2 and overview["inProgressPhases"] == 1
    assert overview["isPaused"] is False

    dash = op.get("/api/migration/dashboard", params={"migrationId": mid}).json()
    phase = dash["phases"][0]
    assert phase["estimatedDuration"] == 30  # minutes, as the seed has them
    assert phase["metadata"]["currentTask"] == "Creating VPC"
    assert phase["subTasks"][0]["progress"] == 75
    m = dash["metrics"]
    assert m["totalDataMigrated"] == 524288000 and m["successfulOperations"] == 150
    assert round(m["errorRate"], 2) == 1.96  # derived from the counts, not the client's 1.2
    assert set(m["resourceUtilization"]) == {"cpu", "memory", "network", "storage"}
    assert set(m["costMetrics"]) == {"estimatedCost", "actualCost", "costPerGB"}
    assert dash["alerts"][0]["type"] == "warning" and dash["alerts"][0]["acknowledged"] is False

    est = op.put("/api/migration/progress", json={"migrationId": mid}).json()
    assert est["migrationId"] == mid and est["criticalPath"] == ["infrastructure-setup", "database-migration"]
    assert est["remainingTime"] > 0


def test_dashboard_actions_and_roles(client: Client) -> None:
    op, admin = client("operator"), client("admin")
    mid = "seed-2"
    post(op, action="initializeMigration", migrationId=mid, phases=SEED_PHASES)
    r = op.post("/api/migration/dashboard", json={"action": "pause", "migrationId": mid})
    assert r.status_code == 403
    r = admin.post("/api/migration/dashboard", json={"action": "pause", "migrationId": mid, "reason": "window"})
    assert r.json()["control"] == "paused"
    assert admin.get("/api/migration/dashboard").json()["overview"]["isPaused"] is True  # latest migration
    alert_id = op.post("/api/migration/dashboard", json={"action": "createAlert", "migrationId": mid,
                                                         "type": "error", "message": "boom"}).json()["alertId"]
    ack = {"action": "acknowledgeAlert", "migrationId": mid, "alertId": alert_id}
    r = op.post("/api/migration/dashboard", json=ack)
    assert r.json()["success"] is True
    admin.post("/api/migration/dashboard", json={"action": "resume", "migrationId": mid})
    assert admin.get("/api/migration/progress", params={"migrationId": mid}).json()["isPaused"] is False


def test_seed_errors(client: Client) -> None:
    op = client("operator")
    post(op, action="initializeMigration", migrationId="s3", phases=SEED_PHASES)
    r = post(op, action="startPhase", migrationId="s3")
    assert r.status_code == 422 and "phaseId is required" in r.json()["detail"]
    r = post(op, action="startPhase", migrationId="s3", phaseId="database-migration")
    assert r.status_code == 409 and "waiting for 'infrastructure-setup'" in r.json()["detail"]
    assert post(op, action="startPhase", migrationId="nope", phaseId="x").status_code == 404
    r = post(op, action="launchRockets", migrationId="s3")
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.action"
