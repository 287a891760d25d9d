"""The alerts, token and purge commands through a server (--url): each does what it does on a
store, on the server's store; the server's roles and token scopes refuse what they must (exit 2);
the commands that administer a store itself refuse --url, saying why (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from alerts.receiver import Receiver, start_receiver  # tests/alerts: a local stand-in for a webhook
from migratrack.alerts import records
from migratrack.cli.errors import ExitCode
from migratrack.cli.main import app
from migratrack.core.commands import Cancel
from migratrack.service import MigrationService
from migratrack.storage import Storage, open_storage
from migratrack.web import create_app
from web.live import LiveServer, serve_process  # tests/web: the same real server the web tests use


@dataclass
class Server:
    live: LiveServer
    store: Storage
    tokens: dict[str, str]
    receiver: Receiver

    def cli(self, role: str, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["--url", self.live.url, "--token", self.tokens[role], *args])
        assert "Traceback" not in result.output, result.output
        return result.exit_code, result.output


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MIGRATRACK_URL", "MIGRATRACK_TOKEN", "MIGRATRACK_STORAGE_URL", "REDIS_URL",
                "MIGRATRACK_ALERTS_CONFIG", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # a default store, if one were wrongly opened, would appear here
    monkeypatch.setenv("MIGRATRACK_ACTOR", "bob@laptop")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    receiver = start_receiver()
    config = tmp_path / "server-alerts.yaml"
    config.write_text(f"channels:\n  hook: {{type: webhook, url: '{receiver.url}/hook', min_level: info}}\n"
                      "group_wait: 0s\ngroup_interval: 0s\ntick: 0.05s\n")
    monkeypatch.setenv("MIGRATRACK_ALERTS_CONFIG", str(config))  # the server's routing, read by create_app
    store = open_storage(f"sqlite:///{tmp_path}/admin.db")
    application = create_app(store)
    monkeypatch.delenv("MIGRATRACK_ALERTS_CONFIG")  # the CLI's own environment has none
    manager = application.state.tokens
    tokens = {role: manager.create(f"{role}-bot", role)[0] for role in ("admin", "operator", "viewer")}
    tokens["scoped-admin"] = manager.create("scoped-admin", "admin", migrations=["m"])[0]
    tokens["scoped-operator"] = manager.create("scoped-operator", "operator", migrations=["m"])[0]
    application.state.service.initialize("m", [{"id": "copy"}], actor="t")
    live = LiveServer(application).start()
    yield Server(live, store, tokens, receiver)
    live.stop()
    store.close()
    receiver.server.shutdown()
    receiver.server.server_close()


def no_local_store(tmp_path: Path) -> None:
    assert not (tmp_path / "migratrack.db").exists()


def test_show_prints_where_an_alert_went_as_the_server_saw_it(server: Server, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.live.url, headers={"Authorization": f"Bearer {server.tokens['operator']}"}) as c:
        alert = c.post("/api/migrations/m/alerts", json={"level": "error", "message": "replica lag"}).json()
    server.receiver.wait_for(1)
    end = time.monotonic() + 5
    while True:  # the server's dispatcher records the attempt just after the receiver answered
        code, out = server.cli("viewer", "alerts", "show", "m", alert["id"])
        if "delivered" in out or time.monotonic() > end:
            break
        time.sleep(0.05)
    assert code == 0, out
    assert out.splitlines()[0].startswith(f"{alert['id']}  error  ")
    assert "replica lag" in out
    assert "-> hook [firing] delivered" in out and "HTTP 200 ok" in out
    code, out = server.cli("viewer", "alerts", "show", "m", "no-such-alert")
    assert code == ExitCode.USAGE and "no-such-alert" in out
    code, out = server.cli("scoped-operator", "alerts", "show", "other", alert["id"])
    assert code == ExitCode.USAGE and "limited to the migrations m" in out
    no_local_store(tmp_path)


def test_silence_silences_and_unsilence_act_on_the_servers_store(server: Server, tmp_path: Path) -> None:
    code, out = server.cli("operator", "alerts", "silence", "--for", "2h", "--migration", "m", "--comment", "deploy")
    assert code == 0, out
    silence_id = out.split()[1]
    (stored,) = records.silences(server.store)
    assert stored.id == silence_id and stored.migration_id == "m" and stored.comment == "deploy"
    assert stored.created_by.startswith("token:operator-bot/") and stored.created_by.endswith('claims "bob@laptop"')
    code, out = server.cli("viewer", "alerts", "silences")
    assert code == 0 and silence_id in out and "migration=m" in out and "(deploy)" in out
    code, out = server.cli("viewer", "alerts", "unsilence", silence_id)
    assert code == ExitCode.USAGE and "operator" in out  # a viewer reads only
    assert [s.id for s in records.silences(server.store)] == [silence_id]
    code, out = server.cli("operator", "alerts", "unsilence", silence_id)
    assert (code, out.strip()) == (0, f"silence {silence_id} ended")
    assert records.silences(server.store) == []
    code, out = server.cli("operator", "alerts", "unsilence", silence_id)
    assert code == ExitCode.USAGE and "no silence" in out
    assert server.cli("operator", "alerts", "silences")[1].strip() == "no silences in force"
    no_local_store(tmp_path)


def test_silence_refusals_through_the_server(server: Server) -> None:
    code, out = server.cli("viewer", "alerts", "silence", "--for", "1h")
    assert code == ExitCode.USAGE and "this needs the operator role" in out
    code, out = server.cli("scoped-operator", "alerts", "silence", "--for", "1h")
    assert code == ExitCode.USAGE and "limited to some migrations" in out
    code, out = server.cli("operator", "alerts", "silence", "--for", "soon")
    assert code == ExitCode.USAGE and "--for" in out
    code, out = server.cli("operator", "alerts", "silence", "--until", "2020-01-01T00:00:00+00:00")
    assert code == ExitCode.USAGE and "future" in out
    assert records.silences(server.store) == []


def test_deadline_is_set_and_cleared_on_the_servers_migration(server: Server) -> None:
    code, out = server.cli("operator", "alerts", "deadline", "m", "2026-12-01T06:00:00+00:00")
    assert (code, out.strip()) == (0, "m: deadline 2026-12-01T06:00:00+00:00")
    assert server.store.load("m").metadata["deadline"] == "2026-12-01T06:00:00+00:00"
    event = server.store.events("m")[-1]
    assert event.type == "migration.deadline" and event.actor.startswith("token:operator-bot/")
    code, out = server.cli("viewer", "alerts", "deadline", "m", "--clear")
    assert code == ExitCode.USAGE and "operator" in out
    code, out = server.cli("operator", "alerts", "deadline", "m", "--clear")
    assert (code, out.strip()) == (0, "m: deadline cleared")
    assert "deadline" not in server.store.load("m").metadata
    code, out = server.cli("operator", "alerts", "deadline", "nope", "--clear")
    assert code == ExitCode.USAGE and "nope" in out


def test_a_channel_test_is_sent_by_the_server_through_its_own_configuration(server: Server, tmp_path: Path) -> None:
    code, out = server.cli("admin", "alerts", "test", "--channel", "hook")
    assert (code, out.strip()) == (0, "hook: delivered: HTTP 200 ok")
    (got,) = server.receiver.accepted
    assert got.path == "/hook" and "token:admin-bot/" in got.body.decode()
    server.receiver.fail(100, status=403)
    code, out = server.cli("admin", "alerts", "test", "--channel", "hook")
    assert code == ExitCode.REFUSED and out.strip() == "hook: failed: HTTP 403 oops"
    code, out = server.cli("admin", "alerts", "test", "--channel", "slack")
    assert code == ExitCode.USAGE and "no channel 'slack'; configured: hook" in out
    code, out = server.cli("operator", "alerts", "test", "--channel", "hook")
    assert code == ExitCode.USAGE and "this needs the admin role" in out
    code, out = server.cli("scoped-admin", "alerts", "test", "--channel", "hook")
    assert code == ExitCode.USAGE and "limited to some migrations" in out
    local = tmp_path / "local.yaml"
    local.write_text("channels: {}\n")
    code, out = server.cli("admin", "alerts", "test", "--channel", "hook", "--config", str(local))
    assert code == ExitCode.USAGE and "the server sends the test with its own configuration" in out
    assert len(server.receiver.seen) == 2  # the refused ones sent nothing
    no_local_store(tmp_path)


def test_tokens_are_created_listed_and_revoked_through_the_server(server: Server, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--url", server.live.url, "--token", server.tokens["admin"], "token", "create",
                                      "--role", "viewer", "--name", "dash", "--migration", "m"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("mt_") and "created viewer token 'dash'" in result.stderr
    record = next(t for t in server.store.list_tokens() if t.name == "dash")
    assert record.migrations == ["m"] and record.created_by is not None
    assert record.created_by.startswith("token:admin-bot/")
    with httpx.Client(base_url=server.live.url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get("/api/migrations/m").status_code == 200  # the printed token works
    code, out = server.cli("admin", "token", "list")
    line = next(x for x in out.splitlines() if " dash " in x)
    assert record.id in line and "viewer" in line and "by token:admin-bot/" in line and "migrations: m" in line
    assert "active" in line and "token_hash" not in out
    code, out = server.cli("admin", "token", "revoke", "dash")
    assert (code, out.strip()) == (0, f"revoked token 'dash' (id {record.id})")
    revoked = next(t for t in server.store.list_tokens() if t.name == "dash")
    assert revoked.revoked_at is not None and (revoked.revoked_by or "").startswith("token:admin-bot/")
    assert "revoked" in next(x for x in server.cli("admin", "token", "list")[1].splitlines() if " dash " in x)
    code, out = server.cli("admin", "token", "revoke", "nobody")
    assert code == ExitCode.USAGE and "no token with id or name 'nobody'" in out
    no_local_store(tmp_path)


@pytest.mark.parametrize("role", ["operator", "viewer", "scoped-admin"])
def test_only_an_unscoped_admin_manages_tokens(server: Server, role: str) -> None:
    before = len(server.store.list_tokens())
    for args in (["token", "list"], ["token", "create", "--role", "admin", "--name", "x"],
                 ["token", "revoke", "viewer-bot"]):
        code, out = server.cli(role, *args)
        assert code == ExitCode.USAGE, (args, out)
        assert ("limited to some migrations" if role == "scoped-admin" else "this needs the admin role") in out
    assert len(server.store.list_tokens()) == before
    assert all(t.revoked_at is None for t in server.store.list_tokens())


def test_purge_drops_old_finished_migrations_on_the_server(server: Server, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    past = MigrationService(server.store, lambda: datetime(2025, 1, 1, tzinfo=UTC))
    past.initialize("old", [{"id": "copy"}], actor="t")
    past.execute("old", Cancel("not needed"), actor="t")
    code, out = server.cli("admin", "purge", "--older-than", "30d", "--dry-run")
    assert code == 0 and out.startswith("would drop 1 finished migration(s)") and out.strip().endswith(": old")
    assert server.store.exists("old")
    for role, refusal in (("operator", "this needs the admin role"), ("scoped-admin", "limited to some migrations")):
        code, out = server.cli(role, "purge", "--older-than", "30d")
        assert code == ExitCode.USAGE and refusal in out
    assert server.store.exists("old")
    with caplog.at_level("INFO", logger="migratrack.audit"):
        code, out = server.cli("admin", "purge", "--older-than", "30d")
    assert code == 0 and out.startswith("dropped 1 finished migration(s)") and out.strip().endswith(": old")
    assert not server.store.exists("old") and server.store.exists("m")  # the active one stays
    assert any("purged by token:admin-bot/" in r.getMessage() and "old" in r.getMessage() for r in caplog.records)
    code, out = server.cli("admin", "purge", "--older-than", "someday")
    assert code == ExitCode.USAGE and "--older-than" in out
    no_local_store(tmp_path)


@pytest.mark.parametrize("args", [["alerts", "silences"], ["alerts", "show", "m", "a1"], ["token", "list"],
                                  ["purge", "--older-than", "30d"], ["alerts", "deadline", "m", "--clear"]])
def test_an_unreachable_server_exits_4(args: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", *args])
    assert result.exit_code == ExitCode.UNREACHABLE, result.output
    assert "migratrack server http://127.0.0.1:9 unavailable" in result.output
    no_local_store(tmp_path)


@pytest.mark.parametrize(("args", "why"), [
    (["serve"], "it runs a server on a store"),
    (["rekey"], "rewrites every record of a store with a new key"),
    (["encrypt-store"], "rewrites every record of a store with a key"),
    (["upgrade-store"], "upgrades a store's layout in place"),
    (["dispatch", "--once"], "a server dispatches its own alerts"),
    (["demo", "--quick"], "a simulated migration in a store of its own"),
])
def test_store_administration_refuses_a_server_and_says_why(args: list[str], why: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", *args])
    assert result.exit_code == ExitCode.USAGE, result.output
    text = " ".join(result.output.split())
    assert "works on a store, not through the server http://127.0.0.1:9 (" in text and f"{why})" in text
    assert "give --storage" in text and "without --url and MIGRATRACK_URL" in text
    assert list(tmp_path.iterdir()) == []  # no default store was created


def test_the_refusal_holds_however_the_program_is_started(tmp_path: Path) -> None:
    # `python -m migratrack.cli` names the program with several words: still `rekey`
    src = str(Path(__import__("migratrack").__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGRATRACK_") and k != "REDIS_URL"}
    proc = subprocess.run([sys.executable, "-m", "migratrack.cli", "--url", "http://127.0.0.1:9", "rekey"],
                          cwd=tmp_path, env={**env, "PYTHONPATH": src, "COLUMNS": "200"}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == ExitCode.USAGE, proc.stdout + proc.stderr
    assert "`migratrack rekey` works on a store, not through the server http://127.0.0.1:9" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_token_and_purge_through_a_real_serve_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/served.db"
    with serve_process("--storage", url, "--no-login-link") as (server, lines):
        admin = next(line.strip() for line in lines if line.strip().startswith("mt_"))  # printed on first start
        root = ["--url", server, "--token", admin]
        made = CliRunner().invoke(app, [*root, "token", "create", "--role", "operator", "--name", "etl"])
        assert made.exit_code == 0, made.output
        listed = CliRunner().invoke(app, [*root, "token", "list"])
        assert listed.exit_code == 0 and any(" etl " in x and "operator" in x for x in listed.output.splitlines())
        etl = made.stdout.strip().splitlines()[-1]
        refused = CliRunner().invoke(app, ["--url", server, "--token", etl, "purge", "--older-than", "30d"])
        assert refused.exit_code == ExitCode.USAGE and "this needs the admin role" in refused.output
        purged = CliRunner().invoke(app, [*root, "purge", "--older-than", "30d", "--dry-run"])
        assert purged.exit_code == 0 and purged.output.startswith("would drop 0 finished migration(s)")
    store = open_storage(url)
    try:
        assert sorted(t.name for t in store.list_tokens() if t.revoked_at is None) == ["admin", "etl"]
    finally:
        store.close()
