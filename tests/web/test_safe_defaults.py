"""Safe defaults: a foreign Host is refused, no-auth mode serves no token routes, cursors are
bounded, readiness checks the store, and the access log never carries a token."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx

from migratrack.cli.serve import RedactTokens
from migratrack.storage import open_storage
from migratrack.web import create_app

from .live import LiveServer

Client = Callable[[str | None], httpx.Client]


def test_a_foreign_host_is_refused_before_anything_runs(client: Client, migration: str) -> None:
    admin = client("admin")
    r = admin.post("/api/tokens", json={"name": "x", "role": "admin"}, headers={"Host": "attacker.example:8812"})
    assert r.status_code == 421
    assert "--allowed-host" in r.json()["detail"]
    assert [t["name"] for t in admin.get("/api/tokens").json()] == ["admin-bot", "operator-bot", "viewer-bot"]
    for host in ("localhost", "127.0.0.1:9", "[::1]:8000"):
        assert admin.get("/healthz", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_are_added_to_loopback(tmp_path: Path) -> None:
    store = open_storage(f"sqlite:///{tmp_path}/h.db")
    live = LiveServer(create_app(store, allowed_hosts=["tracker.internal"])).start()
    try:
        with httpx.Client(base_url=live.url) as c:
            assert c.get("/healthz", headers={"Host": "tracker.internal:8000"}).status_code == 200
            assert c.get("/healthz", headers={"Host": "other.internal"}).status_code == 421
    finally:
        live.stop()
        store.close()


def test_without_auth_the_token_routes_are_off(tmp_path: Path) -> None:
    store = open_storage(f"sqlite:///{tmp_path}/n.db")
    live = LiveServer(create_app(store, auth=False)).start()
    try:
        with httpx.Client(base_url=live.url) as c:
            r = c.post("/api/tokens", json={"name": "backdoor", "role": "admin"})
            assert r.status_code == 403
            assert "--insecure-no-auth" in r.json()["detail"]
            assert c.get("/api/tokens").status_code == 403
        assert store.list_tokens() == []
    finally:
        live.stop()
        store.close()


def test_out_of_range_cursors_are_422(client: Client, migration: str) -> None:
    admin = client("admin")
    r = admin.get(f"/api/migrations/{migration}/audit", params={"after": "99999999999999999999999"})
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "query.after"
    r = admin.get(f"/api/migrations/{migration}/events", params={"after": "99999999999999999999999"})
    assert r.status_code == 422


def test_readyz_answers_when_the_store_does(client: Client) -> None:
    r = client(None).get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_the_access_log_never_carries_a_token() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/api/migrations/m1/events?after=3&token=mt_secret", "1.1",
                                200), None)
    assert RedactTokens().filter(record)
    line = record.getMessage()
    assert "mt_secret" not in line and "token=***" in line and "after=3" in line


def test_the_docs_page_needs_no_cdn_and_sends_a_csp(client: Client) -> None:
    anyone = client(None)
    page = anyone.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert anyone.get(asset).status_code == 200, asset


def test_a_bug_is_a_json_500_that_tells_nothing_of_the_inside(client: Client, migration: str, app: object,
                                                             monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    svc = app.state.service  # type: ignore[attr-defined]

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("secret internals /srv/app/key=hunter2")

    monkeypatch.setattr(svc, "control", broken)
    r = client("viewer").get(f"/api/migrations/{migration}/control")
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "InternalError" and "hunter2" not in r.text
    monkeypatch.undo()
    assert client("viewer").get(f"/api/migrations/{migration}/control").status_code == 200  # still serving
