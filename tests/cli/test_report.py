"""The shell-script commands: a migration driven from the CLI alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from migratrack.cli.main import app
from migratrack.service import MigrationService

PLAN = """
name: Shell migration
phases:
  - {id: schema, estimated_duration: 1}
  - {id: copy, dependencies: [schema], estimated_duration: 5, sub_tasks: [t1, t2]}
"""


@pytest.fixture
def env(tmp_path: Path) -> tuple[CliRunner, str, Path]:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    return CliRunner(), f"sqlite:///{tmp_path}/shell.db", plan


def run(runner: CliRunner, url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--storage", url] if args[0] != "check-plan" else list(args))
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_a_shell_script_drives_a_migration_to_completion(env: tuple[CliRunner, str, Path]) -> None:
    runner, url, plan = env
    assert run(runner, url, "init", "m", str(plan))[0] == 0
    steps = [
        ["start", "m", "schema"],
        ["progress", "m", "schema", "40", "--metadata", '{"step": "tables"}'],
        ["complete", "m", "schema"],
        ["start", "m", "copy"],
        ["start", "m", "copy", "--sub", "t1"],
        ["progress", "m", "copy", "60", "--sub", "t1"],
        ["alert", "m", "warning", "slow disk", "--phase", "copy"],
    ]
    for args in steps:
        code, out = run(runner, url, *args)
        assert code == 0, (args, out)
    state = MigrationService(url).state("m")
    assert state.phases["schema"].status.value == "completed"
    assert state.phases["schema"].metadata == {"step": "tables"}
    assert state.phases["copy"].sub_tasks["t1"].progress == 60
    alerts = MigrationService(url).alerts("m")
    assert [a.message for a in alerts if a.source == "user"] == ["slow disk"]


def test_init_twice_with_the_same_plan_resumes(env: tuple[CliRunner, str, Path]) -> None:
    runner, url, plan = env
    assert "created" in run(runner, url, "init", "m", str(plan))[1]
    assert "resumed" in run(runner, url, "init", "m", str(plan))[1]


def test_rule_violations_exit_non_zero_with_the_rule(env: tuple[CliRunner, str, Path]) -> None:
    runner, url, plan = env
    run(runner, url, "init", "m", str(plan))
    code, out = run(runner, url, "start", "m", "copy")
    assert code != 0 and "schema" in out  # the blocking phase is named
    code, out = run(runner, url, "progress", "m", "schema", "150")
    assert code != 0 and "between 0 and 100" in out


def test_checkpoint_exits_3_once_cancelled(env: tuple[CliRunner, str, Path]) -> None:
    runner, url, plan = env
    run(runner, url, "init", "m", str(plan))
    assert run(runner, url, "checkpoint", "m")[0] == 0
    assert run(runner, url, "cancel", "m", "--reason", "rollback")[0] == 0
    assert run(runner, url, "checkpoint", "m")[0] == 3


def test_check_plan_reports_a_cycle(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("phases: [{id: a, dependencies: [b]}, {id: b, dependencies: [a]}]")
    result = CliRunner().invoke(app, ["check-plan", str(bad)])
    assert result.exit_code == 2
    assert "a -> b -> a" in result.output


def test_estimate_revises_a_phase_and_the_eta_follows(env: tuple[CliRunner, str, Path]) -> None:
    runner, url, plan = env
    run(runner, url, "init", "m", str(plan))
    run(runner, url, "start", "m", "schema")
    before = MigrationService(url).estimate("m").remaining_seconds
    code, out = run(runner, url, "estimate", "m", "copy", "125")
    assert code == 0, out
    assert out.startswith("m: phase copy now estimated at 125 min; ETA ")
    after = MigrationService(url).estimate("m").remaining_seconds
    assert before is not None and after is not None and after - before == pytest.approx(120 * 60)
    event = MigrationService(url).events("m")[-1]
    assert (event.type, event.payload["minutes"], event.payload["previous_minutes"]) == \
        ("phase.estimate_revised", 125.0, 5.0)
    code, out = run(runner, url, "estimate", "m", "copy", "0")
    assert code == 2 and "minutes must be a positive number" in out


def test_control_and_approval_verbs_print_what_they_did(env: tuple[CliRunner, str, Path]) -> None:
    runner, url, plan = env
    run(runner, url, "init", "m", str(plan))
    assert run(runner, url, "pause", "m", "--reason", "window") == (0, "m: paused\n")
    assert run(runner, url, "resume", "m") == (0, "m: pending\n")  # nothing started yet
    code, out = run(runner, url, "approve", "m", "copy", "--by", "alice")
    assert code == 1 and out.startswith("error: phase 'copy' does not require approval; there is nothing to approve\n")
    assert MigrationService(url).state("m").phases["copy"].approved_by is None
