"""Exactly once through real crashes: writers that retry each write with its operation id until
it is acknowledged end with exact counts, on a Redis stopped with SIGTERM and then SIGKILL, and
on a PostgreSQL stopped with ``pg_ctl -m immediate``, mid-run. Without ids, a write whose reply
was lost in the crash is applied again by its retry (issue 8, items 3 and 4)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from migratrack.core.commands import StartPhase
from migratrack.errors import StorageError
from migratrack.service import MigrationService, ProgressUpdate
from migratrack.storage import open_storage

from .servers import RedisServer, free_port

WORKERS = 4
PG_BIN = Path("/usr/lib/postgresql") / (sorted(os.listdir("/usr/lib/postgresql"))[-1]
                                        if os.path.isdir("/usr/lib/postgresql") else "15") / "bin"


def run_writers(url: str, crash: Callable[[], None]) -> None:
    """WORKERS threads, each with its own store, send batches (add 1, one success), each one
    again with the same id until it is acknowledged — as the SDK does — before, during and after
    ``crash``; then the counts must equal the acknowledged batches, and the log be gap-free."""
    setup = MigrationService(url)
    setup.initialize("m", [{"id": "copy"}], actor="a")
    setup.execute("m", StartPhase("copy"), actor="a")
    setup.storage.close()
    acknowledged = [0] * WORKERS
    slowest = [0.0] * WORKERS  # the longest a write took to be acknowledged
    errors: list[BaseException] = []
    crashed = threading.Event()

    def writer(n: int) -> None:
        svc = MigrationService(open_storage(url))
        deadline = time.monotonic() + 90
        try:
            i = 0
            # write on until a while after the crash, so that writes are in flight when it hits
            while not crashed.is_set() or acknowledged[n] < after_crash[n] + 20:
                write = partial(svc.apply_updates, "m", [ProgressUpdate("copy", add=1)],
                                {"successful_operations": 1}, actor=f"w{n}", op_id=f"w{n}-{i}")
                t0 = time.monotonic()
                while True:
                    try:
                        write()  # the stores retry a lost connection themselves, with the same id
                        break
                    except StorageError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.02)
                slowest[n] = max(slowest[n], time.monotonic() - t0)
                acknowledged[n] += 1
                i += 1
        except BaseException as exc:  # reported from the main thread
            errors.append(exc)
        finally:
            svc.storage.close()

    after_crash = [10**9] * WORKERS
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WORKERS)]
    for t in threads:
        t.start()
    while min(acknowledged) < 20 and not errors:  # crash when every writer is under way
        time.sleep(0.01)
    crash()
    after_crash[:] = list(acknowledged)
    crashed.set()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert max(slowest) > 0.4  # the crash hit writes in flight: they waited for the server to return
    total = sum(acknowledged)
    check = MigrationService(url)
    state = check.state("m")
    assert state.phases["copy"].done == total
    assert state.metrics.successful_operations == total
    events = check.events("m", 0, 1_000_000)
    assert [e.seq for e in events] == list(range(1, state.seq + 1))
    assert sum(e.type == "metrics.updated" for e in events) == total
    check.storage.close()


def test_redis_sigterm_then_sigkill_mid_run(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", aof=True).start()

    def crash() -> None:
        server.stop()  # SIGTERM: Redis finishes the command it runs, saves, and closes connections
        time.sleep(0.5)
        server.start()
        time.sleep(0.3)
        assert server.proc is not None
        server.proc.kill()  # SIGKILL: what was acknowledged is in the AOF (appendfsync always)
        server.proc.wait(10)
        server.proc = None
        time.sleep(0.5)
        server.start()

    try:
        run_writers(server.url, crash)
    finally:
        server.stop()


class PostgresServer:
    """A private PostgreSQL cluster on a free port, made by initdb as the postgres user."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60)

    def init(self) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = pwd.getpwnam("postgres")
        os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        return self

    def start(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "pg.log"), "-w",
                          "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    if os.geteuid() != 0 or shutil.which("runuser") is None or not (PG_BIN / "initdb").exists():
        pytest.fail("this test starts its own PostgreSQL: it needs root (for runuser) and PostgreSQL's initdb")
    folder = Path("/tmp") / f"mtpg-{os.getpid()}-{tmp_path.name}"  # the postgres user must reach it
    server = PostgresServer(folder).init()
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


def test_postgres_stopped_immediate_mid_run(private_postgres: PostgresServer) -> None:
    def crash() -> None:
        private_postgres.stop("immediate")  # no checkpoint: in-flight statements die with it
        time.sleep(0.5)
        private_postgres.start()

    run_writers(private_postgres.url, crash)
