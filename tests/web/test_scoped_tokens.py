"""Tokens limited to some migrations: a CI job's token acts on its own migration and no other,
on every way in (resource routes, the hot progress routes, the original design's routes, the
stream), sees only its migrations in lists, and cannot manage tokens."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from typer.testing import CliRunner

from migratrack.cli.main import app as cli
from migratrack.storage import open_storage
from migratrack.web.auth import TokenManager

from .conftest import PLAN


def test_a_scoped_token_acts_on_its_migration_only(client: Callable[[str | None], httpx.Client],
                                                   admin: httpx.Client, migration: str) -> None:
    assert admin.post("/api/migrations", json={"id": "other", "phases": PLAN}).status_code == 201
    made = admin.post("/api/tokens", json={"name": "ci", "role": "operator", "migrations": [migration]}).json()
    assert made["migrations"] == [migration]
    ci = httpx.Client(base_url=str(admin.base_url), headers={"Authorization": f"Bearer {made['token']}"})

    assert ci.post(f"/api/migrations/{migration}/phases/schema/start").status_code == 200
    assert ci.post(f"/api/migrations/{migration}/phases/schema/progress", json={"progress": 40}).status_code == 200
    r = ci.post("/api/migrations/other/phases/schema/start")
    assert r.status_code == 403 and "limited to the migrations m1" in r.json()["detail"]
    assert ci.post("/api/migrations/other/phases/schema/progress", json={"progress": 40}).status_code == 403
    assert ci.get("/api/migrations/other/dashboard").status_code == 403
    assert ci.get("/api/migrations/other/events").status_code == 403
    assert ci.post("/api/migrations/other/stream-ticket").status_code == 403
    assert ci.post("/api/migrations", json={"id": "third", "phases": PLAN}).status_code == 403
    assert [m["migration_id"] for m in ci.get("/api/migrations").json()] == [migration]
    # the original design's routes: by id, and "the latest" means the latest it may see
    assert ci.get("/api/migration/progress", params={"migrationId": "other"}).status_code == 403
    assert ci.get("/api/migration/progress").json()["migrationId"] == migration
    r = ci.post("/api/migration/progress", json={"action": "updatePhaseProgress", "migrationId": "other",
                                                  "phaseId": "schema", "progress": 50})
    assert r.status_code == 403
    # nothing was written to the other migration
    other = admin.get("/api/migrations/other/dashboard").json()
    assert {p["id"]: p["status"] for p in other["phases"]}["schema"] == "pending"
    ci.close()


def test_a_scoped_admin_cannot_manage_tokens(admin: httpx.Client, migration: str) -> None:
    made = admin.post("/api/tokens", json={"name": "boss", "role": "admin", "migrations": [migration]}).json()
    boss = httpx.Client(base_url=str(admin.base_url), headers={"Authorization": f"Bearer {made['token']}"})
    assert boss.post(f"/api/migrations/{migration}/pause").status_code == 200
    assert boss.get("/api/tokens").status_code == 403
    r = boss.post("/api/tokens", json={"name": "wide", "role": "admin"})
    assert r.status_code == 403 and "cannot manage tokens" in r.json()["detail"]
    boss.close()


def test_the_cli_makes_and_lists_a_scoped_token(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    r = CliRunner().invoke(cli, ["token", "create", "--role", "operator", "--name", "ci", "--migration", "orders",
                                 "--migration", "users", "--storage", url])
    assert r.exit_code == 0, r.output
    assert "limited to orders, users" in r.output
    listed = CliRunner().invoke(cli, ["token", "list", "--storage", url])
    assert "migrations: orders, users" in listed.output
    bad = CliRunner().invoke(cli, ["token", "create", "--role", "viewer", "--name", "x", "--migration", "a/b",
                                   "--storage", url])
    said = bad.output + str(bad.exception or "")
    assert bad.exit_code != 0 and "--migration" in said and "not a valid id" in said
    with open_storage(url) as store:
        assert [t.migrations for t in TokenManager(store).records()] == [["orders", "users"]]


def test_a_scoped_token_silences_and_reads_deliveries_of_its_migration_only(admin: httpx.Client,
                                                                             migration: str) -> None:
    made = admin.post("/api/tokens", json={"name": "ci2", "role": "operator", "migrations": [migration]}).json()
    ci = httpx.Client(base_url=str(admin.base_url), headers={"Authorization": f"Bearer {made['token']}"})
    assert ci.post("/api/alerts/silences", json={"migration_id": migration, "duration": "1h"}).status_code == 201
    assert ci.post("/api/alerts/silences", json={"migration_id": "other", "duration": "1h"}).status_code == 403
    assert ci.post("/api/alerts/silences", json={"duration": "1h"}).status_code == 403
    wide = admin.post("/api/alerts/silences", json={"duration": "1h"}).json()
    assert [s["migration_id"] for s in ci.get("/api/alerts/silences").json()] == [migration]
    assert ci.delete(f"/api/alerts/silences/{wide['id']}").status_code == 403
    assert ci.get("/api/alerts/deliveries").status_code == 403
    assert ci.get("/api/alerts/deliveries", params={"migration": migration}).status_code == 200
    ci.close()
