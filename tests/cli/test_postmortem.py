"""`migratrack report ID`: the report after a migration, from a store and through a server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from migratrack import MigrationProgressTracker
from migratrack.cli.main import app

SRC = str(Path(__file__).resolve().parents[2] / "src")
HOSTILE = "<script>alert(1)</script>|`x`"


def finished_migration(url: str) -> None:
    """A finished migration with errors, alerts, data, cost, a pause and a hostile phase name."""
    plan = [{"id": "schema", "estimated_duration": 1},
            {"id": "copy", "name": HOSTILE, "dependencies": ["schema"], "estimated_duration": 2,
             "sub_tasks": ["orders", "users"]}]
    t = MigrationProgressTracker("m1", storage=url, coalesce=0)
    t.initialize_migration(plan, name="Move orders")
    with t.phase("schema"):
        t.update_phase_progress("schema", 50)
    t.start_phase("copy")
    t.pause("maintenance window")
    t.resume()
    t.start_sub_task("copy", "orders")
    t.fail_sub_task("copy", "orders", "connection reset <b>")
    t.skip_sub_task("copy", "orders", "copied by hand")
    t.start_sub_task("copy", "users")
    for i in range(5):
        t.update_metrics(increment={"total_data_migrated": 1_000_000, "successful_operations": 100})
        t.update_sub_task_progress("copy", "users", 20 * (i + 1))
    t.complete_sub_task("copy", "users")
    t.update_metrics(cost_metrics={"estimated_cost": 120.0, "actual_cost": 80.5})
    t.create_alert("critical", "replica lag <img src=x onerror=alert(2)>", "copy")
    t.complete_phase("copy")
    t.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/r.db"
    finished_migration(url)
    return url


def run(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout, and stderr or the error `migratrack` would print (its main() prints it)."""
    result = CliRunner().invoke(app, list(args))
    err = result.stderr or (str(result.exception) if result.exception else "")
    return result.exit_code, result.stdout, err


def test_markdown_report_has_every_section_and_escapes_what_users_typed(url: str) -> None:
    code, out, _ = run("report", "m1", "--storage", url)
    assert code == 0
    for heading in ("## Summary", "## Timeline", "## Durations against estimates", "## Errors and alerts",
                    "## Data moved", "## Cost", "## Audit log"):
        assert heading in out
    assert "| Status | completed |" in out and "| Overall progress | 100.0% |" in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\|\\`x\\`" in out and "<script>" not in out
    assert "connection reset &lt;b&gt;" in out
    assert "- Data migrated: 4.8 MiB" in out
    assert "- actual cost: 80.50" in out
    assert "migration.paused" in out and "reason=maintenance window" in out
    assert re.search(r"\| replica lag &lt;img", out)


def test_html_report_is_one_file_with_svg_and_nothing_external(url: str, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    code, _, err = run("report", "m1", "--storage", url, "--format", "html", "-o", str(target))
    assert code == 2 and "does not exist" in err  # no folder: nothing written, a clear error
    target.parent.mkdir()
    code, out, err = run("report", "m1", "--storage", url, "--format", "html", "-o", str(target))
    assert code == 0 and out == "" and "wrote the html report" in err
    html = target.read_text()
    assert html.count("<svg") == 3 and 'class="timeline"' in html and "Throughput over time (B/s)" in html
    assert "<script" not in html.replace("&lt;script", "")
    assert not re.search(r'(src|href)="(?!data:)', html), "an external asset"
    assert "&lt;img src=x onerror=alert(2)&gt;" in html and "&lt;script&gt;alert(1)" in html
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temporary file left


def test_json_report_is_machine_readable(url: str) -> None:
    code, out, _ = run("report", "m1", "--storage", url, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["summary"]["status"] == "completed" and data["summary"]["paused_seconds"] >= 0
    copy = next(p for p in data["phases"] if p["id"] == "copy")
    assert copy["name"] == HOSTILE and copy["estimated_seconds"] == 120
    assert copy["errors"] == ["orders: connection reset <b>"]  # kept after the sub-task was skipped
    assert data["data"]["total_data_migrated"] == 5_000_000
    assert data["cost"] == {"estimated_cost": 120.0, "actual_cost": 80.5}
    assert data["throughput"]["unit"] == "B/s" and data["throughput"]["points"]
    assert data["progress"][-1]["value"] == 100.0
    types = [e["type"] for e in data["audit"]]
    assert "phase.progress" not in types and data["progress_events_omitted"] > 5
    assert types[0] == "migration.initialized" and "migration.completed" in types


def test_bad_input_gets_a_clear_error_without_a_traceback(url: str) -> None:
    cli = subprocess.run([sys.executable, "-m", "migratrack.cli", "report", "nope", "--storage", url],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert cli.returncode == 2 and "nope" in cli.stderr and "Traceback" not in cli.stderr
    code, _, err = run("report", "m1", "--storage", url, "--format", "pdf")
    assert code == 2 and "pdf" in err
