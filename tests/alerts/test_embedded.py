"""In embedded use (a store URL) with a channel configured and no daemon, the tracker's own
thread dispatches; with several trackers on one store, one of them holds the lease."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from migratrack import MigrationProgressTracker
from migratrack.alerts.outbox import Lease
from migratrack.storage import open_storage

from .receiver import Receiver


def test_a_tracker_delivers_its_own_alerts(tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "alerts.yaml"
    config.write_text(f"channels:\n  hook: {{type: webhook, url: '{receiver.url}/hook'}}\n"
                      "group_wait: 0s\ntick: 0.05s\n")
    monkeypatch.setenv("MIGRATRACK_ALERTS_CONFIG", str(config))
    url = f"sqlite:///{tmp_path}/e.db"
    with MigrationProgressTracker("m", storage=url) as a, MigrationProgressTracker("m", storage=url) as b:
        a.initialize_migration([{"id": "copy"}])
        a.start_phase("copy")
        b.create_alert("error", "bad rows in batch 7", "copy")
        receiver.wait_for(1, timeout=10)
        store = open_storage(url)
        assert Lease(store).holder(datetime.now(UTC)) is not None
        store.close()
    time.sleep(0.3)
    assert len(receiver.accepted) == 1
    assert receiver.accepted[0].json["alerts"][0]["message"] == "bad rows in batch 7"


def test_no_channel_no_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("MIGRATRACK_ALERTS_CONFIG", "SLACK_WEBHOOK_URL", "MIGRATRACK_WEBHOOK_URL", "MIGRATRACK_DISPATCH"):
        monkeypatch.delenv(k, raising=False)
    with MigrationProgressTracker("m", storage=f"sqlite:///{tmp_path}/n.db") as t:
        t.initialize_migration([{"id": "copy"}])
        assert "migratrack-alerts" not in {th.name for th in threading.enumerate()}
