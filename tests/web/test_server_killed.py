"""The remote SDK, coalescing off, against a real `migratrack serve` on a SQLite file that is
killed with -9 and restarted on the same port five times in a row while a worker reports: the
script never notices, and the store ends with every update once — progress, counters, alerts —
and an event log without gaps. A write the server committed before it died is sent again under
the same Idempotency-Key, which the store remembers across the restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from migratrack import MigrationProgressTracker
from migratrack.service import MigrationService
from migratrack.settings import Settings

from .live import SRC, free_port

MID = "killed"


#: a `migratrack serve` that imports everything first, then waits for a line on stdin before it
#: binds the port: a restart is then as quick as a real server's restart, not a Python start-up
WARM = """
import sys
import migratrack.cli.main, migratrack.web, uvicorn  # noqa: F401  (the slow part, done in advance)
sys.stdin.readline()
sys.argv = ["migratrack", "serve", "--port", sys.argv[1], "--storage", sys.argv[2], "--insecure-no-auth"]
migratrack.cli.main.main()
"""


def spare(url: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WARM, str(port), url], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": SRC})


def serve(proc: subprocess.Popen[bytes], port: int) -> subprocess.Popen[bytes]:
    """Let a spare server bind the port; return it once it answers."""
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("migratrack serve did not start")


@pytest.mark.slow
def test_a_worker_reporting_through_five_kill_9_restarts_ends_exact(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path}/k.db"
    port = free_port()
    spares = [spare(store_url, port) for _ in range(6)]  # they import while the first one starts
    proc = serve(spares.pop(), port)
    t = MigrationProgressTracker(MID, url=f"http://127.0.0.1:{port}", coalesce=0, actor="worker",
                                 settings=Settings(retry_deadline=60))
    t.initialize_migration([{"id": "copy"}])
    t.start_phase("copy")

    sent = {"add": 0, "ok": 0}
    alerts: list[str] = []
    raised: list[BaseException] = []
    stop = threading.Event()

    def worker() -> None:
        try:
            i = 0
            while not stop.is_set():
                t.add_progress("copy", 1)
                sent["add"] += 1
                t.record(succeeded=1)
                sent["ok"] += 1
                if i % 40 == 0:
                    alerts.append(f"alert {i}")
                    t.create_alert("warning", alerts[-1])
                i += 1
                time.sleep(0.002)
        except BaseException as exc:  # the script must never see the outages
            raised.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        for _ in range(5):
            time.sleep(0.4)  # requests in flight when the server dies
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            time.sleep(0.2)  # the worker reports into the outage
            proc = serve(spares.pop(), port)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(30)
    t.close()  # sends what the outages left buffered
    for p in (proc, *spares):
        p.kill()
        p.wait(10)
        if p.stdin is not None and not p.stdin.closed:
            p.stdin.close()

    assert not raised
    assert sent["add"] > 200 and len(alerts) > 5
    svc = MigrationService(store_url)
    state = svc.state(MID)
    assert state.phases["copy"].done == sent["add"]
    assert state.metrics.successful_operations == sent["ok"]
    stored = sorted(a.message for a in svc.alerts(MID, limit=1000) if a.source == "user")
    assert stored == sorted(alerts)  # each once
    events = svc.events(MID, limit=100_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    svc.storage.close()
