"""Exactly once: a write sent again with the same operation id is acknowledged and not applied
again, on every store, for the store's dedupe window (storage/base.py, "Exactly once")."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import pytest

from migratrack.core.commands import CompletePhase, CompleteSubTask, FailPhase, RetryPhase, StartPhase, StartSubTask
from migratrack.core.models import Alert, Event, MigrationState, NewEvent, SubTaskState
from migratrack.core.rules import Change
from migratrack.core.states import Control
from migratrack.errors import ConfigurationError, InvalidInput, StorageUnavailable
from migratrack.service import MigrationService, PartiallyApplied, ProgressUpdate
from migratrack.storage import MergeResult, Storage, open_storage
from migratrack.storage.base import ProgressMerge, RequestRecord, SubTaskScope, TokenRecord

FakeClock = Any  # the `clock` fixture of tests/conftest.py

PLAN = [{"id": "copy", "sub_tasks": ["t1", "t2"]}, {"id": "verify", "dependencies": ["copy"]}]


def with_option(url: str, option: str) -> str:
    return url + ("&" if "?" in url else "?") + option


@pytest.fixture
def short_store(store_url: str) -> Iterator[Storage]:
    """Each store with a one-minute dedupe window, set in its URL."""
    s = open_storage(with_option(store_url, "dedupe_window=60s"))
    yield s
    s.close()


@pytest.fixture
def svc(short_store: Storage, clock: FakeClock) -> MigrationService:
    s = MigrationService(short_store, clock)
    s.initialize("m", PLAN, actor="a")
    s.execute("m", StartPhase("copy"), actor="a")
    s.execute("m", StartSubTask("copy", "t1"), actor="a")
    return s


def finish_copy(svc: MigrationService) -> None:
    svc.execute("m", CompleteSubTask("copy", "t1"), actor="a")
    svc.execute("m", StartSubTask("copy", "t2"), actor="a")
    svc.execute("m", CompleteSubTask("copy", "t2"), actor="a")
    svc.execute("m", CompletePhase("copy"), actor="a")


def event_types(store: Storage) -> list[str]:
    return [e.type for e in store.events("m", 0, 10_000)]


def test_a_progress_merge_with_a_repeated_id_applies_once(svc: MigrationService, short_store: Storage,
                                                          clock: FakeClock) -> None:
    store = short_store
    ts = clock()
    assert store.merge_progress("m", "copy", None, progress=None, done=None, add=100, ts=ts, actor="w",
                                op_id="op-1") is MergeResult.APPLIED
    events = len(event_types(store))
    assert store.merge_progress("m", "copy", None, progress=None, done=None, add=100, ts=ts, actor="w",
                                op_id="op-1") is MergeResult.STALE
    assert store.load("m").phases["copy"].done == 100
    assert len(event_types(store)) == events  # the repeat appended no event
    assert store.merge_progress("m", "copy", None, progress=None, done=None, add=100, ts=ts, actor="w",
                                op_id="op-2") is MergeResult.APPLIED
    assert store.load("m").phases["copy"].done == 200
    # sub-tasks too; and an id is per migration's write, whatever the target
    assert store.merge_progress("m", "copy", "t1", progress=40, done=None, add=None, ts=ts, actor="w",
                                op_id="op-3") is MergeResult.APPLIED
    assert store.merge_progress("m", "copy", "t1", progress=60, done=None, add=None, ts=ts, actor="w",
                                op_id="op-3") is MergeResult.STALE
    assert store.load("m").phases["copy"].sub_tasks["t1"].progress == 40


def test_a_batch_of_merges_sent_again_applies_only_what_is_new(svc: MigrationService, short_store: Storage,
                                                               clock: FakeClock) -> None:
    store = short_store
    batch = [ProgressMerge("copy", None, None, None, 10, "b:0"), ProgressMerge("copy", "t1", 30.0, op_id="b:1")]
    assert store.merge_many("m", batch, ts=clock(), actor="w") == [MergeResult.APPLIED] * 2
    seq = store.load("m").seq
    again = [*batch, ProgressMerge("copy", None, None, None, 5, "b:2")]
    assert store.merge_many("m", again, ts=clock(), actor="w") == [MergeResult.STALE, MergeResult.STALE,
                                                                   MergeResult.APPLIED]
    state = store.load("m")
    assert state.phases["copy"].done == 15 and state.phases["copy"].sub_tasks["t1"].progress == 30.0
    assert state.seq == seq + 1


def test_a_merge_the_rules_must_decide_leaves_its_id_free(svc: MigrationService, short_store: Storage,
                                                          clock: FakeClock) -> None:
    """FALLBACK records nothing: the same id then applies through the rules, once."""
    store = short_store
    assert store.merge_progress("m", "verify", None, progress=None, done=None, add=3, ts=clock(), actor="w",
                                op_id="op-f") is MergeResult.FALLBACK
    finish_copy(svc)
    svc.execute("m", StartPhase("verify"), actor="a")
    for _ in range(2):
        svc.update_phase_progress("m", "verify", add=3, actor="w", op_id="op-f")
    assert store.load("m").phases["verify"].done == 3
    # through the rules (a total is given): recorded there, so the hot path then sees it too
    svc.update_phase_progress("m", "verify", add=4, total=100, actor="w", op_id="op-t")
    assert store.merge_progress("m", "verify", None, progress=None, done=None, add=4, ts=clock(), actor="w",
                                op_id="op-t") is MergeResult.STALE
    assert store.load("m").phases["verify"].done == 7


def test_counter_increments_with_a_repeated_id_apply_once(svc: MigrationService, short_store: Storage,
                                                          clock: FakeClock) -> None:
    store = short_store
    first = store.increment_counters("m", {"successful_operations": 100, "total_data_migrated": 7}, ts=clock(),
                                     actor="w", op_id="inc-1")
    events = event_types(store).count("metrics.updated")
    again = store.increment_counters("m", {"successful_operations": 100, "total_data_migrated": 7}, ts=clock(),
                                     actor="w", op_id="inc-1")
    assert again == first == {"successful_operations": 100, "failed_operations": 0, "total_data_migrated": 7}
    assert event_types(store).count("metrics.updated") == events
    store.increment_counters("m", {"successful_operations": 1}, ts=clock(), actor="w", op_id="inc-2")
    assert store.load("m").metrics.successful_operations == 101


def test_transitions_alerts_and_metrics_through_the_rules_apply_once(svc: MigrationService,
                                                                     short_store: Storage) -> None:
    store = short_store
    failed = svc.execute("m", FailPhase("copy", "disk full"), actor="a", op_id="t-1")
    assert failed.events
    svc.execute("m", RetryPhase("copy"), actor="a", op_id="t-2")
    again = svc.execute("m", FailPhase("copy", "disk full"), actor="a", op_id="t-1")  # a late repeat
    assert again.empty and again.last_seq == store.load("m").seq
    state = store.load("m")
    assert state.phases["copy"].status.value == "in_progress" and state.phases["copy"].errors == ["disk full"]
    assert event_types(store).count("phase.failed") == 1
    assert len(store.alerts("m")) == 1  # the failure's alert, once

    alert = svc.create_alert("m", "warning", "disk at 91%", actor="a", op_id="al-1")
    repeat = svc.create_alert("m", "warning", "disk at 91%", actor="a", op_id="al-1")
    assert repeat.id == alert.id and repeat.message == "disk at 91%"
    assert [a.id for a in store.alerts("m", limit=1)] == [alert.id]
    assert event_types(store).count("alert.created") == 2  # the failure's and this one
    svc.create_alert("m", "warning", "disk at 91%", actor="a", op_id="al-2")
    assert len(store.alerts("m")) == 3

    for _ in range(2):  # a set goes through the rules: its increment counts once
        svc.update_metrics("m", {"migration_speed": 5.0}, {"failed_operations": 2}, actor="a", op_id="mx-1")
    metrics = store.load("m").metrics
    assert metrics.failed_operations == 2 and metrics.gauges["migration_speed"] == 5.0


def test_ids_expire_after_the_window(svc: MigrationService, short_store: Storage, clock: FakeClock) -> None:
    store = short_store
    assert store.dedupe_window.total_seconds() == 60

    def add() -> MergeResult:
        return store.merge_progress("m", "copy", None, progress=None, done=None, add=1, ts=clock(), actor="w",
                                    op_id="op-x")

    assert add() is MergeResult.APPLIED
    clock.advance(59)
    assert add() is MergeResult.STALE
    for _ in range(2):
        store.increment_counters("m", {"successful_operations": 1}, ts=clock(), actor="w", op_id="inc-x")
        svc.create_alert("m", "info", "note", actor="a", op_id="al-x")
    clock.advance(2)  # 61 s after the first: forgotten, a repeat applies again
    assert add() is MergeResult.APPLIED
    assert add() is MergeResult.STALE  # ...and is remembered again from now
    assert store.load("m").phases["copy"].done == 2
    clock.advance(60)  # 60 s after the increment: forgotten too
    store.increment_counters("m", {"successful_operations": 1}, ts=clock(), actor="w", op_id="inc-x")
    assert store.load("m").metrics.successful_operations == 2
    # an alert's id comes from its operation id: it is made once for as long as it exists
    svc.create_alert("m", "info", "note", actor="a", op_id="al-x")
    assert len(store.alerts("m")) == 1


def test_a_bad_window_or_id_is_refused_clearly(store_url: str, short_store: Storage, clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError, match="a duration looks like"):
        open_storage(with_option(store_url, "dedupe_window=soon"))
    svc = MigrationService(short_store, clock)
    svc.initialize("m", PLAN, actor="a")
    with pytest.raises(InvalidInput, match="op_id must be a non-empty string"):
        svc.update_phase_progress("m", "copy", 5, actor="a", op_id="x" * 201)
    with pytest.raises(InvalidInput, match="op_id must be a non-empty string"):
        svc.execute("m", StartPhase("copy"), actor="a", op_id="")


def test_a_batch_retried_with_its_id_applies_exactly_once(svc: MigrationService, short_store: Storage) -> None:
    """apply_updates splits a batch into store calls (merges, the rules, the counters); sent again
    with the same id, each part is applied once."""
    updates = [ProgressUpdate("copy", add=100), ProgressUpdate("copy", "t1", progress=50.0),
               ProgressUpdate("copy", total=1000, metadata={"host": "a"}), ProgressUpdate("copy", add=1)]
    for _ in range(3):
        svc.apply_updates("m", updates, {"successful_operations": 100}, actor="w", op_id="batch-1")
    state = short_store.load("m")
    assert (state.phases["copy"].done, state.phases["copy"].total) == (101, 1000)
    assert state.metrics.successful_operations == 100
    svc.apply_updates("m", updates, {"successful_operations": 100}, actor="w", op_id="batch-2")
    state = short_store.load("m")
    assert state.phases["copy"].done == 202 and state.metrics.successful_operations == 200


class LostReplies(Storage):
    """A store in front of a real one whose chosen write is applied and then reported failed, as
    when the connection breaks after the server committed (the reply is lost)."""

    def __init__(self, inner: Storage, lose: str) -> None:
        super().__init__(inner.codec)
        self.inner = inner
        self.atomic_merge_many = inner.atomic_merge_many
        self.lose = lose  # the kind of write whose next call loses its reply: merges, rules or counters

    def _maybe_lose(self, name: str, result: Any) -> Any:
        if name == self.lose:
            self.lose = ""
            raise StorageUnavailable("connection lost after the write (simulated)")
        return result

    def merge_progress(self, migration_id: str, phase_id: str, sub_task_id: str | None, **kw: Any) -> MergeResult:
        return self._maybe_lose("merges", self.inner.merge_progress(migration_id, phase_id, sub_task_id, **kw))

    def merge_many(self, migration_id: str, merges: Sequence[ProgressMerge], **kw: Any) -> list[MergeResult]:
        return self._maybe_lose("merges", self.inner.merge_many(migration_id, merges, **kw))  # type: ignore[no-any-return]

    def increment_counters(self, migration_id: str, deltas: Mapping[str, int], **kw: Any) -> dict[str, int]:
        return self._maybe_lose("counters", self.inner.increment_counters(migration_id, deltas, **kw))  # type: ignore[no-any-return]

    def transact(self, migration_id: str, fn: Callable[[MigrationState], Change], **kw: Any) -> Change:
        return self._maybe_lose("rules", self.inner.transact(migration_id, fn, **kw))  # type: ignore[no-any-return]

    def create(self, state: MigrationState, events: Sequence[NewEvent], *, replace: bool = False) -> int:
        return self.inner.create(state, events, replace=replace)

    def load(self, migration_id: str, *, sub_tasks: SubTaskScope = "all",
             phases: Sequence[str] | None = None) -> MigrationState:
        return self.inner.load(migration_id, sub_tasks=sub_tasks, phases=phases)

    def exists(self, migration_id: str) -> bool:
        return self.inner.exists(migration_id)

    def list_ids(self) -> list[str]:
        return self.inner.list_ids()

    def delete(self, migration_id: str) -> bool:
        return self.inner.delete(migration_id)

    def control(self, migration_id: str) -> Control:
        return self.inner.control(migration_id)

    def page_sub_tasks(self, migration_id: str, phase_id: str, **kw: Any) -> list[SubTaskState]:
        return self.inner.page_sub_tasks(migration_id, phase_id, **kw)

    def events(self, migration_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        return self.inner.events(migration_id, after, limit)

    def alerts(self, migration_id: str, *, limit: int = 50, unacknowledged_only: bool = False) -> list[Alert]:
        return self.inner.alerts(migration_id, limit=limit, unacknowledged_only=unacknowledged_only)

    def get_alert(self, migration_id: str, alert_id: str) -> Alert:
        return self.inner.get_alert(migration_id, alert_id)

    def purge_finished(self, older_than: datetime) -> list[str]:
        return self.inner.purge_finished(older_than)

    def claim_request(self, key: str, fingerprint: str, *, ts: datetime) -> RequestRecord:
        return self.inner.claim_request(key, fingerprint, ts=ts)

    def finish_request(self, key: str, fingerprint: str, response: Any, *, ts: datetime) -> None:
        self.inner.finish_request(key, fingerprint, response, ts=ts)

    def save_token(self, token: TokenRecord) -> None:
        self.inner.save_token(token)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        return self.inner.find_token(token_hash)

    def list_tokens(self) -> list[TokenRecord]:
        return self.inner.list_tokens()


@pytest.mark.parametrize("lose", ["merges", "rules", "counters"])
def test_a_batch_whose_reply_was_lost_is_exact_when_sent_again_whole(
        svc: MigrationService, short_store: Storage, clock: FakeClock, lose: str) -> None:
    flaky = MigrationService(LostReplies(short_store, lose), clock)
    updates = [ProgressUpdate("copy", add=10), ProgressUpdate("copy", "t1", progress=20.0),
               ProgressUpdate("copy", total=500, metadata={"k": 1}), ProgressUpdate("copy", add=5)]
    increments = {"successful_operations": 15, "failed_operations": 1}
    with pytest.raises(PartiallyApplied):
        flaky.apply_updates("m", updates, increments, actor="w", op_id="lost-1")
    assert flaky.storage.lose == ""  # type: ignore[attr-defined]  # the write was made, its reply lost
    flaky.apply_updates("m", updates, increments, actor="w", op_id="lost-1")  # the same batch, whole
    state = short_store.load("m")
    copy = state.phases["copy"]
    assert (copy.done, copy.total, copy.sub_tasks["t1"].progress) == (15, 500, 20.0)
    assert (state.metrics.successful_operations, state.metrics.failed_operations) == (15, 1)


def test_concurrent_duplicates_apply_once(shared_url: str, clock: FakeClock) -> None:
    """Four writers send the same ids at the same time (a retry racing its first attempt): each
    id is applied once. On PostgreSQL this goes through the statement's guard."""
    url = with_option(shared_url, "dedupe_window=60s")
    setup = MigrationService(url, clock)
    setup.initialize("m", PLAN, actor="a")
    setup.execute("m", StartPhase("copy"), actor="a")
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        svc = MigrationService(open_storage(url), clock)
        try:
            barrier.wait()
            for i in range(40):
                k = (i + n * 10) % 40  # the same ids, each writer in another order
                svc.storage.increment_counters("m", {"successful_operations": 1}, ts=clock(), actor=f"w{n}",
                                               op_id=f"inc-{k}")
                svc.storage.merge_progress("m", "copy", None, progress=None, done=None, add=1, ts=clock(),
                                           actor=f"w{n}", op_id=f"add-{k}")
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)
        finally:
            svc.storage.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    state = setup.state("m")
    assert state.metrics.successful_operations == 40 and state.phases["copy"].done == 40
    events = setup.storage.events("m", 0, 10_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sum(e.type == "metrics.updated" for e in events) == 40
    setup.storage.close()


def test_idempotency_keys_are_claimed_once_and_keep_their_answer(short_store: Storage, clock: FakeClock) -> None:
    store = short_store
    first = store.claim_request("tok:k1", "fp-a", ts=clock())
    assert first == RequestRecord("fp-a", None)
    assert store.claim_request("tok:k1", "fp-b", ts=clock()) == RequestRecord("fp-a", None)  # bound to the first
    store.finish_request("tok:k1", "fp-b", {"control": "paused"}, ts=clock())  # not its request: ignored
    store.finish_request("tok:k1", "fp-a", {"control": "running", "n": [1, 2]}, ts=clock())
    assert store.claim_request("tok:k1", "fp-a", ts=clock()) == RequestRecord("fp-a", {"control": "running",
                                                                                      "n": [1, 2]})
    assert store.claim_request("tok:k2", "fp-b", ts=clock()) == RequestRecord("fp-b", None)
    clock.advance(61)  # past the window: the key is free again
    assert store.claim_request("tok:k1", "fp-c", ts=clock()) == RequestRecord("fp-c", None)
