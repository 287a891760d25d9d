"""The resource sampler: a busy worker reports non-zero CPU and memory through its tracker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from migratrack import MigrationProgressTracker
from migratrack.errors import InvalidInput
from migratrack.service import MigrationService
from migratrack.storage import open_storage


def test_a_busy_worker_reports_cpu_and_memory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    store = open_storage(url)
    svc = MigrationService(store)
    svc.initialize("m", [{"id": "copy"}], actor="t")
    with MigrationProgressTracker("m", storage=url, sample_resources=0.2, actor="worker-1.example.com:42") as t:
        t.start_phase("copy")
        payload = bytearray(32 * 1024 * 1024)  # resident memory to see
        deadline = time.monotonic() + 1.5
        n = 0
        while time.monotonic() < deadline:  # busy: CPU to see
            n += sum(range(1000))
        (tmp_path / "blob").write_bytes(payload)
        t.flush()
    r = svc.dashboard("m").metrics.resource_utilization
    assert r["cpu"] > 0 and r["memory"] > 0, r
    assert r["workers"] == 1
    assert set(store.load("m").metrics.gauges["worker_resources"]) == {"worker-1_example_com:42"}
    store.close()


def test_a_bad_interval_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="positive number of seconds"):
        MigrationProgressTracker("m", storage=f"sqlite:///{tmp_path}/r.db", sample_resources=-1)
