"""History for the next plan: `history`, `init --estimates-from`, and `check-plan` reporting
every problem of a plan at once (with lines) or its graph and critical path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from migratrack.cli.main import app
from migratrack.core.commands import CompletePhase, StartPhase
from migratrack.core.graph import find_cycles
from migratrack.service import MigrationService

FakeClock = Any  # the `clock` fixture of tests/conftest.py

BAD = """\
name: bad
phases:
  - id: a
    dependencies: [c]
  - id: b
    dependencies: [a, zz]
  - id: c
    dependencies: [b]
    estimated_duration: soon
  - id: d
    dependencies: [e]
  - id: e
    dependencies: [d]
  - id: a
"""
PLAN = """\
phases:
  - {id: schema, estimated_duration: 2}
  - {id: copy, dependencies: [schema], estimated_duration: 20}
  - {id: index, dependencies: [schema], estimated_duration: 5}
  - {id: switch, dependencies: [copy, index], estimated_duration: 1, requires_approval: true}
"""


def test_every_cycle_is_named() -> None:
    deps = {"a": ["c"], "b": ["a"], "c": ["b"], "d": ["e"], "e": ["d"], "f": ["f"], "g": []}
    assert find_cycles(deps) == [["a", "c", "b", "a"], ["d", "e", "d"]]
    assert find_cycles({"x": [], "y": ["x"]}) == []


def test_check_plan_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = CliRunner().invoke(app, ["check-plan", str(bad)])
    assert result.exit_code == 2
    out = result.output
    assert f"{bad}: 5 problems" in out
    assert f"{bad}:4: phases[0] ('a').dependencies: dependency cycle: a -> c -> b -> a" in out
    assert f"{bad}:11: phases[3] ('d').dependencies: dependency cycle: d -> e -> d" in out
    assert f"{bad}:6: phases[1] ('b').dependencies[1]: depends on unknown phase 'zz'" in out
    assert f"{bad}:9: phases[2] ('c').estimated_duration: must be minutes (a number)" in out
    assert f"{bad}:14: phases[5] ('a').id: duplicate phase id 'a'" in out


def test_check_plan_graph_prints_the_critical_path(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    result = CliRunner().invoke(app, ["check-plan", str(plan), "--graph"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{plan}: 4 phases, 0 sub-tasks, valid"
    assert lines[2].split() == ["*", "schema", "2", "min", "first"]
    assert lines[4].split()[:2] == ["index", "5"]  # not on the critical path: no mark
    assert lines[5].split()[:2] == ["*", "switch"] and "[needs approval]" in lines[5]
    assert lines[-1] == "critical path (23 min): schema -> copy -> switch"


@pytest.fixture
def past(tmp_path: Path, clock: FakeClock) -> tuple[str, Path]:
    url = f"sqlite:///{tmp_path}/h.db"
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    svc = MigrationService(url, clock)
    svc.initialize("rehearsal", [{"id": "schema", "estimated_duration": 2},
                                 {"id": "copy", "dependencies": ["schema"], "estimated_duration": 20},
                                 {"id": "index", "dependencies": ["schema"], "estimated_duration": 5},
                                 {"id": "switch", "dependencies": ["copy", "index"], "estimated_duration": 1,
                                  "requires_approval": True}], actor="t")
    for phase, minutes in (("schema", 3), ("copy", 40)):
        svc.execute("rehearsal", StartPhase(phase), actor="t")
        clock.advance(timedelta(minutes=minutes).total_seconds())
        svc.execute("rehearsal", CompletePhase(phase), actor="t")
    return url, plan


def test_history_lists_durations_against_estimates(past: tuple[str, Path]) -> None:
    url, _ = past
    result = CliRunner().invoke(app, ["history", "--storage", url])
    assert result.exit_code == 0, result.output
    assert result.output.split()[:2] == ["rehearsal", "running"]
    result = CliRunner().invoke(app, ["history", "rehearsal", "--storage", url])
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[3:]}
    assert rows["schema"][1:5] == ["completed", "2m00s", "3m00s", "1.50x"]
    assert rows["copy"][1:5] == ["completed", "20m00s", "40m00s", "2.00x"]
    assert rows["index"][3] == "-"


def test_init_takes_estimates_from_a_past_run(past: tuple[str, Path]) -> None:
    url, plan = past
    result = CliRunner().invoke(app, ["init", "real", str(plan), "--estimates-from", "rehearsal", "--storage", url])
    assert result.exit_code == 0, result.output
    assert "estimate from rehearsal: copy: 20 min -> 40.00 min" in result.output
    phases = MigrationService(url).state("real").phases
    assert phases["copy"].estimated_seconds == 2400 and phases["schema"].estimated_seconds == 180
    assert phases["index"].estimated_seconds == 300  # not run in the rehearsal: the plan's figure
    bad = CliRunner().invoke(app, ["init", "x", str(plan), "--estimates-from", "nope", "--storage", url])
    assert bad.exit_code == 2 and "does not exist" in bad.output
