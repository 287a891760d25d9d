"""The routes built from the command table: a new verb (revise an estimate) over REST and from
the remote SDK, the control verbs at their own addresses, and roles from the command class."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from migratrack import MigrationProgressTracker

from .live import LiveServer

Client = Callable[[str | None], httpx.Client]


def test_revise_an_estimate_over_rest(client: Client, migration: str) -> None:
    base = f"/api/migrations/{migration}"
    operator = client("operator")
    operator.post(f"{base}/phases/schema/start")
    # the cut-over has no estimate in the plan: the ETA is unknown until someone gives one
    assert operator.get(f"{base}/estimate").json()["remaining_seconds"] is None
    assert operator.post(f"{base}/phases/cutover/estimate", json={"minutes": 20}).status_code == 200
    eta_before = operator.get(f"{base}/estimate").json()["remaining_seconds"]
    assert eta_before is not None
    r = operator.post(f"{base}/phases/verify/estimate", json={"minutes": 65})
    assert r.status_code == 200, r.text
    assert r.json()["control"] == "running"
    eta_after = operator.get(f"{base}/estimate").json()["remaining_seconds"]
    assert eta_after - eta_before == 60 * 60
    event = operator.get(f"{base}/audit").json()["events"][-1]
    assert (event["type"], event["payload"]["minutes"]) == ("phase.estimate_revised", 65)
    assert event["actor"].startswith("token:operator-bot/")


def test_a_bad_revision_is_422_and_a_viewer_gets_403(client: Client, migration: str) -> None:
    base = f"/api/migrations/{migration}"
    operator = client("operator")
    for body in ({"minutes": 0}, {"minutes": "ten"}, {"minutes": True}, {}, {"minutes": 5, "extra": 1}):
        r = operator.post(f"{base}/phases/verify/estimate", json=body)
        assert r.status_code == 422, (body, r.text)
    assert "minutes" in operator.post(f"{base}/phases/verify/estimate", json={"minutes": -1}).json()["detail"]
    assert client("viewer").post(f"{base}/phases/verify/estimate", json={"minutes": 5}).status_code == 403
    assert operator.post(f"{base}/phases/nope/estimate", json={"minutes": 5}).status_code == 404
    assert [e["type"] for e in operator.get(f"{base}/audit").json()["events"]] == ["migration.initialized"]


def test_control_verbs_have_their_own_routes_for_admins_only(client: Client, migration: str) -> None:
    base = f"/api/migrations/{migration}"
    assert client("operator").post(f"{base}/pause").status_code == 403
    admin = client("admin")
    assert admin.post(f"{base}/pause", json={"reason": "window"}).json()["control"] == "paused"
    assert admin.get(base).json()["status"] == "paused"
    assert admin.post(f"{base}/resume").json()["control"] == "running"
    paused = [e for e in admin.get(f"{base}/audit").json()["events"] if e["type"] == "migration.paused"]
    assert paused[0]["payload"] == {"reason": "window"}


def test_approve_defaults_to_the_token_name(client: Client, migration: str) -> None:
    admin = client("admin")
    assert admin.post(f"/api/migrations/{migration}/phases/cutover/approve").status_code == 200
    phase = next(p for p in admin.get(f"/api/migrations/{migration}/dashboard").json()["phases"]
                 if p["id"] == "cutover")
    assert phase["approved_by"] == "admin-bot"


def test_the_remote_sdk_revises_an_estimate(server: LiveServer, tokens: dict[str, str], migration: str) -> None:
    with MigrationProgressTracker(migration, url=server.url, token=tokens["operator"], actor="w1") as t:
        t.revise_estimate("copy", 90)
        assert t.get_phase("copy").estimated_seconds == 90 * 60
        actor = t.events()[-1].actor
        assert actor.startswith("token:operator-bot/") and actor.endswith(' claims "w1"')
