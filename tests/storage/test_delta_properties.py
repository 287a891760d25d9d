"""Random interleavings of several workers' progress reports, on every store.

Each store (its SQL or Lua on the hot path, the rules behind it) must end exactly where the
reference application of :class:`~migratrack.core.delta.ProgressDelta` ends; and coalescing a
worker's reports with ``ProgressDelta.merge`` must not change the final state for the report
kinds whose coalescing core/delta.py guarantees.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migratrack.core.commands import CompletePhase, StartPhase, StartSubTask
from migratrack.core.delta import ProgressDelta
from migratrack.core.states import Status
from migratrack.errors import MigratrackError
from migratrack.service import MigrationService
from migratrack.storage import MergeResult, Storage

FakeClock = Any  # the `clock` fixture of tests/conftest.py

PLAN: list[dict[str, Any]] = [{"id": "a", "sub_tasks": ["s1", "s2"]}, {"id": "b"}, {"id": "c"}, {"id": "d"}]
WORKERS = ["w1", "w2", "w3"]
COUNTERS = ["successful_operations", "failed_operations"]
# a few examples per store keep this to seconds on the server-backed stores
EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

percent = st.one_of(st.floats(0, 100), st.sampled_from([0.0, 12.5, 100 / 3, 100.0]))


def setup(svc: MigrationService) -> str:
    """a and b running (b with a total of 60), c completed, d pending; sub-task s1 running, s2 pending."""
    mid = uuid.uuid4().hex
    svc.initialize(mid, PLAN, actor="init")
    for p in ("a", "b", "c"):
        svc.execute(mid, StartPhase(p), actor="init")
    svc.execute(mid, CompletePhase("c"), actor="init")
    svc.execute(mid, StartSubTask("a", "s1"), actor="init")
    svc.update_phase_progress(mid, "b", total=60, actor="init")
    return mid


@dataclass
class RefPhase:
    status: Status
    progress: float = 0.0
    done: int = 0
    total: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reference:
    """What every store must compute: ProgressDelta.apply on the hot path, ProgressDelta.advance
    in the rules when the hot path falls back."""

    phases: dict[str, RefPhase] = field(default_factory=lambda: {
        "a": RefPhase(Status.IN_PROGRESS), "b": RefPhase(Status.IN_PROGRESS, total=60),
        "c": RefPhase(Status.COMPLETED, 100.0), "d": RefPhase(Status.PENDING)})
    subs: dict[str, RefPhase] = field(default_factory=lambda: {
        "s1": RefPhase(Status.IN_PROGRESS), "s2": RefPhase(Status.PENDING)})
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def report(self, d: ProgressDelta) -> tuple[str | None, bool]:
        """(the hot path's answer, or None when the rules must see the report; whether it is refused)."""
        target = self.phases[d.phase] if d.sub_task is None else self.subs[d.sub_task]
        hot: str | None = None
        if MigrationService.as_merge(d) is not None:
            hot, progress, done = d.apply(target.status, target.progress, target.done, target.total)
            if hot != "fallback":
                target.progress, target.done = progress, done
                return hot, False
        if target.status is Status.PENDING:
            return hot, True
        if target.status is Status.IN_PROGRESS and d.sub_task is None:
            target.progress, target.done, target.total = d.advance(target.progress, target.done, target.total)
            target.metadata.update(d.metadata)
        return hot, False


def report(svc: MigrationService, mid: str, worker: str, d: ProgressDelta) -> tuple[str | None, bool]:
    """Send one report to the store as the service does: the store's own hot path first."""
    hot: MergeResult | None = None
    m = MigrationService.as_merge(d)
    if m is not None:
        hot = svc.storage.merge_progress(mid, m.phase_id, m.sub_task_id, progress=m.progress, done=m.done,
                                         add=m.add, ts=svc.now(), actor=worker)
        if hot is not MergeResult.FALLBACK:
            return hot.value, False
    try:
        svc.apply_updates(mid, [d], actor=worker)
    except MigratrackError:
        return None if hot is None else hot.value, True
    return None if hot is None else hot.value, False


def final(svc: MigrationService, mid: str) -> dict[str, Any]:
    s = svc.state(mid)
    out: dict[str, Any] = {p: (ph.status, ph.progress, ph.done, ph.total, ph.metadata) for p, ph in s.phases.items()}
    out.update({sid: (sub.status, sub.progress) for sid, sub in s.phases["a"].sub_tasks.items()})
    out["counters"] = {k: getattr(s.metrics, k) for k in COUNTERS}
    return out


phase_report = st.builds(
    ProgressDelta, phase=st.sampled_from(["a", "b", "c", "d"]), progress=st.one_of(st.none(), percent),
    done=st.one_of(st.none(), st.integers(0, 80)),
    total=st.one_of(st.none(), st.none(), st.none(), st.integers(0, 100)),  # mostly none: the hot path
    add=st.one_of(st.none(), st.integers(0, 15)),
    metadata=st.one_of(st.just({}), st.just({}),
                       st.dictionaries(st.sampled_from(["step", "host"]), st.integers(0, 3))),
)
sub_report = st.builds(ProgressDelta, phase=st.just("a"), sub_task=st.sampled_from(["s1", "s2"]), progress=percent)
steps = st.lists(st.one_of(
    st.tuples(st.sampled_from(WORKERS), st.one_of(phase_report, phase_report, sub_report)),
    st.tuples(st.sampled_from(WORKERS), st.tuples(st.sampled_from(COUNTERS), st.integers(0, 20))),
), min_size=5, max_size=30)


@EXAMPLES
@given(steps=steps)
def test_every_store_applies_reports_one_by_one_like_the_reference(
    store: Storage, clock: FakeClock, steps: list[tuple[str, Any]]
) -> None:
    svc = MigrationService(store, clock)
    mid = setup(svc)
    ref = Reference()
    for i, (worker, what) in enumerate(steps):
        clock.advance(1)
        if isinstance(what, ProgressDelta):
            assert report(svc, mid, worker, what) == ref.report(what), (i, what)
        else:
            svc.update_metrics(mid, increments={what[0]: what[1]}, actor=worker)
            ref.counters[what[0]] += what[1]
    expected: dict[str, Any] = {p: (r.status, r.progress, r.done, r.total, r.metadata) for p, r in ref.phases.items()}
    expected.update({sid: (r.status, r.progress) for sid, r in ref.subs.items()})
    expected["counters"] = ref.counters
    assert final(svc, mid) == expected


@st.composite
def shared_work(draw: st.DrawFn) -> list[tuple[str, ProgressDelta | None]]:
    """Several workers on phases a and b and sub-task s1, with reports of the kinds whose coalescing
    is guaranteed: per phase, either only increments or only absolute done counts, and one
    total that the workers agree on; metadata keys of each worker's own. None is a flush."""
    kinds = {"a": (draw(st.sampled_from(["add", "done"])), draw(st.one_of(st.none(), st.integers(0, 200)))),
             "b": (draw(st.sampled_from(["add", "done"])), draw(st.sampled_from([None, 60])))}  # b's stored total
    out: list[tuple[str, ProgressDelta | None]] = []
    for i in range(draw(st.integers(5, 30))):
        worker = draw(st.sampled_from(WORKERS))
        key = draw(st.sampled_from(["a", "b", "s1", "flush"]))
        if key == "flush":
            out.append((worker, None))
        elif key == "s1":
            out.append((worker, ProgressDelta("a", "s1", draw(percent))))
        else:
            kind, total = kinds[key]
            out.append((worker, ProgressDelta(
                key, None, draw(st.one_of(st.none(), percent)),
                draw(st.one_of(st.none(), st.integers(0, 250))) if kind == "done" else None,
                total if total is not None and draw(st.booleans()) else None,
                draw(st.one_of(st.none(), st.integers(0, 30))) if kind == "add" else None,
                {worker: i} if draw(st.booleans()) else {},
            )))
    return out


@EXAMPLES
@given(work=shared_work())
def test_coalescing_each_workers_reports_ends_in_the_same_state_as_writing_each_one(
    store: Storage, clock: FakeClock, work: list[tuple[str, ProgressDelta | None]]
) -> None:
    svc = MigrationService(store, clock)
    one_by_one, coalesced = setup(svc), setup(svc)
    pending: dict[str, dict[tuple[str, str | None], ProgressDelta]] = {w: {} for w in WORKERS}

    def flush(worker: str) -> None:
        if pending[worker]:
            svc.apply_updates(coalesced, list(pending[worker].values()), actor=worker)
            pending[worker] = {}

    for worker, d in work:
        clock.advance(1)
        if d is None:
            flush(worker)
            continue
        svc.apply_updates(one_by_one, [d], actor=worker)
        mine = pending[worker]
        mine[d.key] = d if d.key not in mine else mine[d.key].merge(d)
    for worker in WORKERS:
        flush(worker)
    assert final(svc, coalesced) == final(svc, one_by_one)


@EXAMPLES
@given(batch=st.lists(st.one_of(phase_report, phase_report, sub_report), min_size=2, max_size=40))
def test_a_batch_folded_ends_where_its_reports_one_by_one_end(
    store: Storage, clock: FakeClock, batch: list[ProgressDelta]
) -> None:
    """A batch's reports on one phase or sub-task are folded into one write where that is exact;
    any batch — reports the rules must see included, refused ones included — ends in the same
    state as its reports applied one at a time. Sent again with its operation id, the batch (and
    a part of it that failed midway, sent again whole) changes nothing more."""
    svc = MigrationService(store, clock)
    one_by_one, folded = setup(svc), setup(svc)
    for d in batch:
        with contextlib.suppress(MigratrackError):
            svc.apply_updates(one_by_one, [d], actor="w")
    for _ in range(2):  # the same batch twice, under one id: applied once
        with contextlib.suppress(MigratrackError):
            svc.apply_updates(folded, batch, actor="w", op_id="batch-1")
    assert final(svc, folded) == final(svc, one_by_one)
