"""Exit codes (docs/cli.md): 0 ok, 1 a rule refused, 2 bad usage, 3 cancelled, 4 unreachable;
and what status, list and watch show for approval gates, cancelled and re-run phases."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from migratrack.cli.errors import ExitCode
from migratrack.cli.main import app
from migratrack.core.commands import ApprovePhase, Cancel, CompletePhase, StartPhase
from migratrack.service import MigrationService

PLAN = [{"id": "copy", "estimated_duration": 1}, {"id": "gate", "dependencies": ["copy"], "requires_approval": True,
                                                  "estimated_duration": 1}]


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MIGRATRACK_URL", "MIGRATRACK_TOKEN", "MIGRATRACK_STORAGE_URL", "REDIS_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def url(tmp_path: Path) -> str:
    u = f"sqlite:///{tmp_path}/codes.db"
    MigrationService(u).initialize("m", PLAN, actor="t")
    return u


def cli(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--storage", url])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_the_codes_are_the_documented_ones() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4]
    doc = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} |" in doc


def test_ok_refused_and_usage(url: str) -> None:
    assert cli(url, "start", "m", "copy")[0] == ExitCode.OK
    assert cli(url, "start", "m", "gate")[0] == ExitCode.REFUSED  # blocked by copy
    assert cli(url, "start", "m", "nope")[0] == ExitCode.USAGE


def test_approve_on_a_phase_without_a_gate_refuses(url: str) -> None:
    code, out = cli(url, "approve", "m", "copy", "--by", "alice")
    assert code == ExitCode.REFUSED and "does not require approval" in out
    assert cli(url, "approve", "m", "gate", "--by", "alice") == (0, "m: phase gate approved by alice\n")


def test_resume_on_a_completed_or_cancelled_migration_refuses(url: str, tmp_path: Path) -> None:
    svc = MigrationService(url)
    for cmd in (StartPhase("copy"), CompletePhase("copy"), ApprovePhase("gate", "a"), StartPhase("gate"),
                CompletePhase("gate")):
        svc.execute("m", cmd, actor="t")
    code, out = cli(url, "resume", "m")
    assert code == ExitCode.REFUSED and "cannot resume migration: it is completed" in out
    svc.initialize("c", PLAN, actor="t")
    svc.execute("c", Cancel("stop"), actor="t")
    code, out = cli(url, "resume", "c")
    assert code == ExitCode.REFUSED and "cancelled" in out


def test_cancelled_exits_3_from_checkpoint_and_watch(url: str) -> None:
    MigrationService(url).execute("m", Cancel("stop"), actor="t")
    assert cli(url, "checkpoint", "m")[0] == ExitCode.CANCELLED
    assert cli(url, "watch", "m", "--interval", "0.1")[0] == ExitCode.CANCELLED


@pytest.mark.parametrize("args", [["list"], ["status", "m"], ["events", "m"], ["start", "m", "copy"],
                                  ["progress", "m", "copy", "5"], ["pause", "m"], ["alert", "m", "info", "x"],
                                  ["checkpoint", "m"], ["init", "m", "plan.yaml"]])
def test_an_unreachable_server_exits_4(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plan.yaml").write_text("phases: [{id: copy}]")
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", *args])
    assert result.exit_code == ExitCode.UNREACHABLE, result.output
    assert "migratrack server http://127.0.0.1:9 unavailable" in result.output
    assert "Traceback" not in result.output


def test_status_and_list_show_waiting_for_approval_and_say_what_the_eta_waits_for(url: str) -> None:
    svc = MigrationService(url)
    svc.execute("m", StartPhase("copy"), actor="t")
    svc.execute("m", CompletePhase("copy"), actor="t")
    code, out = cli(url, "status", "m")
    assert code == 0
    assert "status  waiting for approval" in out
    assert "ETA  waits for approval of gate" in out
    assert "migratrack approve m gate" in out
    assert cli(url, "list")[1].split()[1:4] == ["waiting", "for", "approval"]


def test_after_cancel_the_running_phase_reads_cancelled(url: str) -> None:
    svc = MigrationService(url)
    svc.execute("m", StartPhase("copy"), actor="t")
    svc.execute("m", Cancel("stop"), actor="t")
    out = cli(url, "status", "m")[1]
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip().startswith(("copy", "gate"))}
    assert rows == {"copy": "cancelled", "gate": "cancelled"}
    assert "ETA  none: cancelled" in out
    assert cli(url, "list")[1].split()[:2] == ["m", "cancelled"]


def test_alert_prints_a_confirmation(url: str) -> None:
    code, out = cli(url, "alert", "m", "warning", "disk is slow", "--phase", "copy")
    assert code == 0 and out == "m: warning alert recorded (phase copy)\n"


def test_alert_past_the_cap_is_refused_not_reported_as_recorded(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATRACK_MAX_ALERTS", "1")
    assert cli(url, "alert", "m", "info", "one")[0] == 0
    code, out = cli(url, "alert", "m", "error", "two")
    assert code == ExitCode.REFUSED and "recorded" not in out
    assert "keeps 1 alerts" in out and "MIGRATRACK_MAX_ALERTS" in out
    assert [a.message for a in MigrationService(url).alerts("m")] == ["one"]


def test_errors_are_not_wrapped_when_not_a_terminal(url: str) -> None:
    code, out = cli(url, "start", "m", "x" * 150)
    assert code == ExitCode.USAGE
    assert out.splitlines()[0].startswith("error: migration 'm' has no phase 'xxxx")
    assert out.splitlines()[0].endswith("known phases: copy, gate")


def test_help_has_no_type_noise_and_shows_an_example() -> None:
    from typer.main import get_command

    for args in ([], ["token"]):
        text = CliRunner().invoke(app, [*args, "--help"], terminal_width=100).output
        assert "<bool>" not in text and " ; " not in text, text
    for name, cmd in get_command(app).commands.items():  # type: ignore[attr-defined]
        if getattr(cmd, "commands", None) is not None:
            continue
        text = CliRunner().invoke(app, [name, "--help"], terminal_width=100).output
        assert "<bool>" not in text and "{migration}" not in text and " ; " not in text, (name, text)
        assert "Example:" in text, name


@pytest.mark.parametrize("args", [["rekey"], ["upgrade-store"], ["serve"]])
def test_store_commands_refuse_a_server_instead_of_using_the_default_store(args: list[str], tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", *args])
    assert result.exit_code == ExitCode.USAGE
    assert "works on a store, not through the server http://127.0.0.1:9 (" in result.output
    assert "give --storage" in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []  # no default store was created


@pytest.mark.parametrize("args", [["purge", "--older-than", "30d"], ["token", "list"], ["alerts", "silences"]])
def test_admin_commands_go_to_the_server_not_the_default_store(args: list[str], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", *args])
    assert result.exit_code == ExitCode.UNREACHABLE, result.output
    assert list(tmp_path.iterdir()) == []
