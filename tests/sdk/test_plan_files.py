"""Plans from YAML and JSON files, and where the tracker keeps its store by default."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from migratrack import InvalidPlan, MigrationProgressTracker, load_plan
from migratrack.service import MigrationService

YAML_PLAN = """\
name: AWS conversion 2024
metadata:
  error_rate_threshold: 5
phases:
  - id: infrastructure-setup
    name: Infrastructure Setup
    estimatedDuration: 30
    subTasks: [vpc-creation, security-groups]
  - id: database-migration
    dependencies: [infrastructure-setup]
    estimated_duration: 120
    sub_tasks:
      - {id: users, estimated_duration: 10}
      - {id: orders, estimated_duration: 50}
  - id: cutover
    dependencies: [database-migration]
    requires_approval: true
"""


def test_a_yaml_plan_file(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(YAML_PLAN)
    t = MigrationProgressTracker("m", storage="memory://", actor="w")
    assert t.initialize_migration(path) is True
    d = t.get_dashboard()
    assert d.overview.name == "AWS conversion 2024"
    assert [p.id for p in d.phases] == ["infrastructure-setup", "database-migration", "cutover"]
    assert d.phases[0].estimated_seconds == 1800
    assert [s.id for s in d.phases[1].sub_tasks] == ["users", "orders"]
    assert d.phases[2].requires_approval
    # the plan's metadata reaches the rules: the error-rate threshold is 5% here
    t.record(succeeded=94, failed=6)
    t.flush()
    assert any(a.source == "rule:error-rate" for a in t.alerts())
    assert t.initialize_migration(str(path)) is False  # the same file again resumes
    t.close()


def test_a_json_plan_file_as_a_plain_list(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps([{"id": "a", "estimatedDuration": 1}, {"id": "b", "dependencies": ["a"]}]))
    plan = load_plan(path)
    assert plan.name is None and [p["id"] for p in plan.phases] == ["a", "b"]
    t = MigrationProgressTracker("m", storage="memory://", actor="w")
    t.initialize_migration(path)
    assert t.get_overview().total_phases == 2
    t.close()


@pytest.mark.parametrize("name,text,message", [
    ("bad.yaml", "phases: [id: a\n  - x", "not valid YAML"),
    ("bad.json", '[{"id": "a",]', "not valid JSON"),
    ("scalar.yaml", "just a string", "a list of phases or a mapping"),
    ("nophases.yaml", "name: x\n", "'phases' must be a list"),
    ("typo.yaml", "name: x\nphase: []\n", "unknown top-level key"),
    ("cycle.yaml", "- {id: a, dependencies: [b]}\n- {id: b, dependencies: [a]}\n", "cycle: "),
    ("unknown.json", '[{"id": "a", "dependencies": ["zzz"]}]', "unknown phase 'zzz'"),
    ("dup.yaml", "- id: a\n- id: a\n", "duplicate phase id"),
    ("negative.yaml", "- {id: a, estimatedDuration: -5}\n", "non-negative"),
])
def test_bad_plan_files_give_a_clear_invalid_plan(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    t = MigrationProgressTracker("m", storage="memory://", actor="w")
    with pytest.raises(InvalidPlan, match=message):
        t.initialize_migration(path)
    assert not t.backend.storage.exists("m")  # type: ignore[attr-defined]
    t.close()


def test_every_mistake_of_a_plan_file_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "name: three mistakes\n"
        "phases:\n"
        "  - id: schema\n"
        "    estimatedDuration: -5\n"
        "  - id: copy\n"
        "    dependencies: [schema, shcema]\n"
        "    sub_tasks:\n"
        "      - orders\n"
        "      - {id: users, estimate: 3}\n"
    )
    t = MigrationProgressTracker("m", storage="memory://", actor="w")
    with pytest.raises(InvalidPlan) as info:
        t.initialize_migration(path)
    assert not t.backend.storage.exists("m")  # type: ignore[attr-defined]
    t.close()
    assert str(info.value).splitlines() == [
        f"{path}: 3 problems",
        f"{path}:4: phases[0] ('schema').estimatedDuration: must be a finite, non-negative duration in minutes, "
        "got -5",
        f"{path}:6: phases[1] ('copy').dependencies[1]: depends on unknown phase 'shcema'; known phases: schema, copy",
        f"{path}:9: phases[1] ('copy').sub_tasks[1] ('users').estimate: unknown field 'estimate'; "
        "did you mean 'estimated_duration'? allowed: id, name, estimated_duration, metadata",
    ]


def test_a_json_plan_file_names_the_phase_of_each_problem(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"phases": [{"id": "a"}, {"id": "b", "dependencies": ["a", "b"]},
                                           {"id": "c d", "subTasks": ["x", "x"]}]}))
    with pytest.raises(InvalidPlan) as info:
        load_plan(path)
    assert str(info.value).splitlines()[1:] == [
        f"{path}: phases[1] ('b').dependencies[1]: phase 'b' depends on itself",
        f"{path}: phases[2] ('c d').id: 'c d' is not a valid id: use 1 to 200 characters without '/', "
        "whitespace, control or text-direction characters",
        f"{path}: phases[2] ('c d').subTasks[1] ('x').id: duplicate sub-task id 'x'",
    ]


def test_a_missing_plan_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidPlan, match="cannot read plan file"):
        load_plan(tmp_path / "nope.yaml")


def test_default_store_is_migratrack_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("MIGRATRACK_STORAGE_URL", "REDIS_URL", "MIGRATRACK_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    t = MigrationProgressTracker("default-store", actor="w")
    t.initialize_migration([{"id": "a"}])
    t.start_phase("a")
    t.close()
    db = tmp_path / "migratrack.db"
    assert db.exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id FROM mt_migrations").fetchall() == [("default-store",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    again = MigrationProgressTracker("default-store", actor="w")
    assert again.get_overview().status.value == "running"
    again.close()


def test_storage_url_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIGRATRACK_URL", raising=False)
    monkeypatch.setenv("MIGRATRACK_STORAGE_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.chdir(tmp_path)
    t = MigrationProgressTracker("env", actor="w")
    t.initialize_migration([{"id": "a"}])
    t.close()
    assert (tmp_path / "env.db").exists()
    assert not (tmp_path / "migratrack.db").exists()
    assert MigrationService(f"sqlite:///{tmp_path}/env.db").storage.exists("env")


def test_memory_url_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MIGRATRACK_URL", raising=False)
    monkeypatch.setenv("MIGRATRACK_STORAGE_URL", "memory://")
    monkeypatch.chdir(tmp_path)
    t = MigrationProgressTracker("env", actor="w")
    t.initialize_migration([{"id": "a"}])
    t.close()
    assert list(tmp_path.iterdir()) == []


def test_an_explicit_storage_argument_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MIGRATRACK_STORAGE_URL", f"sqlite:///{tmp_path}/env.db")
    t = MigrationProgressTracker("x", storage="memory://", actor="w")
    t.initialize_migration([{"id": "a"}])
    t.close()
    assert not (tmp_path / "env.db").exists()


@pytest.mark.parametrize("value", ["fast", "-5"])
def test_a_bad_coalesce_setting_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from migratrack import ConfigurationError

    monkeypatch.setenv("MIGRATRACK_COALESCE_MS", value)
    with pytest.raises(ConfigurationError, match="MIGRATRACK_COALESCE_MS"):
        MigrationProgressTracker("x", storage="memory://")


@pytest.mark.parametrize("url,message", [
    ("nosuch://x", "unknown storage scheme 'nosuch'"),
    ("migratrack.db", "must be a URL"),
    ("sqlite:///no/such/dir/x.db", "does not exist"),
])
def test_a_bad_storage_url_says_what_to_fix(url: str, message: str) -> None:
    from migratrack import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        MigrationProgressTracker("x", storage=url)
