"""Idempotency-Keys live in the store: a retried write is applied once across a server restart
(also a `kill -9`) and across several servers on one store; a key reused for another request
gets 422 naming it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis

from migratrack.core.commands import StartPhase
from migratrack.service import MigrationService
from migratrack.storage import Storage, open_storage
from migratrack.web import create_app
from migratrack.web.auth import TokenManager

from .live import SRC, LiveServer, free_port

REDIS_URL = os.environ.get("MIGRATRACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
POSTGRES_URL = os.environ.get("MIGRATRACK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

BATCH = {"updates": [{"phase": "copy", "add": 100}], "increments": {"successful_operations": 100}}
K1 = {"Idempotency-Key": "k1"}
REUSED = "Idempotency-Key 'k1' was used for a different request; use a new key for a new request"


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store that several servers (and restarts) can share."""
    tag = f"mtidem_{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/idem.db"
    elif request.param == "redis":
        yield f"{REDIS_URL}?prefix={tag}"
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(f"{tag}:*"))
        if keys:
            r.delete(*keys)
        r.close()
    else:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{tag}"')
        parts = urlsplit(POSTGRES_URL)
        yield urlunsplit((parts.scheme, parts.netloc, "/" + tag, parts.query, ""))
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{tag}" WITH (FORCE)')


def prepare(url: str) -> dict[str, str]:
    """A migration m1 with its phase copy started; a token per role name -> auth header."""
    store = open_storage(url)
    manager = TokenManager(store)
    tokens = {name: manager.create(name, "admin")[0] for name in ("ci", "other")}
    svc = MigrationService(store)
    svc.initialize("m1", [{"id": "copy"}, {"id": "verify", "dependencies": ["copy"]}], actor="test")
    svc.execute("m1", StartPhase("copy"), actor="test")
    store.close()
    return {name: f"Bearer {token}" for name, token in tokens.items()}


class Server:
    """create_app on its own store instance (as a separate server process would have), live."""

    def __init__(self, url: str) -> None:
        self.store: Storage = open_storage(url)
        self.live = LiveServer(create_app(self.store)).start()

    def client(self, auth: str) -> httpx.Client:
        return httpx.Client(base_url=self.live.url, headers={"Authorization": auth}, timeout=30)

    def stop(self) -> None:
        self.live.stop()
        self.store.close()


def copy_and_counters(url: str) -> tuple[int, int]:
    store = open_storage(url)
    state = store.load("m1")
    store.close()
    return state.phases["copy"].done, state.metrics.successful_operations


def test_a_batch_retried_with_its_key_counts_once_across_a_restart(store_url: str) -> None:
    auth = prepare(store_url)
    first = Server(store_url)
    with first.client(auth["ci"]) as c:
        assert c.post("/api/migrations/m1/batch", json=BATCH, headers=K1).json() == {"control": "running"}
        assert c.post("/api/migrations/m1/batch", json=BATCH, headers=K1).json() == {"control": "running"}
    first.stop()
    assert copy_and_counters(store_url) == (100, 100)

    second = Server(store_url)  # a new server process on the same store: what a restart is
    try:
        with second.client(auth["ci"]) as c:
            r = c.post("/api/migrations/m1/batch", json=BATCH, headers=K1)
            assert r.status_code == 200 and r.json() == {"control": "running"}
            assert copy_and_counters(store_url) == (100, 100)

            other_body = {"updates": [{"phase": "copy", "add": 5}]}
            r = c.post("/api/migrations/m1/batch", json=other_body, headers=K1)
            assert r.status_code == 422
            assert r.json()["detail"] == REUSED and r.json()["error"] == "IdempotencyKeyReused"
            # the same key on another route is another request too
            r = c.patch("/api/migrations/m1/metrics", json={"increment": {"failed_operations": 1}}, headers=K1)
            assert r.status_code == 422 and r.json()["detail"] == REUSED

            # validation first: an invalid body gets its own 422, not the key's
            r = c.post("/api/migrations/m1/batch", json={"updates": [{"phase": "copy", "add": -1}]}, headers=K1)
            assert r.status_code == 422 and r.json()["error"] == "ValidationError"
            assert r.json()["fields"][0]["field"].startswith("body.updates.0.add")
            assert copy_and_counters(store_url) == (100, 100)

            assert c.post("/api/migrations/m1/batch", json=other_body, headers={"Idempotency-Key": "k2"}) \
                .status_code == 200
        with second.client(auth["other"]) as c:  # keys are per token: another token's k1 is its own
            assert c.post("/api/migrations/m1/batch", json=other_body, headers=K1).status_code == 200
    finally:
        second.stop()
    assert copy_and_counters(store_url) == (110, 100)


