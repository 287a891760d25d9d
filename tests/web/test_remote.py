"""The remote SDK: the same tracker, reporting to a server; outages never reach the migration."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from migratrack import MigrationProgressTracker
from migratrack.core.commands import StartPhase
from migratrack.core.states import Status
from migratrack.errors import (
    ConfigurationError,
    DependencyNotMet,
    InvalidTransition,
    MigrationCancelled,
    PhaseNotFound,
    StorageUnavailable,
)
from migratrack.sdk.remote import RemoteBackend
from migratrack.storage import Storage

from .conftest import PLAN
from .live import LiveServer, free_port


@pytest.fixture
def tracker(server: LiveServer, tokens: dict[str, str]) -> Iterator[MigrationProgressTracker]:
    t = MigrationProgressTracker("m1", url=server.url, token=tokens["operator"], actor="worker-1")
    t.initialize_migration(PLAN, name="Move orders")
    yield t
    t.close()


def test_the_remote_tracker_offers_the_local_methods(tracker: MigrationProgressTracker, store: Storage) -> None:
    with tracker.phase("schema"):
        tracker.update_phase_progress("schema", 50, {"table": "orders"})
    tracker.start_phase("copy")
    for _ in tracker.track(range(1000), "copy", start=False, complete=False):
        tracker.record(succeeded=1, bytes=10)
    with tracker.sub_task("copy", "orders"):
        tracker.update_sub_task_progress("copy", "orders", 60)
    tracker.start_sub_task("copy", "users")
    tracker.fail_sub_task("copy", "users", RuntimeError("disk full"))
    alert = tracker.create_alert("warning", "slow disk", "copy")
    assert alert is not None and not alert.id.startswith("pending")
    tracker.update_metrics({"migrationSpeed": 1e6})
    tracker.flush()

    state = store.load("m1")
    assert state.phases["schema"].status is Status.COMPLETED
    assert state.phases["schema"].metadata == {"table": "orders"}
    assert state.phases["copy"].done == 1000
    assert state.metrics.successful_operations == 1000 and state.metrics.total_data_migrated == 10_000
    assert state.phases["copy"].sub_tasks["users"].error == "RuntimeError: disk full"
    assert tracker.get_overview().migration_id == "m1"
    assert tracker.get_dashboard().metrics.migration_speed == 1e6
    assert tracker.estimate().critical_path[0] == "copy"
    assert "slow disk" in [a.message for a in tracker.alerts()]
    events = tracker.events()
    assert events[-1].actor.startswith("token:operator-bot/") and events[-1].actor.endswith(" claims \"worker-1\"")
    assert tracker.initialize_migration(PLAN) is False  # same plan: resumed


def test_errors_are_the_same_exceptions_as_in_process(tracker: MigrationProgressTracker) -> None:
    with pytest.raises(DependencyNotMet) as dep:
        tracker.start_phase("copy")
    assert dep.value.blocking == ["schema"]
    with pytest.raises(InvalidTransition, match="it is pending"):
        tracker.complete_phase("schema")
    with pytest.raises(PhaseNotFound):
        tracker.start_phase("nope")
    with pytest.raises(ConfigurationError, match="role"):
        tracker.pause()  # an operator token cannot pause


def test_a_pause_reaches_a_remote_worker(server: LiveServer, tokens: dict[str, str]) -> None:
    worker = MigrationProgressTracker("m1", url=server.url, token=tokens["operator"], block_on_pause=False)
    boss = MigrationProgressTracker("m1", url=server.url, token=tokens["admin"])
    worker.initialize_migration(PLAN)
    worker.start_phase("schema")
    boss.pause("maintenance")
    worker.update_phase_progress("schema", 10)
    assert worker.paused
    boss.cancel()
    with pytest.raises(MigrationCancelled):
        worker.checkpoint()
    worker.close()
    boss.close()


def test_url_and_token_from_the_environment(server: LiveServer, tokens: dict[str, str], store: Storage,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATRACK_URL", server.url)
    monkeypatch.setenv("MIGRATRACK_TOKEN", tokens["operator"])
    with MigrationProgressTracker("env") as t:
        assert isinstance(t.backend, RemoteBackend)
        t.initialize_migration([{"id": "only"}])
    assert store.exists("env")


def test_a_wrong_token_is_a_configuration_error(server: LiveServer) -> None:
    t = MigrationProgressTracker("m1", url=server.url, token="mt_wrong")
    with pytest.raises(ConfigurationError, match="MIGRATRACK_TOKEN"):
        t.initialize_migration(PLAN)
    t.close()


def test_strict_raises_at_once_and_transitions_raise_after_the_deadline() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    strict = RemoteBackend(down, strict=True)
    with pytest.raises(StorageUnavailable):
        strict.apply_updates("m", [], {"successful_operations": 1}, actor="a")
    lenient = RemoteBackend(down, deadline=0.3)
    assert lenient.apply_updates("m", [], {"successful_operations": 1}, actor="a") is None  # buffered
    assert lenient.pending == 1
    with pytest.raises(StorageUnavailable, match="unavailable"):
        lenient.execute("m", StartPhase("p"), actor="a")
    strict.close()
    lenient.close(timeout=0)


def test_the_buffer_is_bounded_and_keeps_every_increment(app: FastAPI, tokens: dict[str, str],
                                                         store: Storage) -> None:
    port = free_port()
    remote = RemoteBackend(f"http://127.0.0.1:{port}", token=tokens["operator"], buffer_size=5)
    live = LiveServer(app, port).start()
    remote.initialize("b", [{"id": "p"}], actor="a")
    remote.execute("b", StartPhase("p"), actor="a")
    live.stop()
    from migratrack.service import ProgressUpdate

    for i in range(100):
        remote.apply_updates("b", [ProgressUpdate(phase="p", add=1, progress=i / 2)], {"successful_operations": 2},
                             actor="a")
        assert remote.pending <= 5
    live = LiveServer(app, port).start()
    assert remote.flush(timeout=20)
    live.stop()
    state = store.load("b")
    assert state.phases["p"].done == 100
    assert state.phases["p"].progress == 49.5
    assert state.metrics.successful_operations == 200
    remote.close()


def test_a_server_outage_mid_run_goes_unnoticed_and_loses_nothing(app: FastAPI, tokens: dict[str, str],
                                                                  store: Storage,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Stop the server in the middle of a migration and start it again: the script runs on, and
    the store ends with every update."""
    port = free_port()
    live = LiveServer(app, port).start()
    items, alerts_every = 3000, 500
    reached = {n: threading.Event() for n in (1000, 2000)}
    failures: list[BaseException] = []

    def migration_script() -> None:
        try:
            with MigrationProgressTracker("outage", url=f"http://127.0.0.1:{port}", token=tokens["operator"],
                                          coalesce=0.01) as t:
                t.initialize_migration([{"id": "copy"}, {"id": "verify", "dependencies": ["copy"]}])
                t.start_phase("copy")
                t.update_phase_progress("copy", total=items)
                for i in range(1, items + 1):
                    t.add_progress("copy")
                    t.record(succeeded=1, bytes=100)
                    if i % alerts_every == 0:
                        t.create_alert("info", f"{i} rows copied", "copy")
                    if i in reached:
                        reached[i].set()
                    threading.Event().wait(0.0005)
                t.complete_phase("copy")
                with t.phase("verify"):
                    t.update_phase_progress("verify", 100)
        except BaseException as exc:
            failures.append(exc)

    script = threading.Thread(target=migration_script)
    script.start()
    assert reached[1000].wait(30)
    live.stop()  # the server goes away while the script keeps reporting
    assert reached[2000].wait(30), "the script stalled while the server was down"
    live = LiveServer(app, port).start()
    script.join(60)
    live.stop()
    assert not script.is_alive()
    assert failures == []
    state = store.load("outage")
    assert state.phases["copy"].status is Status.COMPLETED and state.phases["copy"].done == items
    assert state.phases["verify"].status is Status.COMPLETED
    assert state.metrics.successful_operations == items
    assert state.metrics.total_data_migrated == items * 100
    assert any("buffering" in r.getMessage() for r in caplog.records)  # it did run into the outage
    assert sorted(a.message for a in store.alerts("outage", limit=100) if a.source == "user") == sorted(
        f"{i} rows copied" for i in range(alerts_every, items + 1, alerts_every))


