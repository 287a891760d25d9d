"""`migratrack status` says what drives the estimate, or why there is none."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from migratrack.cli.main import app
from migratrack.core.commands import StartPhase
from migratrack.service import MigrationService


def test_status_explains_the_estimate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    svc = MigrationService(url)
    svc.initialize("m", [{"id": "copy", "estimated_duration": 30},
                         {"id": "[b]check[b]", "dependencies": ["copy"], "estimated_duration": 60}], actor="t")
    svc.execute("m", StartPhase("copy"), actor="t")
    out = CliRunner().invoke(app, ["status", "m", "--storage", url], terminal_width=200)
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "driven by [b]check[b] (plan:" in text  # a user's markup is printed, not obeyed
    assert "confidence" in text


def test_status_says_why_the_estimate_is_unknown(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    MigrationService(url).initialize("m", [{"id": "copy"}], actor="t")
    out = CliRunner().invoke(app, ["status", "m", "--storage", url], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "'copy' has no estimated_duration" in " ".join(out.output.split())
