"""`migratrack summary` and `migratrack sub-tasks` on a store (opened read-only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from migratrack.cli.main import app
from migratrack.core.commands import FailSubTask, StartPhase, StartSubTask
from migratrack.service import MigrationService


@pytest.fixture(autouse=True)
def no_server_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MIGRATRACK_URL", "MIGRATRACK_TOKEN", "MIGRATRACK_STORAGE_URL"):
        monkeypatch.delenv(var, raising=False)


def test_sub_tasks_pages_a_phase_by_status_and_summary_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    svc = MigrationService(url)
    svc.initialize("m1", [{"id": "copy", "sub_tasks": [f"t{i}" for i in range(12)]}], actor="a")
    svc.execute("m1", StartPhase("copy"), actor="a")
    for i in (2, 5, 9):
        svc.execute("m1", StartSubTask("copy", f"t{i}"), actor="a")
        svc.execute("m1", FailSubTask("copy", f"t{i}", "checksum mismatch"), actor="a")
    svc.storage.close()
    runner = CliRunner()
    result = runner.invoke(app, ["sub-tasks", "m1", "copy", "--status", "failed", "--limit", "2", "--storage", url])
    assert result.exit_code == 0, result.output
    assert "t2" in result.output and "t5" in result.output and "t9" not in result.output
    assert "checksum mismatch" in result.output and "--after t5" in result.output
    result = runner.invoke(app, ["sub-tasks", "m1", "copy", "--status", "failed", "--after", "t5", "--json",
                                 "--storage", url])
    page = json.loads(result.output)
    assert [s["id"] for s in page["items"]] == ["t9"] and page["next_after"] is None
    result = runner.invoke(app, ["summary", "m1", "--json", "--storage", url])
    assert json.loads(result.output)["phases"][0]["sub_task_counts"]["failed"] == 3
    result = runner.invoke(app, ["sub-tasks", "m1", "nope", "--storage", url])
    assert result.exit_code == 2 and "known phases: copy" in result.output
    result = runner.invoke(app, ["sub-tasks", "m1", "copy", "--status", "bogus", "--storage", url])
    assert result.exit_code != 0
