"""What the estimator needs beyond a migration's state: its progress history and its priors.

* History: the samples folded from the event log (``core/eta_history.py``). Kept per migration
  in this process and fed only the events written since, so an estimate costs one page of new
  events, not the whole log; a first read folds the last :data:`MAX_CATCH_UP` events at most; a
  migration re-created under the same id starts over.
* Priors: a migration whose ``metadata`` names an earlier run of the same plan under
  ``eta_prior`` (a migration id, or a list of them; e.g. a rehearsal) takes each phase's active
  duration there as that phase's prior, in place of its plan (the mean where several runs have
  it). Runs that do not exist or did not finish a phase are passed over.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime

from migratrack.core.eta_history import ProgressHistory
from migratrack.core.models import MigrationState
from migratrack.core.rules import rate_seconds
from migratrack.core.states import Status
from migratrack.errors import NotFound
from migratrack.storage import Storage

#: the metadata key naming earlier runs of the same plan
PRIOR_KEY = "eta_prior"
#: events read per round trip while catching up
PAGE = 5000
#: migrations whose history is kept (least recently used dropped first)
MAX_KEPT = 256
#: events a first read folds at most (the most recent ones)
MAX_CATCH_UP = 20_000


class EstimateInputs:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._lock = threading.Lock()
        self._histories: dict[str, tuple[datetime, ProgressHistory]] = {}
        self._priors: dict[str, dict[str, float]] = {}

    def history(self, state: MigrationState) -> ProgressHistory:
        with self._lock:
            kept = self._histories.pop(state.id, None)
        if kept is None or kept[0] != state.created_at or kept[1].seq > state.seq:
            # a first read of a long log starts at its recent end: the estimators judge the
            # recent past, and a status call must not fold millions of events
            kept = (state.created_at, ProgressHistory(seq=max(0, state.seq - MAX_CATCH_UP)))
        history = kept[1]
        while history.seq < state.seq:
            page = self.storage.events(state.id, history.seq, PAGE)
            if not page:
                break
            history.fold(state, page)
        with self._lock:
            self._histories[state.id] = kept
            while len(self._histories) > MAX_KEPT:
                self._histories.pop(next(iter(self._histories)))
        return history

    def prior(self, state: MigrationState) -> dict[str, float]:
        named = state.metadata.get(PRIOR_KEY)
        ids = [named] if isinstance(named, str) else [i for i in named if isinstance(i, str)] \
            if isinstance(named, list) else []
        sums: dict[str, list[float]] = {}
        for mid in ids:
            if mid == state.id:
                continue
            for pid, seconds in self._durations(mid).items():
                sums.setdefault(pid, []).append(seconds)
        return {pid: sum(v) / len(v) for pid, v in sums.items()}

    def _durations(self, mid: str) -> Mapping[str, float]:
        with self._lock:
            if mid in self._priors:
                return self._priors[mid]
        try:
            run = self.storage.load(mid, sub_tasks=None)
        except NotFound:
            return {}
        out = {
            p.id: p.prior_active_seconds + rate_seconds(run, p.started_at, p.completed_at)
            for p in run.phases.values()
            if p.status is Status.COMPLETED and p.started_at is not None and p.completed_at is not None
        }
        if run.finished_at is not None:  # a finished run no longer changes: keep it
            with self._lock:
                self._priors[mid] = out
        return out
