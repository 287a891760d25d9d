"""Loop helpers over a tracker's public methods: ``track()`` and the phase/sub-task steps.

``track`` counts the items of an iterable into a phase's done count, with as little work per
item as a generator allows; ``step`` starts a phase or sub-task, completes it on exit, or fails
it with the exception's text. Neither knows how reports are coalesced or sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Protocol, TypeVar, cast

from migratrack.core.models import check_count
from migratrack.errors import MigrationCancelled

log = logging.getLogger("migratrack")
T = TypeVar("T")


class Flushes(Protocol):
    def flush(self) -> None: ...


F = TypeVar("F", bound=Flushes)


class Reporter(Flushes, Protocol):
    """What the loop helpers use of a tracker."""

    def start_phase(self, phase_id: str) -> None: ...
    def resume_phase(self, phase_id: str) -> bool: ...
    def add_progress(self, phase_id: str, n: int = 1) -> None: ...
    def update_phase_progress(self, phase_id: str, *, total: int | None = None) -> None: ...
    def complete_phase(self, phase_id: str) -> None: ...


def safe(fn: Callable[[], object]) -> None:
    """Call ``fn``, logging its failure: what runs while an exception propagates must not hide it."""
    try:
        fn()
    except Exception:
        log.warning("migratrack: could not record an update", exc_info=True)


@contextmanager
def step(
    tracker: F, start: Callable[[], bool | None], complete: Callable[[], None],
    fail: Callable[[BaseException], None],
) -> Iterator[F]:
    """Run ``start``, yield the tracker, then ``complete``; or ``fail`` with the exception, which
    propagates. MigrationCancelled leaves the step as it is (its reports flushed). When ``start``
    answers True the step had already finished (a re-run): it is neither completed nor failed."""
    if start():
        yield tracker
        return
    try:
        yield tracker
    except MigrationCancelled:
        tracker.flush()
        raise
    except BaseException as exc:
        error = exc
        safe(lambda: fail(error))
        raise
    complete()


def track(
    tracker: Reporter, iterable: Iterable[T], phase: str, total: int | None, *, start: bool, complete: bool
) -> Iterator[T]:
    """What ``MigrationProgressTracker.track`` returns; the phase is started (and its total
    reported) now, before the first item is asked for."""
    try:
        length: int | None = len(iterable)  # type: ignore[arg-type]
    except TypeError:
        length = None
    if total is None:
        total = length
    if start and tracker.resume_phase(phase):
        return iter(())  # finished on an earlier run of the script: nothing to do again
    if total is not None:
        tracker.update_phase_progress(phase, total=check_count(total, "total"))
    if length is not None:
        return _track_sized(tracker, iter(iterable), length, phase, complete)
    return _track(tracker, iter(iterable), phase, complete)


def _track_sized(
    tracker: Reporter, it: Iterator[T], length: int, phase: str, complete: bool
) -> Generator[T, None, None]:
    # A sized iterable is consumed in slices delegated to C (`yield from islice`), so the
    # per-item cost is the generator hop alone; bookkeeping runs between slices, about every
    # 10 ms. One look ahead after each slice proves it was full; the last slice is counted
    # item by item, so an iterable shorter than its len() is never overcounted. When the
    # caller stops early, the items of the unfinished slice are not counted.
    n = 0
    step = 1
    last = time.monotonic()
    missing = object()
    carried = 0  # the looked-ahead item: yielded, counted with the next slice
    try:
        while n < length:
            chunk = min(step, length - n)
            if chunk == length - n:
                counted = 0
                for item in islice(it, chunk):
                    yield item
                    counted += 1
                tracker.add_progress(phase, carried + counted)
                carried = 0
                break
            yield from islice(it, chunk)
            ahead = next(it, missing)
            if ahead is missing:  # shorter than announced: the last slice's count is unknown
                if carried:
                    tracker.add_progress(phase, carried)
                carried = 0
                break
            tracker.add_progress(phase, carried + chunk)
            n += chunk + 1
            carried = 1
            yield cast(T, ahead)
            now = time.monotonic()
            elapsed, last = now - last, now
            if elapsed < 0.005 and step < 1 << 20:
                step <<= 1
            elif elapsed > 0.05 and step > 1:
                step >>= 1
        if carried:
            tracker.add_progress(phase, carried)
            carried = 0
        yield from it  # anything beyond the announced length
    finally:
        safe(tracker.flush)
    if complete:
        tracker.complete_phase(phase)


def _track(tracker: Reporter, it: Iterator[T], phase: str, complete: bool) -> Generator[T, None, None]:
    # The per-item work is one add and one compare; everything else runs every `step` items,
    # with `step` adapted so that this happens about every 10 ms.
    n = reported = 0
    step = 1
    next_check = 1
    last = time.monotonic()
    try:
        for item in it:
            n += 1
            if n >= next_check:
                now = time.monotonic()
                elapsed = now - last
                if elapsed < 0.005 and step < 1 << 20:
                    step <<= 1
                elif elapsed > 0.05 and step > 1:
                    step >>= 1
                last = now
                next_check = n + step
                tracker.add_progress(phase, n - reported)
                reported = n
            yield item
    finally:
        if n > reported:
            safe(lambda: tracker.add_progress(phase, n - reported))
    tracker.flush()
    if complete:
        tracker.complete_phase(phase)
