"""``memory://``: the reference store. Process-local, thread-safe, gone when the process ends."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from migratrack.core.delta import ProgressDelta
from migratrack.core.models import Alert, Event, MigrationState, NewEvent, PhaseState, SubTaskState
from migratrack.core.rules import Change
from migratrack.core.states import Control
from migratrack.errors import AlertNotFound, MigrationAlreadyExists, MigrationNotFound
from migratrack.storage.base import (
    Codec,
    MergeResult,
    PhaseScope,
    RequestRecord,
    Storage,
    SubTaskScope,
    TokenRecord,
    Versioned,
    check_kv,
    check_op_id,
    parse_duration,
)
from migratrack.storage.url import StoreURL, store_url_for


@dataclass
class _Record:
    state: MigrationState
    events: list[Event] = field(default_factory=list)
    alerts: dict[str, Alert] = field(default_factory=dict)
    #: applied operation id -> when (the write's ts), oldest first
    ops: dict[str, datetime] = field(default_factory=dict)


class MemoryStorage(Storage):
    schemes = ("memory",)
    embedded = True
    has_change_feed = False

    def __init__(self, url: str | StoreURL = "memory://", codec: Codec | None = None,
                 *, retention: str | float | timedelta | None = None,
                 dedupe_window: str | float | timedelta | None = None, read_only: bool = False) -> None:
        location = store_url_for("memory", url)
        # read_only changes nothing here: a memory store starts empty and nothing else shares it
        super().__init__(codec, dedupe_window=dedupe_window if dedupe_window is not None
                         else location.options.get("dedupe_window"), read_only=read_only)
        self.location = location
        self.url = str(self.location)
        if retention is None:
            retention = self.location.options.get("retention")
        self.retention = parse_duration(retention) if retention is not None else None
        self._lock = threading.RLock()
        self._data: dict[str, _Record] = {}
        self._tokens: dict[str, TokenRecord] = {}
        #: Idempotency-Key -> (when claimed, its record), oldest first
        self._requests: dict[str, tuple[datetime, RequestRecord]] = {}
        self._purged_at = 0.0
        #: the dispatcher's documents: (kind, key) -> (version, encoded value)
        self._kv: dict[tuple[str, str], tuple[int, str]] = {}

    def _rec(self, migration_id: str) -> _Record:
        try:
            return self._data[migration_id]
        except KeyError:
            raise MigrationNotFound(migration_id) from None

    def _seen(self, rec: _Record, op_id: str | None, ts: datetime) -> bool:
        """True when ``op_id`` was applied within the window before ``ts`` (a duplicate)."""
        if check_op_id(op_id) is None:
            return False
        at = rec.ops.get(str(op_id))
        return at is not None and at >= self.dedupe_cutoff(ts)

    def _record_op(self, rec: _Record, op_id: str | None, ts: datetime) -> None:
        if op_id is None:
            return
        cutoff = self.dedupe_cutoff(ts)
        rec.ops.pop(op_id, None)  # re-recorded after it expired: to the young end
        rec.ops[op_id] = ts
        # oldest first: drop the expired ones from the front (writes' clocks may disagree a
        # little, so this stops at the first young one; the lookup checks the age anyway)
        while rec.ops:
            oldest = next(iter(rec.ops))
            if rec.ops[oldest] >= cutoff:
                break
            del rec.ops[oldest]

    @staticmethod
    def _time(rec: _Record, ts: datetime | None) -> datetime:
        """A write's time: ``ts`` (or this process's clock), never before the last event's."""
        at = ts or datetime.now(UTC)
        return max(at, rec.events[-1].ts) if rec.events else at

    def _append(self, rec: _Record, events: Sequence[NewEvent]) -> int:
        for e in events:
            rec.state.seq += 1
            # never before the event it follows, whoever's clock is behind
            ts = max(e.ts, rec.events[-1].ts) if rec.events else e.ts
            rec.events.append(Event(rec.state.id, rec.state.seq, e.type, ts, e.actor, copy.deepcopy(e.payload)))
        return rec.state.seq

    def create(self, state: MigrationState, events: Sequence[NewEvent], *, replace: bool = False) -> int:
        with self._lock:
            if state.id in self._data and not replace:
                raise MigrationAlreadyExists(state.id)
            stored = copy.deepcopy(state)
            stored.seq = 0
            rec = _Record(stored)
            self._data[state.id] = rec
            return self._append(rec, events)

    def read_phases(self, ctx: Any, state: MigrationState, ids: Sequence[str] | None) -> None:
        phases: dict[str, PhaseState] = ctx.state.phases
        for pid in phases if ids is None else ids:
            p = phases.get(pid)
            if p is None:
                continue
            saved, p.sub_tasks = p.sub_tasks, {}  # copied without its sub-tasks (under the lock)
            try:
                state.phases[pid] = copy.deepcopy(p)
            finally:
                p.sub_tasks = saved

    def read_sub_tasks(self, ctx: Any, state: MigrationState, scope: str | tuple[str, str]) -> None:
        phases: dict[str, PhaseState] = ctx.state.phases
        for pid in (list(state.phases) if scope == "all" else [scope[0] if isinstance(scope, tuple) else scope]):
            src, phase = phases.get(pid), state.phases.get(pid)
            if src is None or phase is None:
                continue
            if isinstance(scope, tuple):
                if scope[1] in src.sub_tasks:
                    phase.sub_tasks[scope[1]] = copy.deepcopy(src.sub_tasks[scope[1]])
            else:
                phase.sub_tasks.update(copy.deepcopy(src.sub_tasks))

    def _snapshot(self, rec: _Record, sub_tasks: SubTaskScope, phases: PhaseScope = None) -> MigrationState:
        src = rec.state
        if sub_tasks == "all" and phases is None:
            state = copy.deepcopy(src)
            self.counted(state, sub_tasks)
        else:
            state = MigrationState.from_header(copy.deepcopy(src.header_dict()))
            state.metrics = copy.deepcopy(src.metrics)
            state.seq = src.seq
            self.assemble(rec, state, sub_tasks, phases)
            if state.partial:
                return state
        counts: dict[str, int] = {}
        for a in rec.alerts.values():
            counts[a.level.value] = counts.get(a.level.value, 0) + 1
        state.alert_counts = counts
        state.unacknowledged_alerts = sum(1 for a in rec.alerts.values() if a.acknowledged_at is None)
        return state

    def load(self, migration_id: str, *, sub_tasks: SubTaskScope = "all",
             phases: PhaseScope = None) -> MigrationState:
        with self._lock:
            return self._snapshot(self._rec(migration_id), sub_tasks, phases)

    def exists(self, migration_id: str) -> bool:
        with self._lock:
            return migration_id in self._data

    def list_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._data, key=lambda k: self._data[k].state.created_at)

    def versions(self) -> dict[str, tuple[str, int]]:
        with self._lock:
            return {mid: (rec.state.created_at.isoformat(), rec.state.seq) for mid, rec in self._data.items()}

    def delete(self, migration_id: str) -> bool:
        with self._lock:
            return self._data.pop(migration_id, None) is not None

    def transact(
        self, migration_id: str, fn: Callable[[MigrationState], Change], *, sub_tasks: SubTaskScope = "all",
        op_id: str | None = None, ts: datetime | None = None, phases: PhaseScope = None,
    ) -> Change:
        with self._lock:
            rec = self._rec(migration_id)
            at = self._time(rec, ts)
            if self._seen(rec, op_id, at):
                return Change(last_seq=rec.state.seq)
            work = self._snapshot(rec, sub_tasks, phases)
            work.as_of = at
            change = fn(work)
            if not change.empty:
                self._record_op(rec, op_id, at)
            target = rec.state
            if change.header:
                target.apply_header(work.header_dict())
            if change.metrics:
                target.metrics = copy.deepcopy(work.metrics)
            for pid in change.phases:
                subs = target.phases[pid].sub_tasks
                target.phases[pid] = copy.deepcopy(work.phases[pid])
                target.phases[pid].sub_tasks = subs
            for pid, sid in change.sub_tasks:
                target.phases[pid].sub_tasks[sid] = copy.deepcopy(work.phases[pid].sub_tasks[sid])
            for a in change.new_alerts:
                rec.alerts[a.id] = copy.deepcopy(a)
            for a in change.updated_alerts:
                rec.alerts[a.id] = copy.deepcopy(a)
            change.last_seq = self._append(rec, change.events)
            if change.header and self.retention is not None and time.monotonic() - self._purged_at > 60:
                self._purged_at = time.monotonic()
                self.purge_finished(datetime.now(UTC) - self.retention)
            return change

    def merge_progress(
        self, migration_id: str, phase_id: str, sub_task_id: str | None, *,
        progress: float | None, done: int | None, add: int | None, ts: datetime | None, actor: str,
        op_id: str | None = None,
    ) -> MergeResult:
        with self._lock:
            rec = self._rec(migration_id)
            at = self._time(rec, ts)
            phase = rec.state.phases.get(phase_id)
            if phase is None:
                return MergeResult.FALLBACK
            if self._seen(rec, op_id, at):
                return MergeResult.STALE
            delta = ProgressDelta(phase_id, sub_task_id, progress, done, None, add)
            if sub_task_id is None:
                result, p, d = delta.apply(phase.status, phase.progress, phase.done, phase.total)
                if result == "applied":
                    phase.progress, phase.done = p, d
                    self._append(rec, [NewEvent("phase.progress", at, actor, {
                        "phase": phase_id, "progress": p, "done": d, "total": phase.total})])
                    self._record_op(rec, op_id, at)
                return MergeResult(result)
            sub = phase.sub_tasks.get(sub_task_id)
            if sub is None:
                return MergeResult.FALLBACK
            result, p, _ = delta.apply(sub.status, sub.progress, 0, None)
            if result == "applied":
                sub.progress = p
                self._append(rec, [NewEvent("subtask.progress", at, actor, {
                    "phase": phase_id, "sub_task": sub_task_id, "progress": p})])
                self._record_op(rec, op_id, at)
            return MergeResult(result)

    def increment_counters(
        self, migration_id: str, deltas: Mapping[str, int], *, ts: datetime | None, actor: str,
        op_id: str | None = None,
    ) -> dict[str, int]:
        with self._lock:
            rec = self._rec(migration_id)
            at = self._time(rec, ts)
            m = rec.state.metrics
            if not self._seen(rec, op_id, at):
                for name, delta in deltas.items():
                    setattr(m, name, getattr(m, name) + delta)
                self._append(rec, [NewEvent("metrics.updated", at, actor, {"increment": dict(deltas)})])
                self._record_op(rec, op_id, at)
            return {
                "successful_operations": m.successful_operations,
                "failed_operations": m.failed_operations,
                "total_data_migrated": m.total_data_migrated,
            }

    def page_sub_tasks(self, migration_id: str, phase_id: str, *, status: str | None = None,
                       after: str | None = None, limit: int = 100) -> list[SubTaskState]:
        with self._lock:
            rec = self._data.get(migration_id)
            phase = rec.state.phases.get(phase_id) if rec is not None else None
            if phase is None:
                return []
            ids = list(phase.sub_tasks)
            start = 0 if after is None else (ids.index(after) + 1 if after in phase.sub_tasks else len(ids))
            out = []
            for sid in ids[start:]:
                sub = phase.sub_tasks[sid]
                if status is None or sub.status.value == status:
                    out.append(copy.deepcopy(sub))
                    if len(out) >= limit:
                        break
            return out

    def control(self, migration_id: str) -> Control:
        with self._lock:
            return self._rec(migration_id).state.control

    def events(self, migration_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        with self._lock:
            evs = self._rec(migration_id).events
            # seq n lives at index n-1
            return list(evs[max(0, after):max(0, after) + limit])

    def count_alerts(self, migration_id: str) -> int:
        with self._lock:
            return len(self._rec(migration_id).alerts)

    def alerts(self, migration_id: str, *, limit: int = 50, unacknowledged_only: bool = False) -> list[Alert]:
        with self._lock:
            items = list(self._rec(migration_id).alerts.values())
        if unacknowledged_only:
            items = [a for a in items if a.acknowledged_at is None]
        items.reverse()  # newest first among equal timestamps too
        items.sort(key=lambda a: a.created_at, reverse=True)
        return [copy.deepcopy(a) for a in items[:limit]]

    def get_alert(self, migration_id: str, alert_id: str) -> Alert:
        with self._lock:
            try:
                return copy.deepcopy(self._rec(migration_id).alerts[alert_id])
            except KeyError:
                raise AlertNotFound(alert_id) from None

    def purge_finished(self, older_than: datetime) -> list[str]:
        with self._lock:
            gone = []
            for mid, rec in list(self._data.items()):
                ended = rec.state.finished_at or rec.state.cancelled_at
                if ended is not None and ended < older_than:
                    del self._data[mid]
                    gone.append(mid)
            return gone

    def claim_request(self, key: str, fingerprint: str, *, ts: datetime) -> RequestRecord:
        check_op_id(key)
        with self._lock:
            cutoff = self.dedupe_cutoff(ts)
            while self._requests:  # oldest first: forget the expired ones
                oldest = next(iter(self._requests))
                if self._requests[oldest][0] >= cutoff:
                    break
                del self._requests[oldest]
            found = self._requests.get(key)
            if found is None or found[0] < cutoff:
                self._requests.pop(key, None)
                found = self._requests[key] = (ts, RequestRecord(fingerprint))
            return RequestRecord(found[1].fingerprint, copy.deepcopy(found[1].response))

    def finish_request(self, key: str, fingerprint: str, response: Any, *, ts: datetime) -> None:
        with self._lock:
            found = self._requests.get(key)
            if found is not None and found[1].fingerprint == fingerprint:
                # through the codec as the other stores do: what is kept is what can be stored
                where = self.at_request(key)
                found[1].response = self.codec.loads(self.codec.dumps(response, where), where)

    def save_token(self, token: TokenRecord) -> None:
        with self._lock:
            self._tokens[token.id] = copy.deepcopy(token)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        with self._lock:
            for t in self._tokens.values():
                if t.token_hash == token_hash:
                    return copy.deepcopy(t)
        return None

    def list_tokens(self) -> list[TokenRecord]:
        with self._lock:
            return sorted((copy.deepcopy(t) for t in self._tokens.values()), key=lambda t: t.created_at)

    # -- the alert dispatcher's documents --------------------------------------------------------

    def kv_get(self, kind: str, key: str) -> Versioned | None:
        check_kv(kind, key)
        with self._lock:
            found = self._kv.get((kind, key))
        return None if found is None else Versioned(self.codec.loads(found[1], self.at_kv(kind, key)), found[0])

    def kv_put(self, kind: str, key: str, value: Any, *, expected: int | None = None) -> int | None:
        check_kv(kind, key)
        text = self.codec.dumps(value, self.at_kv(kind, key))
        with self._lock:
            found = self._kv.get((kind, key))
            version = found[0] if found else 0
            if expected is not None and expected != version:
                return None
            self._kv[(kind, key)] = (version + 1, text)
            return version + 1

    def kv_list(self, kind: str, prefix: str = "", *, limit: int = 1000) -> list[tuple[str, Versioned]]:
        with self._lock:
            found = sorted((k, v) for (kd, k), v in self._kv.items() if kd == kind and k.startswith(prefix))
        return [(k, Versioned(self.codec.loads(text, self.at_kv(kind, k)), version))
                for k, (version, text) in found[:limit]]

    def kv_delete(self, kind: str, key: str, *, expected: int | None = None) -> bool:
        check_kv(kind, key)
        with self._lock:
            found = self._kv.get((kind, key))
            if found is None or (expected is not None and expected != found[0]):
                return False
            del self._kv[(kind, key)]
            return True