def test_the_remote_backend_speaks_plain_http(server: LiveServer, tokens: dict[str, str]) -> None:
    # the SDK's requests are ordinary API calls: what it sends, curl can send
    r = httpx.get(f"{server.url}/openapi.json")
    assert r.status_code == 200
    assert "/api/migrations/{mid}/batch" in r.json()["paths"]


class LosesReplies(httpx.HTTPTransport):
    """Delivers each request, but loses the reply of the first request to each listed path."""

    def __init__(self, paths: set[str]) -> None:
        super().__init__()
        self.paths = set(paths)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path in self.paths:
            self.paths.discard(request.url.path)
            response.read()
            response.close()
            raise httpx.ReadError("connection reset before the reply", request=request)
        return response


def test_a_write_whose_reply_was_lost_is_applied_once(server: LiveServer, tokens: dict[str, str],
                                                      store: Storage) -> None:
    from migratrack.service import ProgressUpdate

    transport = LosesReplies({"/api/migrations/m1/phases/schema/start", "/api/migrations/m1/batch"})
    remote = RemoteBackend(server.url, token=tokens["operator"], transport=transport)
    remote.initialize("m1", PLAN, actor="w")
    remote.execute("m1", StartPhase("schema"), actor="w")  # retried; the retry finds it started: fine
    remote.apply_updates("m1", [ProgressUpdate(phase="schema", add=5)], {"successful_operations": 5}, actor="w")
    assert remote.flush(timeout=10)
    state = store.load("m1")
    assert state.phases["schema"].status is Status.IN_PROGRESS
    assert state.phases["schema"].done == 5
    assert state.metrics.successful_operations == 5
    assert not transport.paths  # both replies were indeed lost once
    remote.close()
