"""The alert routes, and the server as dispatcher: viewers read, operators silence and ack."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from migratrack import MigrationProgressTracker
from migratrack.alerts import records
from migratrack.storage import Storage, open_storage
from migratrack.web import create_app
from web.live import LiveServer  # tests/web: the same real server the web tests use

from .receiver import Receiver


@pytest.fixture
def server(tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveServer, Storage,
                                                                                                 dict[str, str]]]:
    config = tmp_path / "alerts.yaml"
    config.write_text(f"channels:\n  hook: {{type: webhook, url: '{receiver.url}/hook', min_level: info}}\n"
                      "group_wait: 0s\ngroup_interval: 0s\ntick: 0.05s\n")
    monkeypatch.setenv("MIGRATRACK_ALERTS_CONFIG", str(config))
    monkeypatch.setenv("MIGRATRACK_STALL_AFTER", "2s")
    store = open_storage(f"sqlite:///{tmp_path}/api.db")
    app = create_app(store)
    tokens = {role: app.state.tokens.create(f"{role}-bot", role)[0] for role in ("admin", "operator", "viewer")}
    app.state.service.initialize("m", [{"id": "copy"}], actor="t")
    live = LiveServer(app).start()
    yield live, store, tokens
    live.stop()
    store.close()


def client(live: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_the_server_delivers_and_shows_every_attempt(server: tuple[LiveServer, Storage, dict[str, str]],
                                                     receiver: Receiver) -> None:
    live, _, tokens = server
    receiver.fail(1)
    with client(live, tokens["operator"]) as op, client(live, tokens["viewer"]) as viewer:
        alert = op.post("/api/migrations/m/alerts", json={"level": "error", "message": "lag"}).json()
        receiver.wait_for(1)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            found = viewer.get(f"/api/migrations/m/alerts/{alert['id']}/deliveries").json()
            if found and found[0]["status"] == "delivered":
                break
            time.sleep(0.05)
        (d,) = found
        assert d["channel"] == "hook" and [a["ok"] for a in d["attempts"]] == [False, True]
        assert d["attempts"][0]["detail"].startswith("HTTP 500")
        assert viewer.get("/api/alerts/deliveries", params={"migration": "m"}).json()[0]["id"] == d["id"]
        assert viewer.get("/api/alerts/deliveries", params={"migraton": "m"}).status_code == 422
        assert viewer.get("/api/alerts/dispatcher").json()["holder"] is not None
        assert viewer.get("/api/migrations/m/alerts/nope/deliveries").status_code == 404


def test_silences_need_an_operator_and_an_end(server: tuple[LiveServer, Storage, dict[str, str]]) -> None:
    live, _, tokens = server
    with client(live, tokens["operator"]) as op, client(live, tokens["viewer"]) as viewer:
        assert viewer.post("/api/alerts/silences", json={"duration": "1h"}).status_code == 403
        assert op.post("/api/alerts/silences", json={}).status_code == 422
        assert op.post("/api/alerts/silences", json={"duration": "soon"}).status_code == 422
        s = op.post("/api/alerts/silences", json={"duration": "1h", "migration_id": "m", "comment": "deploy"})
        assert s.status_code == 201
        silence = s.json()
        assert "token:operator-bot" in silence["created_by"]
        assert [x["id"] for x in viewer.get("/api/alerts/silences").json()] == [silence["id"]]
        assert viewer.delete(f"/api/alerts/silences/{silence['id']}").status_code == 403
        assert op.delete(f"/api/alerts/silences/{silence['id']}").status_code == 204
        assert op.delete(f"/api/alerts/silences/{silence['id']}").status_code == 404
        assert viewer.get("/api/alerts/silences").json() == []


def test_ack_names_the_acting_token(server: tuple[LiveServer, Storage, dict[str, str]]) -> None:
    live, _, tokens = server
    with client(live, tokens["operator"]) as op:
        a = op.post("/api/migrations/m/alerts", json={"level": "critical", "message": "down"}).json()
        acked = op.post(f"/api/migrations/m/alerts/{a['id']}/ack").json()
        assert acked["acknowledged_by"].startswith("token:operator-bot/") and "claims" not in acked["acknowledged_by"]
        b = op.post("/api/migrations/m/alerts", json={"level": "critical", "message": "down again"}).json()
        acked = op.post(f"/api/migrations/m/alerts/{b['id']}/ack", json={"by": "alice"}).json()
        assert acked["acknowledged_by"].startswith("token:operator-bot/")
        assert acked["acknowledged_by"].endswith(' claims "alice"')


def test_deadline_through_the_api(server: tuple[LiveServer, Storage, dict[str, str]]) -> None:
    live, store, tokens = server
    with client(live, tokens["operator"]) as op:
        assert op.put("/api/migrations/m/deadline", json={"deadline": "tomorrow"}).status_code == 422
        assert op.put("/api/migrations/m/deadline", json={"deadline": "2026-12-01T06:00:00"}).status_code == 422
        assert op.put("/api/migrations/m/deadline", json={"deadline": "2026-12-01T06:00:00+00:00"}).status_code == 204
        assert store.load("m").metadata["deadline"] == "2026-12-01T06:00:00+00:00"
        assert op.put("/api/migrations/m/deadline", json={"deadline": None}).status_code == 204
        assert "deadline" not in store.load("m").metadata


def test_a_remote_tracker_heartbeats_while_it_works(server: tuple[LiveServer, Storage, dict[str, str]]) -> None:
    live, store, tokens = server
    with MigrationProgressTracker("m", url=live.url, token=tokens["operator"]) as t:
        t.start_phase("copy")
        end = time.monotonic() + 5
        while records.last_beat(store, "m") is None and time.monotonic() < end:
            time.sleep(0.05)
        doc = store.kv_get(records.HEARTBEAT, "m")
        assert doc is not None and "token:operator-bot" in doc.value["by"]
    with client(live, tokens["operator"]) as op:
        assert op.post("/api/migrations/nope/heartbeat").status_code == 404


def test_the_cli_lists_and_acks_through_the_server(server: tuple[LiveServer, Storage, dict[str, str]]) -> None:
    from typer.testing import CliRunner

    from migratrack.cli.main import app

    live, _, tokens = server
    with client(live, tokens["operator"]) as op:
        a = op.post("/api/migrations/m/alerts", json={"level": "critical", "message": "disk full"}).json()
    base = ["--url", live.url, "--token", tokens["operator"], "alerts"]
    listed = CliRunner().invoke(app, [*base, "list", "m"])
    assert listed.exit_code == 0 and "disk full" in listed.output
    acked = CliRunner().invoke(app, [*base, "ack", "m", a["id"]])
    assert acked.exit_code == 0, acked.output
    assert "acknowledged by token:operator-bot/" in acked.output
