"""Alert dispatch: what it costs the migration, and how it keeps up, in the same run.

    python bench/bench_alerts.py [--quick]

Measures:
* a tracker's hot loop (``add_progress`` on SQLite, default coalescing) with and without the
  embedded dispatcher thread running beside it (a channel configured), calls per second, median
  of rounds taken in turns: the dispatcher's cost to the migration;
* one dispatcher round (``tick``) over N idle migrations on each store: what watching costs;
* a burst of 1,000 alerts to a local receiver: messages sent and seconds until all are delivered.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from migratrack import MigrationProgressTracker
from migratrack.alerts.config import AlertsConfig
from migratrack.alerts.dispatcher import Dispatcher
from migratrack.core.commands import StartPhase
from migratrack.service import MigrationService
from migratrack.storage import open_storage

REDIS = "redis://127.0.0.1:6379/14?prefix=mtbenchalerts"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def receiver() -> tuple[ThreadingHTTPServer, list[int]]:
    got: list[int] = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.append(1)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, got


def hot_loop(url: str, seconds: float, with_dispatcher: bool, hook: str) -> float:
    os.environ["MIGRATRACK_DISPATCH"] = "on" if with_dispatcher else "off"
    os.environ["MIGRATRACK_WEBHOOK_URL"] = hook
    with MigrationProgressTracker("hot", storage=url) as t:
        t.initialize_migration([{"id": "copy"}], replace=True)
        t.start_phase("copy")
        n = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for _ in range(1000):
                t.add_progress("copy", 1)
            n += 1000
        return n / seconds


def tick_cost(url: str, migrations: int, rounds: int) -> float:
    store = open_storage(url)
    svc = MigrationService(store)
    for i in range(migrations):
        svc.initialize(f"idle{i}", [{"id": "copy"}], actor="b", replace=True)
        svc.execute(f"idle{i}", StartPhase("copy"), actor="b")
    d = Dispatcher(store, AlertsConfig())
    d.tick()  # first sight of every migration
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        d.tick()
        times.append(time.perf_counter() - t0)
    d.release()
    for i in range(migrations):
        store.delete(f"idle{i}")
    store.close()
    return statistics.median(times)


def burst(hook: str, got: list[int]) -> tuple[int, float]:
    store = open_storage("memory://")
    svc = MigrationService(store)
    svc.initialize("burst", [{"id": "copy"}], actor="b")
    cfg = AlertsConfig.model_validate({"channels": {"hook": {"type": "webhook", "url": hook}},
                                       "group_wait": "0.5s", "group_interval": "1s"})
    d = Dispatcher(store, cfg)
    before = len(got)
    t0 = time.perf_counter()
    for k in range(10):
        svc.run("burst", "b", lambda r, k=k: [r.create_alert("warning", f"row {k}-{i}", "copy") for i in range(100)])
    while True:
        d.tick()
        if not d.outbox.due(d.now() + timedelta(days=1)) and d.outbox.recent():
            pending_groups = [g for g in store.kv_list("group") if g[1].value.get("ids")]
            if not pending_groups:
                break
        time.sleep(0.05)
    return len(got) - before, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seconds, rounds = (0.5, 3) if args.quick else (2.0, 5)
    server, got = receiver()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/hot.db"
        without, with_ = [], []
        for _ in range(rounds):
            without.append(hot_loop(url, seconds, False, hook))
            with_.append(hot_loop(url, seconds, True, hook))
        a, b = statistics.median(without), statistics.median(with_)
        print(f"tracker hot loop (add_progress, SQLite): {a:,.0f}/s without the dispatcher thread, "
              f"{b:,.0f}/s with it ({(a - b) / a * 100:+.1f}% cost)")
        for name, store_url in (("memory", "memory://"), ("sqlite", f"sqlite:///{tmp}/tick.db"),
                                ("redis", REDIS), ("postgresql", POSTGRES)):
            n = 20 if args.quick else 100
            print(f"dispatcher round over {n} idle migrations, {name}: "
                  f"{tick_cost(store_url, n, rounds) * 1000:.1f} ms (median)")
    messages, took = burst(hook, got)
    print(f"burst of 1,000 alerts: {messages} message(s), all delivered in {took:.2f} s")
    server.shutdown()


if __name__ == "__main__":
    main()
