"""ProgressDelta: the one merge of progress reports, and the guarantees its docstring makes."""

from __future__ import annotations

from functools import reduce
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from migratrack.core.delta import ProgressDelta
from migratrack.core.states import Status
from migratrack.sdk.outbox import merge_batch

Values = tuple[float, int, int | None, dict[str, Any]]


def one_by_one(start: Values, deltas: list[ProgressDelta]) -> Values:
    progress, done, total, metadata = start
    metadata = dict(metadata)
    for d in deltas:
        progress, done, total = d.advance(progress, done, total)
        metadata.update(d.metadata)
    return progress, done, total, metadata


def coalesced(start: Values, deltas: list[ProgressDelta]) -> Values:
    return one_by_one(start, [reduce(ProgressDelta.merge, deltas)])


def test_merge_keeps_the_highest_values_sums_increments_and_lets_the_later_report_win() -> None:
    earlier = ProgressDelta("copy", None, 40.0, 120, 1000, 5, {"step": "extract", "host": "a"})
    later = ProgressDelta("copy", None, 30.0, 100, 900, 7, {"step": "load"})
    assert earlier.merge(later) == ProgressDelta("copy", None, 40.0, 120, 900, 12, {"step": "load", "host": "a"})
    # a field the later report leaves out keeps the earlier value
    assert later.merge(ProgressDelta("copy", add=1)) == ProgressDelta("copy", None, 30.0, 100, 900, 8,
                                                                      {"step": "load"})
    assert ProgressDelta("copy", total=10).merge(ProgressDelta("copy", progress=5.0)).total == 10


def test_the_hot_path_answers() -> None:
    running = Status.IN_PROGRESS
    assert ProgressDelta("p", add=5).apply(running, 0.0, 10, 20) == ("applied", 75.0, 15)
    assert ProgressDelta("p", done=5).apply(running, 80.0, 10, 20) == ("stale", 80.0, 10)
    # passing the total, setting one, metadata, or a phase not running: the rules decide
    assert ProgressDelta("p", add=11).apply(running, 0.0, 10, 20)[0] == "fallback"
    assert ProgressDelta("p", total=30).apply(running, 0.0, 10, 20)[0] == "fallback"
    assert ProgressDelta("p", progress=5.0, metadata={"k": 1}).apply(running, 0.0, 0, None)[0] == "fallback"
    assert ProgressDelta("p", progress=5.0).apply(Status.COMPLETED, 100.0, 0, None)[0] == "fallback"
    # a sub-task takes only a percentage
    assert ProgressDelta("p", "s", 30.0).apply(running, 20.0, 0, None) == ("applied", 30.0, 0)
    assert ProgressDelta("p", "s", 10.0).apply(running, 20.0, 0, None) == ("stale", 20.0, 0)
    assert ProgressDelta("p", "s", done=3).apply(running, 20.0, 0, None)[0] == "fallback"


def test_an_add_before_an_absolute_done_counts_the_added_items_again_when_coalesced() -> None:
    # the limit the module docstring documents: one by one the done count is max(0 + 10, 50);
    # coalesced it is max(0, 50) + 10
    reports = [ProgressDelta("p", add=10), ProgressDelta("p", done=50)]
    assert one_by_one((0.0, 0, None, {}), reports)[1] == 50
    assert coalesced((0.0, 0, None, {}), reports)[1] == 60


def test_a_total_raised_between_reports_lowers_the_coalesced_progress() -> None:
    reports = [ProgressDelta("p", done=50, total=100), ProgressDelta("p", total=1000)]
    assert one_by_one((0.0, 0, None, {}), reports)[0] == 50.0
    assert coalesced((0.0, 0, None, {}), reports)[0] == 5.0


percent = st.one_of(st.floats(0, 100), st.sampled_from([0.0, 12.5, 100.0]))
metadata = st.dictionaries(st.sampled_from(["step", "host"]), st.integers(0, 3), max_size=2)


@st.composite
def guaranteed_reports(draw: st.DrawFn) -> tuple[Values, list[ProgressDelta]]:
    """A stored phase and one worker's reports of the kinds the docstring guarantees: every
    absolute done before every add, and no total above the one in effect."""
    total = draw(st.one_of(st.none(), st.integers(0, 500)))
    start: Values = (draw(percent), draw(st.integers(0, 400)), total, draw(metadata))
    kinds = (draw(st.lists(st.sampled_from(["done", "plain"]), max_size=6))
             + draw(st.lists(st.sampled_from(["add", "plain"]), max_size=6)))
    reports = []
    for kind in kinds or ["plain"]:
        new_total = None
        if draw(st.booleans()):
            new_total = draw(st.integers(0, 500 if total is None else total))
            total = new_total
        reports.append(ProgressDelta(
            "p", None, draw(st.one_of(st.none(), percent)),
            draw(st.integers(0, 400)) if kind == "done" else None,
            new_total,
            draw(st.integers(0, 40)) if kind == "add" else None,
            draw(metadata),
        ))
    return start, reports


@settings(max_examples=300, deadline=None)
@given(case=guaranteed_reports())
def test_coalescing_a_workers_reports_ends_where_writing_each_one_does(
    case: tuple[Values, list[ProgressDelta]],
) -> None:
    start, reports = case
    assert coalesced(start, reports) == one_by_one(start, reports)


any_report = st.builds(ProgressDelta, phase=st.just("p"), progress=st.one_of(st.none(), percent),
                       done=st.one_of(st.none(), st.integers(0, 100)),
                       total=st.one_of(st.none(), st.integers(0, 100)),
                       add=st.one_of(st.none(), st.integers(0, 10)), metadata=metadata)


@settings(max_examples=200, deadline=None)
@given(reports=st.lists(any_report, min_size=1, max_size=8), cut=st.integers(0, 8))
def test_folding_already_coalesced_batches_gives_the_same_report(reports: list[ProgressDelta], cut: int) -> None:
    # the remote backend folds buffered batches that the tracker had already coalesced
    cut = min(cut, len(reports) - 1)
    whole = reduce(ProgressDelta.merge, reports)
    head = reduce(ProgressDelta.merge, reports[:cut + 1])
    tail = reports[cut + 1:]
    assert (head.merge(reduce(ProgressDelta.merge, tail)) if tail else head) == whole


def test_the_remote_outbox_folds_batches_with_the_same_merge() -> None:
    older = {"updates": [{"phase": "p", "done": 10, "total": 100, "metadata": {"step": "a"}},
                         {"phase": "q", "sub_task": "s", "progress": 40.0}],
             "increments": {"successful_operations": 1}}
    newer = {"updates": [{"phase": "q", "sub_task": "s", "progress": 30.0}, {"phase": "p", "add": 5, "total": 200},
                         {"phase": "r", "progress": 1.0}],
             "increments": {"successful_operations": 2}}
    merge_batch(older, newer)
    assert older == {
        "updates": [{"phase": "p", "done": 10, "total": 200, "add": 5, "metadata": {"step": "a"}},
                    {"phase": "q", "sub_task": "s", "progress": 40.0},
                    {"phase": "r", "progress": 1.0}],
        "increments": {"successful_operations": 3},
    }
