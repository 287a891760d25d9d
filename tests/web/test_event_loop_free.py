"""The server never waits for its store on the event loop: while a request is stuck on the store
(SQLite's write lock held by another process; Redis paused with CLIENT PAUSE), a real `serve`
process still answers /healthz at once, and the stuck request completes afterwards.

Latency is measured here only as far as the behaviour needs: a server that blocks its loop
answers /healthz after the whole stall (seconds); one that does not, within 100 ms."""

from __future__ import annotations

import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import redis
from tests.storage.servers import RedisServer

from migratrack.core.commands import StartPhase
from migratrack.service import MigrationService
from migratrack.storage import open_storage

from .live import SRC, serve_process

STALL = 3.0  # seconds the store is held up


def make_token(url: str) -> str:
    out = subprocess.run([sys.executable, "-m", "migratrack.cli", "token", "create", "--role", "admin",
                          "--name", "probe", "--storage", url], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": SRC})
    return out.stdout.strip()


def seed(url: str) -> None:
    with open_storage(url) as store:
        svc = MigrationService(store)
        svc.initialize("m", [{"id": "a"}], actor="test")
        svc.execute("m", StartPhase("a"), actor="test")


def healthz_while(base: str, stuck: threading.Thread) -> list[float]:
    """/healthz round trips (seconds) while ``stuck`` runs; at least five."""
    times: list[float] = []
    with httpx.Client(base_url=base, timeout=10) as client:
        while stuck.is_alive() or len(times) < 5:
            t0 = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            times.append(time.perf_counter() - t0)
            time.sleep(0.05)
    return times


def request_in_thread(base: str, token: str, path: str, body: object, out: dict[str, object]) -> threading.Thread:
    def run() -> None:
        t0 = time.perf_counter()
        r = httpx.post(f"{base}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        out["status"], out["seconds"] = r.status_code, time.perf_counter() - t0

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_healthz_answers_while_another_process_holds_the_sqlite_write_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    seed(url)
    token = make_token(url)
    with serve_process("--storage", url) as (base, _):
        # the token is looked up once, before the lock is taken
        r = httpx.get(f"{base}/api/migrations/m/control", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        blocker = sqlite3.connect(tmp_path / "m.db", isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        out: dict[str, object] = {}
        try:
            writer = request_in_thread(base, token, "/api/migrations/m/phases/a/progress", {"progress": 50}, out)
            time.sleep(0.3)  # the write is now waiting for the lock
            release = threading.Timer(STALL, blocker.execute, ["COMMIT"])
            release.start()
            times = healthz_while(base, writer)
            release.join()
        finally:
            blocker.close()
        writer.join()
    assert out["status"] == 200 and float(out["seconds"]) >= STALL * 0.8  # type: ignore[arg-type]
    assert statistics.median(times) < 0.1, times
    assert max(times) < STALL / 3, times  # a blocked loop would make one of them wait for the whole stall
    with open_storage(url) as store:
        assert MigrationService(store).state("m").phase("a").progress == 50


def test_healthz_answers_while_redis_is_paused(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        seed(server.url)
        token = make_token(server.url)
        with serve_process("--storage", server.url) as (base, _):
            out: dict[str, object] = {}
            client = redis.Redis(host="127.0.0.1", port=server.port)
            client.execute_command("CLIENT", "PAUSE", int(STALL * 1000), "ALL")
            # a token the server has not seen yet: its lookup waits for Redis
            writer = request_in_thread(base, token, "/api/migrations/m/phases/a/progress", {"progress": 50}, out)
            times = healthz_while(base, writer)
            writer.join()
            client.close()
        assert out["status"] == 200 and float(out["seconds"]) >= STALL * 0.5  # type: ignore[arg-type]
        assert statistics.median(times) < 0.1, times
        assert max(times) < STALL / 3, times
        with open_storage(server.url) as store:
            assert MigrationService(store).state("m").phase("a").progress == 50
    finally:
        server.stop()
