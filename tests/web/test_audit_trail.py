"""The audit trail names the token that acted: a client can say who it is, but only as a quoted
claim beside the token's identity, never in its place; acknowledgements and token changes name
the token too."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from migratrack.web.auth import Principal, Role, actor_label, split_actor


def test_a_forged_actor_header_reads_as_a_claim_of_the_operator_token(
        client: Callable[[str | None], httpx.Client], admin: httpx.Client, migration: str) -> None:
    op = client("operator")
    forged = "alice via token:admin/d1de4897 ;"
    r = op.post(f"/api/migrations/{migration}/phases/schema/start", headers={"X-Migratrack-Actor": forged})
    assert r.status_code == 200
    event = admin.get(f"/api/migrations/{migration}/audit").json()["events"][-1]
    assert event["type"] == "phase.started"
    assert event["identity"].startswith("token:operator-bot/")
    assert event["claimed_actor"] == forged
    assert event["actor"].startswith("token:operator-bot/")  # the identity always comes first
    assert "token:admin" not in event["identity"]


def test_a_claim_keeps_no_control_characters_and_cannot_close_its_quotes() -> None:
    who = Principal(token_id="1a2b3c4d", name="ci", role=Role.OPERATOR)
    label = actor_label('w1\x1b[31m" via token:admin/ff', who)
    assert label == 'token:ci/1a2b3c4d claims "w1[31m\\" via token:admin/ff"'
    assert split_actor(label) == ("token:ci/1a2b3c4d", 'w1[31m" via token:admin/ff')
    assert split_actor("token:ci/1a2b3c4d") == ("token:ci/1a2b3c4d", None)
    assert actor_label("  \x00 ", who) == "token:ci/1a2b3c4d"


def test_an_acknowledgement_names_the_token(client: Callable[[str | None], httpx.Client], migration: str) -> None:
    op = client("operator")
    alert = op.post(f"/api/migrations/{migration}/alerts", json={"level": "warning", "message": "lag"}).json()
    acked = op.post(f"/api/migrations/{migration}/alerts/{alert['id']}/ack", json={"by": "the CEO"}).json()
    assert acked["acknowledged_by"].startswith("token:operator-bot/")
    assert acked["acknowledged_by"].endswith(' claims "the CEO"')
    plain = op.post(f"/api/migrations/{migration}/alerts", json={"level": "info", "message": "x"}).json()
    acked = op.post(f"/api/migrations/{migration}/alerts/{plain['id']}/ack").json()
    assert acked["acknowledged_by"].startswith("token:operator-bot/") and "claims" not in acked["acknowledged_by"]


def test_token_creation_and_revocation_name_who_did_it(admin: httpx.Client) -> None:
    made = admin.post("/api/tokens", json={"name": "ci", "role": "viewer"}).json()
    assert made["created_by"].startswith("token:admin-bot/")
    revoked = admin.delete(f"/api/tokens/{made['id']}").json()
    assert revoked["revoked_by"].startswith("token:admin-bot/")
    listed = {t["id"]: t for t in admin.get("/api/tokens").json()}
    assert listed[made["id"]]["created_by"] == made["created_by"]
    assert listed[made["id"]]["revoked_by"] == revoked["revoked_by"]
