"""A progress delta: one report (or several, merged) on one phase or sub-task, and its one merge.

A worker's progress reports travel down as :class:`ProgressDelta`: the tracker coalesces them
(and puts back those a failed write returned), the remote backend folds its buffered batches,
the service hands them to a store, and the rules and the reference store apply them. The two
rules, written here once:

**Combining two deltas for one key** (:meth:`ProgressDelta.merge`, the earlier one is ``self``):
``progress`` and ``done`` take the larger value given, ``add`` is summed, and the later report
wins for ``total`` and for each ``metadata`` key.

**Applying a delta to a phase** (:meth:`ProgressDelta.advance`, and :meth:`ProgressDelta.apply`
for the hot path): the total becomes the delta's when it gives one; the done count becomes
``max(done, delta.done) + delta.add``; the progress becomes at least the delta's progress and,
when a total is known and the delta gave a count or a total, at least
``min(100, done * 100 / total)``. Progress and done never go down. The stores' SQL and Lua
compute the hot path the same way, in place; the contract and property tests hold them to it.

What coalescing guarantees. Applying ``a.merge(b)`` ends in the same progress, done, total and
metadata as applying ``a`` and then ``b``, in any state, when

* the reports give only ``add`` counts, or only absolute ``done`` counts, or every ``done``
  comes before every ``add`` — the max of the ``done`` values and the sum of the ``add`` values
  do not depend on where the other kind fell in between; and
* no report raises the total — progress keeps the highest ratio it ever reached, and with a
  fixed (or falling) total and a growing count that is the last one.

Progress alone, sub-task progress and metadata always coalesce exactly. Where it can differ:

* ``add`` then a later absolute ``done``: one by one the done count is ``max(done + add, d)``;
  coalesced it is ``max(done, d) + add``, which counts the added items again when ``d``
  already included them;
* a total raised in between: one by one, the ratio reached under the smaller total stays; the
  coalesced delta computes the ratio with the final total only, so progress can end lower;
* anything that is not a value: a transition between two reports (a report after the phase
  ended is ignored one by one, but the coalesced delta is applied or ignored as a whole; the
  tracker writes its pending reports before each of its own transitions), the number of
  ``phase.progress`` events, and the counts in an over-total warning's text.

Between workers nothing changes: a coalesced delta is written when it is flushed, so it lands
as if the worker had reported everything at that moment — another interleaving of the same
reports. When several workers share a key, the final state is independent of that
interleaving only if they all report ``add`` counts, or all absolute ``done`` counts, and
agree on the total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from migratrack.core.states import Status

#: what applying a delta in place did: changed the target, changed nothing, or needs the rules
Outcome = Literal["applied", "stale", "fallback"]


@dataclass(slots=True)
class ProgressDelta:
    """One phase's (``sub_task`` None) or sub-task's progress report, or several merged.

    A value: :meth:`merge` returns a new delta and never changes either of its operands, and
    nothing changes a delta once it was handed on (slotted rather than frozen: the tracker
    builds one on every progress call, and a frozen dataclass is several times slower to make).
    ``add`` of 0 and None mean the same. A sub-task report carries only ``progress``.
    ``service.ProgressUpdate`` is this class; ``storage.base.ProgressMerge`` is one without a
    total or metadata, made in ``merge_progress``'s argument order.
    """

    phase: str
    sub_task: str | None = None
    progress: float | None = None
    done: int | None = None
    total: int | None = None
    add: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str | None]:
        return self.phase, self.sub_task

    def merge(self, later: ProgressDelta) -> ProgressDelta:
        """One delta for this report followed by ``later`` (on the same key); see the module
        docstring for when applying it equals applying the two in turn."""
        # written for speed: the tracker merges on every progress call
        progress, done, add = self.progress, self.done, self.add
        if later.progress is not None and (progress is None or later.progress > progress):
            progress = later.progress
        if later.done is not None and (done is None or later.done > done):
            done = later.done
        if later.add:
            add = later.add + (add or 0)
        return ProgressDelta(
            self.phase, self.sub_task, progress, done,
            self.total if later.total is None else later.total,
            add,
            {**self.metadata, **later.metadata} if later.metadata else self.metadata,
        )

    def advance(self, progress: float, done: int, total: int | None) -> tuple[float, int, int | None]:
        """A phase's new (progress, done, total) after this delta, as the rules apply it: no
        status check, and a done count may pass the total (progress stops at 100)."""
        if self.total is not None:
            total = self.total
        counted = self.done is not None or bool(self.add) or self.total is not None
        if self.done is not None and self.done > done:
            done = self.done
        if self.add:
            done += self.add
        if self.progress is not None and self.progress > progress:
            progress = self.progress
        if total is not None and counted:
            ratio = 100.0 if total == 0 else min(100.0, done * 100.0 / total)
            if ratio > progress:
                progress = ratio
        return progress, done, total

    def apply(self, status: Status, progress: float, done: int, total: int | None) -> tuple[Outcome, float, int]:
        """The hot-path merge every store computes in place: (outcome, new progress, new done)
        for a phase (``done``, ``total``: its count and total) or a sub-task (pass 0 and None).

        "fallback" when the rules must decide: the target is not in progress, a sub-task report
        has no progress, the delta sets a total or metadata, or a count would pass the total.
        "stale" when nothing would change."""
        if status is not Status.IN_PROGRESS:
            return "fallback", progress, done
        if self.sub_task is not None:
            if self.progress is None:
                return "fallback", progress, done
            if self.progress <= progress:
                return "stale", progress, done
            return "applied", self.progress, done
        if self.total is not None or self.metadata:
            return "fallback", progress, done
        new_progress, new_done, _ = self.advance(progress, done, total)
        if total is not None and new_done > total and (self.done is not None or self.add):
            return "fallback", progress, done
        if new_progress == progress and new_done == done:
            return "stale", progress, done
        return "applied", new_progress, new_done

    def to_dict(self) -> dict[str, Any]:
        """The JSON of one update in a batch: the fields given, nothing else."""
        return {k: v for k, v in (
            ("phase", self.phase), ("sub_task", self.sub_task), ("progress", self.progress),
            ("done", self.done), ("total", self.total), ("add", self.add),
            ("metadata", self.metadata or None)) if v is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProgressDelta:
        return cls(d["phase"], d.get("sub_task"), d.get("progress"), d.get("done"), d.get("total"), d.get("add"),
                   dict(d.get("metadata") or {}))