def test_two_servers_on_one_store_share_the_keys(store_url: str) -> None:
    auth = prepare(store_url)
    a, b = Server(store_url), Server(store_url)
    try:
        with a.client(auth["ci"]) as ca, b.client(auth["ci"]) as cb:
            assert ca.post("/api/migrations/m1/batch", json=BATCH, headers=K1).status_code == 200
            assert cb.post("/api/migrations/m1/batch", json=BATCH, headers=K1).status_code == 200  # the retry
            r = cb.post("/api/migrations/m1/batch", json={"updates": [{"phase": "copy", "add": 1}]}, headers=K1)
            assert r.status_code == 422 and r.json()["detail"] == REUSED
            assert copy_and_counters(store_url) == (100, 100)

            # a retry racing its first attempt on the other server: applied once
            statuses: list[int] = []

            def send(client: httpx.Client) -> None:
                statuses.append(client.post("/api/migrations/m1/batch", json=BATCH,
                                            headers={"Idempotency-Key": "race"}).status_code)

            for _ in range(3):
                threads = [threading.Thread(target=send, args=(c,)) for c in (ca, cb, ca, cb)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
            assert statuses == [200] * 12
            assert copy_and_counters(store_url) == (200, 200)

            # a single progress report and a metrics update, each sent to both servers
            for c in (ca, cb):
                r = c.post("/api/migrations/m1/phases/copy/progress", json={"add": 5},
                           headers={"Idempotency-Key": "p1"})
                assert r.status_code == 200 and r.json() == {"control": "running"}
                r = c.post("/api/migrations/m1/metrics", json={"increment": {"failed_operations": 2}},
                           headers={"Idempotency-Key": "m1"})
                assert r.status_code == 200
            metrics = cb.get("/api/migrations/m1/dashboard").json()["metrics"]
            assert copy_and_counters(store_url) == (205, 200) and metrics["failed_operations"] == 2

            # alerts and commands: a retry on the other server answers as the first did
            alert = ca.post("/api/migrations/m1/alerts", json={"level": "warning", "message": "lag"},
                            headers={"Idempotency-Key": "a1"})
            again = cb.post("/api/migrations/m1/alerts", json={"level": "warning", "message": "lag"},
                            headers={"Idempotency-Key": "a1"})
            assert alert.status_code == again.status_code == 201 and again.json() == alert.json()
            assert len(cb.get("/api/migrations/m1/alerts").json()) == 1

            failed = ca.post("/api/migrations/m1/phases/copy/fail", json={"error": "disk full"},
                             headers={"Idempotency-Key": "f1"})
            assert failed.status_code == 200
            assert cb.post("/api/migrations/m1/phases/copy/retry").status_code == 200
            late = cb.post("/api/migrations/m1/phases/copy/fail", json={"error": "disk full"},
                           headers={"Idempotency-Key": "f1"})  # the first attempt's reply was lost
            assert late.status_code == 200 and late.json() == failed.json()
            phase = cb.get("/api/migrations/m1/dashboard").json()["phases"][0]
            assert phase["status"] == "in_progress"
            r = cb.post("/api/migrations/m1/control", json={"action": "pause"}, headers={"Idempotency-Key": "f1"})
            assert r.status_code == 422 and "'f1'" in r.json()["detail"]
    finally:
        a.stop()
        b.stop()


def _serve(url: str, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "migratrack.cli", "serve", "--port", str(port), "--storage", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": SRC})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("migratrack serve did not start")


def _post(port: int, auth: str, body: dict[str, Any], key: str) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{port}/api/migrations/m1/batch", json=body,
                      headers={"Authorization": auth, "Idempotency-Key": key}, timeout=30)


def test_a_key_survives_kill_9_of_the_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/killed.db"
    auth = prepare(url)["ci"]
    port = free_port()
    proc = _serve(url, port)
    try:
        assert _post(port, auth, BATCH, "k1").status_code == 200
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    proc = _serve(url, port)
    try:
        assert _post(port, auth, BATCH, "k1").status_code == 200
        assert _post(port, auth, {"updates": [{"phase": "copy", "add": 1}]}, "k1").status_code == 422
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert copy_and_counters(url) == (100, 100)
