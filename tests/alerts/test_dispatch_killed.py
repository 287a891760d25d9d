"""`migratrack dispatch` killed (SIGKILL) mid-delivery and started again: every pending alert
arrives, and each once (the one in flight at the kill may be sent again, under the same
idempotency key, which the receiver recognises)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from migratrack.service import MigrationService

from .receiver import Receiver

SRC = str(Path(__file__).resolve().parents[2] / "src")


def start(url: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "migratrack.cli", "dispatch", "--storage", url, "--config", str(config)],
            env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.DEVNULL, stderr=err)


def test_a_killed_dispatcher_leaves_nothing_lost_and_nothing_doubled(receiver: Receiver, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/k.db"
    config = tmp_path / "alerts.yaml"
    config.write_text(f"""
channels:
  hook:
    type: webhook
    url: {receiver.url}/hook
    min_level: info
    timeout: 1
group_wait: 0s
group_interval: 0s
tick: 0.05s
lease_ttl: 1s
retry_first: 0.05s
""")
    svc = MigrationService(url)
    for i in range(6):
        svc.initialize(f"m{i}", [{"id": "copy"}], actor="t")
        svc.create_alert(f"m{i}", "error", f"alert {i}", actor="t")
    receiver.delay = 0.15  # a slow receiver: the kill lands while a message is in flight
    log = tmp_path / "dispatch.log"
    first = start(url, config, log)
    try:
        receiver.wait_for(2, timeout=20)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    got_before = len(receiver.accepted)
    assert got_before < 6
    second = start(url, config, log)
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end and len({r.headers["idempotency-key"] for r in receiver.accepted}) < 6:
            time.sleep(0.05)
        time.sleep(0.5)  # a moment more: nothing further may come
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)
    keys = [r.headers["idempotency-key"] for r in receiver.accepted]
    messages = sorted({r.json["alerts"][0]["message"] for r in receiver.accepted})
    assert messages == sorted(f"alert {i}" for i in range(6)), log.read_text()
    assert len(set(keys)) == 6  # one message per alert
    assert len(keys) - len(set(keys)) <= 1  # at most the one in flight, sent again under its key
    assert second.returncode == 0
    svc.storage.close()
