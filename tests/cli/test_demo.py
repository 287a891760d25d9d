"""`migratrack demo`: the seed's quick script and the full simulated migration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from migratrack.cli.demo import DEMO_ID
from migratrack.cli.main import app
from migratrack.service import MigrationService


def dashboard_json(output: str) -> dict[str, Any]:
    start = output.index("\n{") + 1
    data: dict[str, Any] = json.JSONDecoder().raw_decode(output[start:])[0]
    return data


def test_quick_demo_prints_the_dashboard_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/quick.db"
    result = CliRunner().invoke(app, ["demo", "--quick", "--storage", url])
    assert result.exit_code == 0, result.output
    assert "migration initialised" in result.output
    data = dashboard_json(result.output)
    overview = data["overview"]
    assert overview["migration_id"] == "test-migration"
    assert overview["status"] == "running"
    assert overview["total_phases"] == 2
    phases = {p["id"]: p for p in data["phases"]}
    infra = phases["infrastructure-setup"]
    assert infra["status"] == "in_progress"
    assert infra["progress"] == 75  # its one sub-task at 75% is ahead of the 50% reported for the phase
    assert infra["metadata"] == {"currentTask": "Creating VPC", "resourcesCreated": 10}
    assert infra["sub_tasks"][0]["progress"] == 75
    assert sorted(a["level"] for a in data["recent_alerts"]) == ["error", "info", "warning"]
    metrics = data["metrics"]
    assert metrics["total_data_migrated"] == 500 * 1024 * 1024
    assert metrics["successful_operations"] == 150 and metrics["failed_operations"] == 3
    assert metrics["error_rate"] == pytest.approx(300 / 153)
    assert [t["phase"] for t in data["timeline"]] == ["infrastructure-setup", "database-migration"]
    # what was printed was the state then; the demo finished the migration afterwards
    assert MigrationService(url).overview("test-migration").status.value == "completed"


def test_quick_demo_leaves_nothing_running_in_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/quick.db"
    result = CliRunner().invoke(app, ["demo", "--quick", "--storage", url])
    assert result.exit_code == 0, result.output
    assert "demo finished: test-migration is completed" in result.output
    listed = CliRunner().invoke(app, ["list", "--storage", url])
    assert listed.output.split()[:2] == ["test-migration", "completed"]


def test_quick_demo_twice_starts_afresh(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/quick.db"
    runner = CliRunner()
    assert runner.invoke(app, ["demo", "--quick", "--storage", url]).exit_code == 0
    result = runner.invoke(app, ["demo", "--quick", "--storage", url])
    assert result.exit_code == 0, result.output
    assert len(dashboard_json(result.output)["recent_alerts"]) == 3


def test_the_installed_command_runs_the_quick_demo(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MIGRATRACK_STORAGE_URL", "REDIS_URL", "MIGRATRACK_URL")}
    proc = subprocess.run(
        [sys.executable, "-m", "migratrack.cli", "demo", "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert dashboard_json(proc.stdout)["overview"]["migration_id"] == "test-migration"
    assert (tmp_path / "migratrack.db").exists()  # the default store, in the working directory


def test_full_demo_at_high_speed_ends_completed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    result = CliRunner().invoke(app, ["demo", "--speed", "60", "--storage", url])
    assert result.exit_code == 0, result.output
    svc = MigrationService(url)
    d = svc.dashboard(DEMO_ID, alerts=200)
    o = d.overview
    assert o.status.value == "completed"
    assert o.overall_progress == 100
    assert o.phase_counts["completed"] == 5
    phases = {p.id: p for p in d.phases}
    assert list(phases) == ["infrastructure-setup", "database-migration", "file-migration", "cutover", "validation"]
    # a failure and a retry
    files = phases["file-migration"]
    assert files.attempts == 2 and files.errors and "SlowDown" in files.errors[0]
    assert any("payments" in e for e in phases["database-migration"].errors)
    assert all(s.status.value == "completed" for s in phases["database-migration"].sub_tasks)
    # the approval the demo grants
    assert phases["cutover"].approved_by == "demo-operator"
    assert phases["validation"].done == 200
    # alerts of every kind the story tells
    sources = {a.source for a in d.recent_alerts}
    assert {"user", "rule:phase-failed", "rule:subtask-failed", "rule:completed"} <= sources
    levels = {a.level.value for a in d.recent_alerts}
    assert {"info", "warning", "error"} <= levels
    # metrics, nested parts included
    m = d.metrics
    assert m.successful_operations > 0 and m.failed_operations > 0 and m.total_data_migrated > 0
    assert m.resource_utilization.keys() >= {"cpu", "memory"}
    assert m.cost_metrics.keys() >= {"estimated_cost", "actual_cost", "cost_per_gb"}
    # the audit trail is whole: gap-free, several actors
    events = svc.events(DEMO_ID, limit=1_000_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {"demo:infra", "demo:db", "demo:files", "demo:cutover"} <= {e.actor for e in events}
    started = {e.payload["phase"]: e.seq for e in events if e.type == "phase.started"}
    finished = {e.payload["phase"]: e.seq for e in events if e.type == "phase.completed"}
    assert finished["infrastructure-setup"] < started["database-migration"]
    assert finished["infrastructure-setup"] < started["file-migration"]
    assert max(finished["database-migration"], finished["file-migration"]) < started["cutover"]
    assert finished["cutover"] < started["validation"]


def test_the_demo_serves_its_dashboard_and_prints_the_login_link_first(tmp_path: Path) -> None:
    import httpx

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "migratrack.cli", "demo", "--speed", "30", "--port", "0", "--linger", "60",
         "--storage", f"sqlite:///{tmp_path}/demo.db"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "dashboard:" in line:
                break
        link = lines[-1].split("dashboard:", 1)[1].strip()
        assert "/login?code=" in link, lines
        with httpx.Client(timeout=10) as c:
            assert c.get(link).status_code == 303
            page = c.get(link.split("/login")[0] + f"/admin/migration/{DEMO_ID}")
            assert page.status_code == 200 and "AWS conversion 2024" in page.text
        rest = []
        for line in proc.stdout:
            rest.append(line)
            if "the dashboard stays" in line:
                break
        assert any("validation" in line.lower() for line in rest), rest  # the terminal view still shows it
        with httpx.Client(timeout=10) as c:  # and the page, once it has ended
            page = c.get(link.split("/login")[0] + f"/admin/migration/{DEMO_ID}", follow_redirects=True)
            assert page.status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
