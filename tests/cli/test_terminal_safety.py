"""What users typed never drives the operator's terminal: control, text-direction characters
and rich markup in names, errors, alerts and audit entries are printed as visible text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from migratrack.cli.main import app
from migratrack.core.commands import FailPhase, StartPhase
from migratrack.service import MigrationService

EVIL = "x\x1b]0;PWNED\x07\x1b[2J\u202e[red]boom[/red]"


def test_status_events_and_list_neutralise_what_users_supplied(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    svc = MigrationService(url)
    svc.initialize("m", [{"id": "a", "name": EVIL}], name=EVIL, actor=EVIL)
    svc.execute("m", StartPhase("a"), actor="w")
    svc.create_alert("m", "error", EVIL, actor="w")
    svc.execute("m", FailPhase("a", EVIL), actor="w")
    runner = CliRunner()
    for args in (["status", "m"], ["events", "m"], ["list"], ["status", "m", "--json"]):
        result = runner.invoke(app, [*args, "--storage", url])
        assert result.exit_code == 0, (args, result.output)
        out = result.output
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, (args, out)
    text = runner.invoke(app, ["events", "m", "--storage", url]).output
    assert "\\x1b]0;PWNED\\x07" in text and "\\u202e" in text
    assert "[red]boom[/red]" in runner.invoke(app, ["status", "m", "--storage", url]).output


def test_an_error_message_with_markup_is_printed_as_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    MigrationService(url).initialize("m", [{"id": "a"}], actor="t")
    result = subprocess.run([sys.executable, "-m", "migratrack.cli", "start", "m", "[bold]nope[/bold]",
                             "--storage", url], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "has no phase '[bold]nope[/bold]'" in result.stderr
