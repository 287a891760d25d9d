"""Stall detection with MIGRATRACK_STALL_AFTER=2s: no progress, no heartbeat, paused, resolved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from migratrack import MigrationProgressTracker
from migratrack.alerts.config import load_config
from migratrack.alerts.dispatcher import Dispatcher
from migratrack.core.states import Condition
from migratrack.service import MigrationService
from migratrack.settings import Settings
from migratrack.storage import open_storage

from .helpers import run_until
from .receiver import Receiver


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, receiver: Receiver, tmp_path: Path) -> dict[str, str]:
    values = {"MIGRATRACK_STALL_AFTER": "2s", "MIGRATRACK_WEBHOOK_URL": receiver.url + "/hook",
              "MIGRATRACK_DISPATCH": "off", "MIGRATRACK_STORAGE_URL": f"sqlite:///{tmp_path}/s.db"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def dispatcher(url: str) -> Dispatcher:
    config = load_config(Settings.from_env()).model_copy(update={"group_wait": timedelta(0)})
    return Dispatcher(open_storage(url), config)


def condition(d: Dispatcher, mid: str, phase: str) -> Condition:
    return next(p.condition for p in MigrationService(d.storage).dashboard(mid).phases if p.id == phase)


def stall_alerts(d: Dispatcher, mid: str) -> list[str]:
    return [a.message for a in d.storage.alerts(mid) if a.source == "rule:stall"]


def test_alive_but_stuck_is_no_progress_and_progress_back_resolves(env: dict[str, str], receiver: Receiver) -> None:
    url = env["MIGRATRACK_STORAGE_URL"]
    with MigrationProgressTracker("stuck", storage=url) as t:
        t.initialize_migration([{"id": "copy"}, {"id": "verify", "dependencies": ["copy"]}])
        t.start_phase("copy")
        t.update_phase_progress("copy", 10)
        d = dispatcher(url)
        # the worker is alive (its tracker heartbeats from its background loop) but reports nothing
        run_until(d, lambda: bool(stall_alerts(d, "stuck")), timeout=8)
        (message,) = stall_alerts(d, "stuck")
        assert "no progress" in message and "'copy'" in message
        assert condition(d, "stuck", "copy") is Condition.STALLED
        run_until(d, lambda: len(receiver.accepted) >= 1, timeout=8)
        fired = receiver.accepted[0].json
        assert fired["kind"] == "firing" and fired["phase"] == "copy" and fired["level"] == "error"
        t.update_phase_progress("copy", 50)
        t.flush()
        run_until(d, lambda: len(receiver.accepted) >= 2, timeout=8)
        resolved = receiver.accepted[1].json
        assert resolved["kind"] == "resolved" and resolved["fingerprint"] == fired["fingerprint"]
        assert len(stall_alerts(d, "stuck")) == 1  # no new alert while it moves
        assert condition(d, "stuck", "copy") is Condition.RUNNING
        assert [e.type for e in d.storage.events("stuck") if "stalled" in e.type] == ["phase.stalled",
                                                                                         "phase.unstalled"]
        d.storage.close()


WORKER = textwrap.dedent("""
    import sys, time
    from migratrack import MigrationProgressTracker
    t = MigrationProgressTracker("dead", storage=sys.argv[1])
    t.initialize_migration([{"id": "copy"}])
    t.start_phase("copy")
    t.update_phase_progress("copy", 5)
    t.flush()
    print("ready", flush=True)
    time.sleep(60)
""")


def test_a_killed_worker_is_no_heartbeat(env: dict[str, str], receiver: Receiver) -> None:
    url = env["MIGRATRACK_STORAGE_URL"]
    src = str(Path(__file__).resolve().parents[2] / "src")
    proc = subprocess.Popen([sys.executable, "-c", WORKER, url], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": src})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        d = dispatcher(url)
        d.tick()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        run_until(d, lambda: bool(stall_alerts(d, "dead")), timeout=8)
        (message,) = stall_alerts(d, "dead")
        assert "no heartbeat" in message
        d.storage.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_paused_is_never_a_stall(env: dict[str, str], receiver: Receiver) -> None:
    url = env["MIGRATRACK_STORAGE_URL"]
    with MigrationProgressTracker("paused", storage=url, block_on_pause=False) as t:
        t.initialize_migration([{"id": "copy"}])
        t.start_phase("copy")
        t.pause("maintenance window")
        d = dispatcher(url)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            d.tick()
            time.sleep(0.1)
        assert stall_alerts(d, "paused") == []
        d.storage.close()
