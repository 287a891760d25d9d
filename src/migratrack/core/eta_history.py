"""Progress history for the estimator: each phase's progress over time, folded from the event log.

The estimator (``core/eta.py``) judges its candidate rates by how well each would have predicted
the progress already made, so it needs more than the current state: a few samples of each
phase's progress. They are folded, purely, from the migration's events (``phase.progress``,
``subtask.*``, ``phase.started``/``completed``), so a reader rebuilds them from the log at any
time; the service keeps the fold per migration and feeds it only the events it has not seen.

A long migration writes many events; each phase keeps at most :data:`MAX_SAMPLES` samples,
thinning the oldest half when it overflows (recent samples matter most, and the shape of the
whole run survives at a coarser grain).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from migratrack.core.models import Event, MigrationState
from migratrack.core.progress import _weights

MAX_SAMPLES = 512


@dataclass(frozen=True, slots=True)
class Sample:
    at: datetime
    #: the phase's effective progress, percent (sub-tasks rolled up)
    progress: float
    #: the done count when the phase reports counts (its fraction is re-read against the
    #: latest total, so a revised total re-scales the whole history)
    done: int | None = None
    #: the total the count was against at the time
    total: int | None = None


@dataclass(slots=True)
class ProgressHistory:
    """Samples per phase, oldest first, and the last event folded in."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)
    seq: int = 0
    # sub-task progress per phase, to roll up a phase reported through its sub-tasks
    _subs: dict[str, dict[str, float]] = field(default_factory=dict)

    def fold(self, state: MigrationState, events: Iterable[Event]) -> ProgressHistory:
        """Fold ``events`` (those after :attr:`seq`, in order) in; ``state`` gives the sub-task
        weights. Returns self."""
        for e in events:
            if e.seq <= self.seq:
                continue
            self.seq = e.seq
            pid = e.payload.get("phase")
            if not isinstance(pid, str) or pid not in state.phases or not e.type.startswith(("phase.", "subtask.")):
                continue
            if e.type == "phase.progress":
                total = e.payload.get("total")
                done = e.payload.get("done") if total is not None else None
                self._add(pid, Sample(e.ts, float(e.payload.get("progress", 0.0)), done, total))
            elif e.type == "phase.started":
                last = self.samples.get(pid)
                self._add(pid, Sample(e.ts, last[-1].progress if last else 0.0, last[-1].done if last else None))
            elif e.type == "phase.completed":
                self._add(pid, Sample(e.ts, 100.0))
            elif e.type.startswith("subtask.") and isinstance(e.payload.get("sub_task"), str):
                subs = self._subs.setdefault(pid, {})
                sid = e.payload["sub_task"]
                if e.type == "subtask.progress":
                    subs[sid] = max(subs.get(sid, 0.0), float(e.payload.get("progress", 0.0)))
                elif e.type in ("subtask.completed", "subtask.skipped"):
                    subs[sid] = 100.0
                else:
                    continue
                phase = state.phases[pid]
                ids = list(phase.sub_tasks)
                if not ids:
                    continue
                weights = _weights([phase.sub_tasks[s].estimated_seconds for s in ids])
                rolled = sum(w * subs.get(s, 0.0) for w, s in zip(weights, ids, strict=True)) / sum(weights)
                self._add(pid, Sample(e.ts, min(100.0, rolled)))
        return self

    def _add(self, pid: str, sample: Sample) -> None:
        rows = self.samples.setdefault(pid, [])
        rows.append(sample)
        if len(rows) > MAX_SAMPLES:
            half = len(rows) // 2
            rows[:half] = rows[:half:2]


def history_of(state: MigrationState, events: Iterable[Event]) -> ProgressHistory:
    """The history of a whole log, read at once."""
    return ProgressHistory().fold(state, events)
