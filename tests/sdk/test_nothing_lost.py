"""What a tracker accepted reaches the store once: when the tracker is garbage-collected without
close(), in a multiprocessing worker whose target returns, and when the store fails after it
had applied a write (the retry carries the write's operation id and is not applied again)."""

from __future__ import annotations

import gc
import json
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from migratrack import MigrationProgressTracker, StorageUnavailable
from migratrack.service import MigrationService
from migratrack.storage.memory import MemoryStorage

MID = "g"


def prepare(url: str) -> None:
    with MigrationProgressTracker(MID, storage=url, actor="setup") as t:
        t.initialize_migration([{"id": "copy"}])
        t.start_phase("copy")


def counts(url: str) -> tuple[int, int, list[str]]:
    svc = MigrationService(url)
    try:
        state = svc.state(MID)
        alerts = [a.message for a in svc.alerts(MID, limit=1000) if a.source == "user"]
        events = svc.events(MID, limit=100_000)
    finally:
        svc.storage.close()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # no gaps
    return state.phases["copy"].done, state.metrics.successful_operations, sorted(alerts)


def report(url: str, n: int, alerts: int = 0) -> None:
    """A worker that reports and returns without close(): its tracker is dropped with the frame."""
    w = MigrationProgressTracker(MID, storage=url, actor="w")
    for i in range(n):
        w.add_progress("copy", 1)
        w.record(succeeded=1)
        if i < alerts:
            w.create_alert("info", f"alert {i}")


