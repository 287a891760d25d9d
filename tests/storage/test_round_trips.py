"""The hot path is one round trip: one Redis script call, one SQL statement per tick or increment,
with or without an operation id (exactly once costs no round trip of its own), stamped with the
store's own clock inside that call (one clock costs no round trip either)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from migratrack.core.commands import StartPhase, StartSubTask
from migratrack.service import MigrationService
from migratrack.storage import MergeResult
from migratrack.storage.base import ProgressMerge

from .servers import RedisServer

N = 200


def prepare(svc: MigrationService) -> None:
    svc.initialize("rt", [{"id": "p", "sub_tasks": ["s"]}], actor="a")
    svc.execute("rt", StartPhase("p"), actor="a")
    svc.execute("rt", StartSubTask("p", "s"), actor="a")


def hot_ops(svc: MigrationService, with_ids: bool) -> None:
    def op(kind: str, i: int) -> str | None:
        return f"{kind}-{i}" if with_ids else None

    for i in range(1, N + 1):
        assert svc.update_phase_progress("rt", "p", done=i, actor="w", op_id=op("p", i)) is MergeResult.APPLIED
        assert svc.update_sub_task_progress("rt", "p", "s", i / 2.1, actor="w", op_id=op("s", i)) \
            is MergeResult.APPLIED
        # ts None: the store stamps the write with its own clock, inside the same script or statement
        svc.storage.increment_counters("rt", {"successful_operations": 1}, ts=svc.write_time(), actor="w",
                                       op_id=op("c", i))


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.mark.parametrize("with_ids", [False, True], ids=["plain", "with-op-ids"])
def test_redis_hot_path_is_one_script_call(private_redis: RedisServer, with_ids: bool) -> None:
    """MONITOR shows what clients send (commands run by scripts are tagged ``lua``)."""
    svc = MigrationService(private_redis.url)
    prepare(svc)
    admin = redis.Redis.from_url(private_redis.url, decode_responses=True)
    marker = redis.Redis.from_url(private_redis.url)
    marker.ping()  # connected before MONITOR starts: its handshake is not counted
    sent: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        with admin.monitor() as m:
            for cmd in m.listen():
                if cmd["command"] == "ECHO end-of-test":
                    return
                if cmd["command"] == "ECHO start-of-test":
                    ready.set()  # MONITOR is live: count from here
                    continue
                if ready.is_set() and cmd.get("client_type") != "lua":
                    sent.append(cmd["command"].split()[0].upper())

    watcher = threading.Thread(target=watch)
    watcher.start()
    deadline = time.monotonic() + 10
    while not ready.is_set() and time.monotonic() < deadline:
        marker.echo("start-of-test")
        ready.wait(0.1)
    assert ready.is_set(), "MONITOR never started"
    hot_ops(svc, with_ids)
    ids = ["b0", "b1", "b2"] if with_ids else [None] * 3
    batch = [ProgressMerge("p", "s", 99.0, op_id=ids[0]), ProgressMerge("p", None, None, N + 10, op_id=ids[1]),
             ProgressMerge("p", None, 99.5, op_id=ids[2])]
    assert svc.storage.merge_many("rt", batch, ts=svc.write_time(), actor="w") == [MergeResult.APPLIED] * 3
    marker.echo("end-of-test")
    watcher.join(10)
    # 3 operations per round and one batch of 3: each is exactly one EVALSHA, except that the
    # first call of each script meets NOSCRIPT on a fresh server and is sent again after a SCRIPT LOAD
    loads = sent.count("SCRIPT")
    assert loads <= 4
    assert sent.count("EVALSHA") == 3 * N + 1 + loads
    assert set(sent) <= {"EVALSHA", "SCRIPT"}
    admin.close()
    marker.close()
    svc.storage.close()


@pytest.mark.parametrize("with_ids", [False, True], ids=["plain", "with-op-ids"])
def test_postgres_hot_path_is_one_statement(postgres_url: str, monkeypatch: pytest.MonkeyPatch,
                                            with_ids: bool) -> None:
    svc = MigrationService(postgres_url)
    prepare(svc)
    sent: list[str] = []
    lock = threading.Lock()
    original = psycopg.Cursor.execute

    def counting(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            sent.append(str(query).split()[0].upper())
        conn = self.connection
        assert conn.autocommit and conn.info.transaction_status.name == "IDLE"  # no BEGIN around it
        return original(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    monkeypatch.setattr(psycopg.Cursor, "executemany", lambda *a, **k: pytest.fail("unexpected executemany"))
    t0 = time.monotonic()
    hot_ops(svc, with_ids)
    assert len(sent) == 3 * N and set(sent) == {"WITH"}
    assert time.monotonic() - t0 < 60
    monkeypatch.undo()
    state = svc.state("rt")
    assert state.phases["p"].done == N and state.metrics.successful_operations == N
    svc.storage.close()
