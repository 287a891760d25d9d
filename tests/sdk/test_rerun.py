"""Re-running a migration script resumes it: finished phases are left as they are (audited),
failed ones are retried; the README's example runs twice, from the repository root too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from migratrack import MigrationProgressTracker
from migratrack.service import MigrationService

from .conftest import TrackerFactory

ROOT = Path(__file__).resolve().parents[2]
PLAN = [{"id": "a"}, {"id": "b", "dependencies": ["a"]}]


def test_phase_context_on_a_completed_phase_leaves_it_and_records_the_rerun(
    make_tracker: TrackerFactory, viewer: MigrationService
) -> None:
    t = make_tracker()
    t.initialize_migration(PLAN, name="rerun")
    with t.phase("a"):
        t.update_phase_progress("a", 40)
    ran = []
    with t.phase("a"):  # the script run again
        ran.append(True)
    t.flush()
    phase = viewer.state(t.migration_id).phases["a"]
    assert phase.status.value == "completed" and phase.attempts == 1
    assert ran == [True]  # the block runs; nothing is started or completed again
    assert [e.payload for e in viewer.events(t.migration_id) if e.type == "phase.rerun_skipped"] == \
        [{"phase": "a", "status": "completed"}]


def test_track_on_a_completed_phase_yields_nothing_and_a_failed_phase_is_retried(
    make_tracker: TrackerFactory, viewer: MigrationService
) -> None:
    t = make_tracker()
    t.initialize_migration(PLAN, name="rerun")
    assert list(t.track(range(10), phase="a")) == list(range(10))
    assert list(t.track(range(10), phase="a")) == []
    with pytest.raises(RuntimeError), t.phase("b"):
        raise RuntimeError("disk full")
    assert viewer.state(t.migration_id).phases["b"].status.value == "failed"
    with t.phase("b"):  # a re-run retries it
        pass
    b = viewer.state(t.migration_id).phases["b"]
    assert (b.status.value, b.attempts) == ("completed", 2)
    assert viewer.state(t.migration_id).phases["a"].done == 10  # not counted twice


def test_a_skipped_phase_is_neither_completed_nor_failed_on_a_rerun(
    make_tracker: TrackerFactory, viewer: MigrationService
) -> None:
    t: MigrationProgressTracker = make_tracker()
    t.initialize_migration(PLAN, name="rerun")
    t.skip_phase("a", "not needed")
    with pytest.raises(ValueError), t.phase("a"):
        raise ValueError("boom")
    assert viewer.state(t.migration_id).phases["a"].status.value == "skipped"


@pytest.mark.parametrize("cwd", ["root", "examples"])
def test_the_readme_example_runs_twice(cwd: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MIGRATRACK_URL", "REDIS_URL")}
    env["MIGRATRACK_STORAGE_URL"] = url = f"sqlite:///{tmp_path}/example.db"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    where = ROOT if cwd == "root" else ROOT / "examples"
    script = str(ROOT / "examples" / "copy_orders.py") if cwd == "root" else "copy_orders.py"
    for _ in range(2):
        proc = subprocess.run([sys.executable, script], cwd=where, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "96.4% done, waiting for approval of switch-over" in proc.stdout
    svc = MigrationService(url)
    state = svc.state("orders-2026")
    assert state.phases["copy-orders"].done == 50_000 and state.metrics.successful_operations == 50_000
    skipped = [e.payload["phase"] for e in svc.events("orders-2026") if e.type == "phase.rerun_skipped"]
    assert skipped == ["schema", "copy-orders", "copy-customers"]
