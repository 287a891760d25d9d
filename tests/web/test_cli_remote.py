"""The CLI against a server (--url / MIGRATRACK_URL) instead of a store."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from migratrack.cli.main import app as cli
from migratrack.storage import Storage

from .live import LiveServer

PLAN = "phases:\n  - {id: schema}\n  - {id: copy, dependencies: [schema]}\n"


@pytest.fixture
def remote(server: LiveServer, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("MIGRATRACK_STORAGE_URL", raising=False)
    monkeypatch.setenv("MIGRATRACK_URL", server.url)
    monkeypatch.setenv("MIGRATRACK_TOKEN", tokens["operator"])
    return CliRunner()


def test_a_shell_migration_reports_through_the_server(remote: CliRunner, store: Storage, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    for args in (["init", "r1", str(plan)], ["start", "r1", "schema"], ["progress", "r1", "schema", "40"]):
        result = remote.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output, result.exception)
    state = store.load("r1")  # the server's store has it
    assert state.phases["schema"].progress == 40
    events = store.events("r1")
    assert "token:operator-bot" in events[-1].actor  # the audit trail names the token


def test_status_and_events_read_the_server(remote: CliRunner, store: Storage, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    remote.invoke(cli, ["init", "r1", str(plan)])
    remote.invoke(cli, ["start", "r1", "schema"])
    status = remote.invoke(cli, ["status", "r1", "--json"])
    assert status.exit_code == 0 and '"migration_id": "r1"' in status.output
    events = remote.invoke(cli, ["events", "r1"])
    assert "phase.started" in events.output


def test_rule_violations_from_the_server_exit_non_zero(remote: CliRunner, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    remote.invoke(cli, ["init", "r1", str(plan)])
    result = remote.invoke(cli, ["start", "r1", "copy"])
    assert result.exit_code == 1
    assert "schema" in result.output  # names the blocking phase


def test_an_operator_token_cannot_pause(remote: CliRunner, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    remote.invoke(cli, ["init", "r1", str(plan)])
    result = remote.invoke(cli, ["pause", "r1"])
    assert result.exit_code == 2
    assert "admin" in result.output


def test_the_root_options_name_the_server_for_one_invocation(
    server: LiveServer, tokens: dict[str, str], store: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("MIGRATRACK_URL", "MIGRATRACK_TOKEN", "MIGRATRACK_STORAGE_URL", "REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # the default store, sqlite:///migratrack.db, is local to the test
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    runner = CliRunner()
    root = ["--url", server.url, "--token", tokens["operator"]]
    for args in (["init", "r2", str(plan)], ["start", "r2", "schema"], ["status", "r2", "--json"]):
        result = runner.invoke(cli, [*root, *args])
        assert result.exit_code == 0, (args, result.output, result.exception)
    assert '"migration_id": "r2"' in result.output
    assert store.load("r2").phases["schema"].status.value == "in_progress"
    local = runner.invoke(cli, ["status", "r2"])  # without them, the default store: nothing carried over
    assert local.exit_code == 2 and "does not exist" in local.output


def test_list_history_run_and_a_rerun_work_through_the_server(remote: CliRunner, store: Storage,
                                                              tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    remote.invoke(cli, ["init", "r4", str(plan)])
    listed = remote.invoke(cli, ["list"])
    assert listed.exit_code == 0 and any(line.split()[:2] == ["r4", "pending"] for line in listed.output.splitlines())
    ran = remote.invoke(cli, ["run", "r4", "schema", "--progress-regex", r"(?P<pct>\d+)%", "--",
                              "sh", "-c", "echo 50%; sleep 0.3"])
    assert ran.exit_code == 0, ran.output
    assert store.load("r4").phases["schema"].status.value == "completed"
    again = remote.invoke(cli, ["run", "r4", "schema", "--", "false"])  # the rule's refusal travels as data
    assert again.exit_code == 0 and "already finished; not run again" in again.output
    assert [e.type for e in store.events("r4")][-1] == "phase.rerun_skipped"
    failed = remote.invoke(cli, ["run", "r4", "copy", "--", "sh", "-c", "echo broken >&2; exit 5"])
    assert failed.exit_code == 5 and "broken" in store.load("r4").phases["copy"].errors[-1]
    history = remote.invoke(cli, ["history", "r4"])
    assert history.exit_code == 0 and history.output.split()[:2] == ["r4", "failed"]
