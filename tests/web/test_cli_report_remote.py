"""`migratrack --url ... report ID` reads through the server and writes the same report."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from migratrack import MigrationProgressTracker
from migratrack.cli.main import app
from migratrack.storage import open_storage
from migratrack.web import create_app

from .live import LiveServer


def finished_migration(url: str) -> None:
    t = MigrationProgressTracker("m1", storage=url, coalesce=0)
    t.initialize_migration([{"id": "a", "estimated_duration": 1}, {"id": "b", "dependencies": ["a"]}])
    with t.phase("a"):
        t.update_metrics(increment={"total_data_migrated": 1000})
        t.update_phase_progress("a", 40)
    t.start_phase("b")
    t.create_alert("warning", "slow", "b")
    t.close()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_through_the_server_the_report_is_the_same(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    finished_migration(url)
    store = open_storage(url)
    server_app = create_app(store)
    token = server_app.state.tokens.create("reporter", "viewer")[0]
    live = LiveServer(server_app).start()
    try:
        code, out, err = run("--url", live.url, "--token", token, "report", "m1", "--format", "json")
        assert code == 0, err
        remote = json.loads(out)
    finally:
        live.stop()
        store.close()
    _, local_out, _ = run("report", "m1", "--storage", url, "--format", "json")
    local = json.loads(local_out)
    for report in (remote, local):  # what moves with the clock while the migration runs
        for key in ("elapsed_seconds", "active_seconds", "eta", "eta_reason"):
            report["summary"].pop(key)
        for p in report["phases"]:
            p.pop("actual_seconds")
        report["progress"].pop()  # the series is extended to now
        report["data"].pop("migration_speed")  # data / active time
    for key in ("summary", "phases", "alerts", "data", "cost", "audit", "progress"):
        assert remote[key] == local[key], key
    assert remote["summary"]["status"] == "running" and len(remote["audit"]) >= 5
