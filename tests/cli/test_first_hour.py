"""The first hour, end to end: a shell-script migration that uses only the CLI, shell completion,
and `watch` in a real terminal (tmux) while a worker reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.completion import get_completion_script
from typer.testing import CliRunner

from migratrack.cli.main import app
from migratrack.core.commands import ApprovePhase, CompletePhase, StartPhase
from migratrack.service import MigrationService

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
set -u
cat > plan.yaml <<'EOF'
name: Nightly copy
phases:
  - {id: schema, estimated_duration: 1}
  - {id: copy, dependencies: [schema], estimated_duration: 5}
  - {id: switch, dependencies: [copy], estimated_duration: 1, requires_approval: true}
EOF
migratrack init nightly plan.yaml
migratrack run nightly schema -- sh -c 'echo creating tables'
migratrack start nightly copy
n=0
for f in data/*.csv; do
  migratrack checkpoint nightly || exit 1
  n=$((n+1))
  migratrack progress nightly copy --done "$n" --total 2
done
migratrack alert nightly info "copied $n files"
migratrack complete nightly copy
migratrack start nightly switch && exit 9     # refused: it needs approval (exit 1)
migratrack approve nightly switch --by alice
migratrack run nightly switch --progress-regex '(?P<pct>\d+)%' -- sh -c 'echo 50%; echo 100%'
migratrack run nightly switch -- false        # a re-run: finished, not run again
migratrack status nightly --json > status.json
"""


@pytest.fixture
def shell(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "migratrack"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} -m migratrack.cli "$@"\n')
    exe.chmod(0o755)
    (tmp_path / "data").mkdir()
    for name in ("a.csv", "b.csv"):
        (tmp_path / "data" / name).write_text("x")
    env = {k: v for k, v in os.environ.items() if k not in ("MIGRATRACK_URL", "MIGRATRACK_TOKEN", "REDIS_URL")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", MIGRATRACK_STORAGE_URL=f"sqlite:///{tmp_path}/shell.db",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p))
    return env


def test_a_shell_script_migration_using_only_the_cli(shell: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.run(["bash", "-e", "-c", SCRIPT], cwd=tmp_path, env=shell, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "requires approval before it starts; approve it first: migratrack approve nightly switch" \
        in proc.stderr
    assert "phase switch already finished; not run again" in proc.stderr
    data = json.loads((tmp_path / "status.json").read_text())
    assert data["overview"]["status"] == "completed"
    phases = {p["id"]: p for p in data["phases"]}
    assert phases["copy"]["done"] == 2 and phases["switch"]["approved_by"] == "alice"
    assert [a["message"] for a in data["recent_alerts"] if a["source"] == "user"] == ["copied 2 files"]


def test_shell_completion_is_installable_and_completes_commands() -> None:
    runner = CliRunner()
    assert "--install-completion" in runner.invoke(app, ["--help"], prog_name="migratrack").output
    # what --show-completion/--install-completion write for bash (asked of Typer directly: whether
    # those options take the shell as a value depends on whether Typer detected the parent shell)
    script = get_completion_script(prog_name="migratrack", complete_var="_MIGRATRACK_COMPLETE", shell="bash")
    assert "complete -o default -F _migratrack_completion migratrack" in script
    words = runner.invoke(app, [], prog_name="migratrack", env={
        "_MIGRATRACK_COMPLETE": "complete_bash", "COMP_WORDS": "migratrack sta", "COMP_CWORD": "1"}).output.split()
    assert sorted(words) == ["start", "status"]


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the terminal test (apt-get install -y tmux)")
    base = ["tmux", "-S", str(tmp_path / "tmux.sock")]  # a server of our own, stopped at the end
    yield base
    subprocess.run([*base, "kill-server"], capture_output=True, check=False)


def screen(tmux: list[str]) -> str:
    return subprocess.run([*tmux, "capture-pane", "-p", "-t", "watch"], capture_output=True, text=True,
                          check=True).stdout


def wait_screen(tmux: list[str], text: str, timeout: float = 30) -> str:
    end = time.monotonic() + timeout
    while True:
        shown = screen(tmux)
        if text in shown:
            return shown
        assert time.monotonic() < end, f"{text!r} never appeared:\n{shown}"
        time.sleep(0.1)


def test_watch_in_a_real_terminal_follows_a_worker(tmux: list[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/watch.db"
    svc = MigrationService(url)
    svc.initialize("live", [{"id": "copy", "estimated_duration": 2},
                            {"id": "switch", "dependencies": ["copy"], "requires_approval": True}], actor="t")
    env = " ".join(f"{k}={v}" for k, v in {"PYTHONPATH": str(ROOT / "src"), "TERM": "xterm-256color"}.items())
    command = f"env {env} {sys.executable} -m migratrack.cli watch live --storage {url} --interval 0.2; " \
              "echo watch-ended-$?; sleep 30"
    subprocess.run([*tmux, "new-session", "-d", "-s", "watch", "-x", "120", "-y", "40", command], check=True)
    shown = wait_screen(tmux, "migration  live (live)")
    assert "ready" in shown  # copy can start; switch is blocked behind it
    assert "blocked" in shown
    svc.execute("live", StartPhase("copy"), actor="worker")
    svc.update_phase_progress("live", "copy", done=40, total=100, actor="worker")
    shown = wait_screen(tmux, "40/100")
    assert " 40.0%" in shown and "running" in shown
    svc.execute("live", CompletePhase("copy"), actor="worker")
    shown = wait_screen(tmux, "waiting for approval")
    assert "waits for approval of switch" in shown
    assert "migratrack approve live switch" in shown
    svc.execute("live", ApprovePhase("switch", "alice"), actor="t")
    svc.execute("live", StartPhase("switch"), actor="worker")
    svc.execute("live", CompletePhase("switch"), actor="worker")
    shown = wait_screen(tmux, "watch-ended-0")  # it leaves once the migration completed
    assert "finished" in shown