def test_a_tracker_dropped_inside_a_function_writes_what_it_had_pending(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/g.db"
    prepare(url)

    def work() -> None:
        w = MigrationProgressTracker(MID, storage=url, actor="w")
        for _ in range(500):
            w.add_progress("copy", 1)

    work()
    assert counts(url)[0] == 500  # collected when work() returned

    def record() -> None:
        w = MigrationProgressTracker(MID, storage=url, actor="w")
        for _ in range(10):
            w.record(succeeded=1)
        w.tie = [w]  # type: ignore[attr-defined]  # a reference cycle: only the collector frees it

    record()
    gc.collect()
    assert counts(url)[:2] == (500, 10)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_multiprocessing_worker_whose_target_returns_writes_everything(tmp_path: Path, method: str) -> None:
    url = f"sqlite:///{tmp_path}/mp.db"
    prepare(url)
    ctx = multiprocessing.get_context(method)
    workers = [ctx.Process(target=report, args=(url, 300, 4)) for _ in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    done, ok, alerts = counts(url)
    assert (done, ok) == (600, 600)
    assert alerts == sorted([f"alert {i}" for i in range(4)] * 2)


KEEP: list[MigrationProgressTracker] = []


def report_and_keep(url: str) -> None:
    w = MigrationProgressTracker(MID, storage=url, actor="w")
    KEEP.append(w)  # never collected: the worker's exit writes it
    for _ in range(300):
        w.add_progress("copy", 1)


def test_a_forked_worker_never_writes_its_parents_pending_reports_and_writes_its_own_at_exit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fork.db"
    prepare(url)
    parent = MigrationProgressTracker(MID, storage=url, actor="parent", coalesce=3600)
    parent.add_progress("copy", 5)  # written (the first report)
    parent.add_progress("copy", 7)  # pending in the parent when it forks
    for method in ("fork", "forkserver"):
        p = multiprocessing.get_context(method).Process(target=report_and_keep, args=(url,))
        p.start()
        p.join(60)
        assert p.exitcode == 0
    assert counts(url)[0] == 5 + 600
    parent.close()
    assert counts(url)[0] == 5 + 7 + 600


class CommitThenFail(MemoryStorage):
    """Applies each write, then fails as if the connection dropped before the reply, every
    ``every``-th time: the caller cannot know the write is in."""

    every = 3
    calls = 0
    lost_replies = 0

    def _maybe_lose(self, result: Any) -> Any:
        self.calls += 1
        if self.calls % self.every == 0:
            self.lost_replies += 1
            raise StorageUnavailable("server closed the connection unexpectedly (after commit)")
        return result

    def merge_progress(self, *args: Any, **kwargs: Any) -> Any:
        return self._maybe_lose(super().merge_progress(*args, **kwargs))

    def merge_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._maybe_lose(super().merge_many(*args, **kwargs))

    def increment_counters(self, *args: Any, **kwargs: Any) -> Any:
        return self._maybe_lose(super().increment_counters(*args, **kwargs))

    def transact(self, *args: Any, **kwargs: Any) -> Any:
        return self._maybe_lose(super().transact(*args, **kwargs))


@pytest.mark.parametrize("coalesce", [0, 0.002])
def test_a_write_that_committed_before_its_reply_was_lost_is_not_applied_again(coalesce: float) -> None:
    store = CommitThenFail()
    store.every = 1_000_000
    t = MigrationProgressTracker(MID, storage=store, actor="w", coalesce=coalesce, block_on_pause=False)
    t.initialize_migration([{"id": "copy"}])
    t.start_phase("copy")
    store.every = 3
    for i in range(400):
        t.add_progress("copy", 1)
        t.record(succeeded=1, failed=i % 2)
        if i % 25 == 0:
            assert t.create_alert("warning", f"alert {i}") is not None
        t.flush()  # sends the queued writes again now, each under its first id
    store.every = 1_000_000
    t.close()
    assert store.lost_replies > 10
    svc = MigrationService(store)
    state = svc.state(MID)
    assert state.phases["copy"].done == 400
    assert (state.metrics.successful_operations, state.metrics.failed_operations) == (400, 200)
    mine = sorted(a.message for a in svc.alerts(MID, limit=1000) if a.source == "user")
    assert mine == sorted(f"alert {i}" for i in range(0, 400, 25))
    events = svc.events(MID, limit=100_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_every_retry_of_a_write_over_http_carries_the_same_idempotency_key() -> None:
    seen: dict[str, set[str]] = {}
    failures: dict[str, int] = {}
    lock = threading.Lock()

    def server(request: httpx.Request) -> httpx.Response:
        kind = request.url.path.rsplit("/", 1)[1]
        key = request.headers.get("Idempotency-Key", "")
        with lock:
            seen.setdefault(kind, set()).add(key)
            failures[key] = failures.get(key, 0) + 1
            if failures[key] <= 2:  # each write's first two attempts fail: it must be sent again
                return httpx.Response(503)
        if kind == "alerts":
            return httpx.Response(201, json={"id": "a1", "level": "info", "message": "m",
                                             "created_at": "2026-01-01T00:00:00+00:00"})
        return httpx.Response(200, json={"control": "running"})

    from migratrack.sdk.remote import RemoteBackend

    backend = RemoteBackend("http://tracker.test", transport=httpx.MockTransport(server), deadline=30,
                            backoff=(0.001, 0.01))
    t = MigrationProgressTracker(MID, backend=backend, actor="w", coalesce=0, block_on_pause=False)
    t.add_progress("copy", 1)  # a batch: queued, retried by the drainer
    t.create_alert("info", "m")
    t.update_metrics(migration_speed=5.0)
    t.complete_phase("copy")  # a transition: retried by the transport
    t.close()
    assert set(seen) == {"batch", "alerts", "metrics", "complete"}
    assert all(len(keys) == 1 for keys in seen.values()), seen  # one key per write, over 3 attempts
    assert len({k for keys in seen.values() for k in keys}) == 4  # and a different one for each write
    assert all(n == 3 for n in failures.values())



def test_a_remote_backend_spools_what_the_server_did_not_take_and_the_next_tracker_replays_it(
    spool_dir: Path,
) -> None:
    from migratrack.sdk.remote import RemoteBackend

    up = False
    received: list[tuple[str, str, dict[str, Any]]] = []

    def server(request: httpx.Request) -> httpx.Response:
        if not up:
            return httpx.Response(503)
        kind = request.url.path.rsplit("/", 1)[1]
        received.append((kind, request.headers["Idempotency-Key"], json.loads(request.content)))
        if kind == "alerts":
            return httpx.Response(201, json={"id": "a1", "level": "info", "message": "m",
                                             "created_at": "2026-01-01T00:00:00+00:00"})
        return httpx.Response(200, json={"control": "running"})

    def backend() -> RemoteBackend:
        return RemoteBackend("http://tracker.test", transport=httpx.MockTransport(server), deadline=0.5,
                             backoff=(0.01, 0.05), spool_dir=spool_dir)

    t = MigrationProgressTracker(MID, backend=backend(), actor="w", coalesce=0, block_on_pause=False)
    for i in range(20):
        t.add_progress("copy", 1)
        if i % 10 == 0:
            t.create_alert("error", f"alert {i}")
    t.close()  # the server never answered: after the deadline, the buffer goes to the spool
    files = list(spool_dir.glob("*.jsonl"))
    assert len(files) == 1
    spooled = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert len(spooled) == 22

    up = True
    MigrationProgressTracker(MID, backend=backend(), actor="next", coalesce=0).close()
    assert not list(spool_dir.glob("*.jsonl*"))
    assert [key for _, key, _ in received] == [line["op_id"] for line in spooled]  # in order, same keys
    assert sum(u.get("add", 0) for kind, _, body in received if kind == "batch" for u in body["updates"]) == 20
    assert sorted(body["message"] for kind, _, body in received if kind == "alerts") == ["alert 0", "alert 10"]
