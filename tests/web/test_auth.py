"""Tokens and roles: 401 without a valid token, 403 for a weaker role; tokens stored hashed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import httpx

from migratrack.storage import Storage

from .live import LiveServer

Client = Callable[[str | None], httpx.Client]


def test_no_token_or_unknown_token_is_401(client: Client, server: LiveServer, migration: str) -> None:
    r = client(None).get(f"/api/migrations/{migration}")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "migratrack token create" in r.json()["detail"]
    bad = httpx.get(f"{server.url}/api/migrations/{migration}", headers={"Authorization": "Bearer mt_nope"})
    assert bad.status_code == 401


def test_roles(client: Client, migration: str) -> None:
    base = f"/api/migrations/{migration}"
    viewer, operator, admin = client("viewer"), client("operator"), client("admin")
    assert viewer.get(base).status_code == 200
    r = viewer.post(f"{base}/phases/schema/start")
    assert r.status_code == 403
    assert r.json()["detail"] == "this needs the operator role; token 'viewer-bot' is viewer"
    assert operator.post(f"{base}/phases/schema/start").status_code == 200
    assert operator.post(f"{base}/alerts", json={"level": "info", "message": "hi"}).status_code == 201
    assert operator.post(f"{base}/control", json={"action": "pause"}).status_code == 403
    assert operator.post(f"{base}/phases/cutover/approve", json={"by": "bob"}).status_code == 403
    assert operator.get("/api/tokens").status_code == 403
    assert admin.post(f"{base}/control", json={"action": "pause"}).status_code == 200
    assert admin.post(f"{base}/phases/cutover/approve", json={"by": "bob"}).status_code == 200


def test_tokens_are_stored_hashed_and_revocable(client: Client, tokens: dict[str, str], store: Storage,
                                                migration: str) -> None:
    admin = client("admin")
    created = admin.post("/api/tokens", json={"name": "ci", "role": "operator"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("mt_")
    records = store.list_tokens()
    assert {r.name for r in records} == {"admin-bot", "operator-bot", "viewer-bot", "ci"}
    for r in records:
        assert r.token_hash not in tokens.values() and r.token_hash != token
    ci = next(r for r in records if r.name == "ci")
    assert ci.token_hash == hashlib.sha256(token.encode()).hexdigest()
    listed = admin.get("/api/tokens").json()
    assert all("token" not in t and "token_hash" not in t for t in listed)

    ci_client = httpx.Client(base_url=admin.base_url, headers={"Authorization": f"Bearer {token}"})
    assert ci_client.get(f"/api/migrations/{migration}").status_code == 200
    assert admin.delete(f"/api/tokens/{ci.id}").json()["revoked_at"] is not None
    assert ci_client.get(f"/api/migrations/{migration}").status_code == 401
    ci_client.close()
    assert admin.post("/api/tokens", json={"name": "ci", "role": "wizard"}).status_code == 422
