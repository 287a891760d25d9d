"""The one orchestrator: pure rules + a store + a clock. The SDK and the server both call it.

Time: a service stamps nothing itself unless its clock is the authority. By default (no
``clock``, or a :class:`LocalClock`) a write goes to the store with ``ts=None`` and the store's
clock stamps it (Redis, PostgreSQL: one clock for every worker on every machine, so a phase one
worker started and another completed lasts what it lasted, and every reader computes the same
estimate), or this machine's clock where the store has none (memory, SQLite: one machine). An
injected ``clock`` (any other callable) is the authority: every write is stamped with it —
what tests rely on. See "Time" in ``storage/base.py``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from migratrack.core.commands import Command
from migratrack.core.delta import ProgressDelta
from migratrack.core.eta import Estimate, estimate
from migratrack.core.models import (
    Alert,
    Event,
    MigrationState,
    NewEvent,
    Phase,
    build_state,
    check_count,
    check_progress,
    plan_signature,
)
from migratrack.core.plan import DEFAULT_LIMITS, Limits
from migratrack.core.rules import (
    Change,
    NeedsSubTasks,
    Rules,
    derived_error_rate,
    error_rate_threshold,
    normalise_metrics,
)
from migratrack.core.speed import SAMPLE_EVENTS, DataSample, data_samples, needs_samples
from migratrack.core.states import AlertLevel, Control, Status
from migratrack.core.summary import SubTaskPage, Summary, build_page, build_summary
from migratrack.core.views import Dashboard, Overview, build_dashboard, build_overview
from migratrack.errors import (
    ConfigurationError,
    InvalidInput,
    LimitExceeded,
    MigrationNotFound,
    NotFound,
    PlanMismatch,
    RuleViolation,
    StorageError,
    StorageUnavailable,
)
from migratrack.estimate_inputs import EstimateInputs
from migratrack.metrics.cost import Prices, cost_metrics, migration_cost
from migratrack.settings import Settings
from migratrack.storage import MergeResult, Storage, open_storage
from migratrack.storage.base import PhaseScope, ProgressMerge, RequestRecord, SubTaskScope
from migratrack.storage.base import check_op_id as store_check_op_id

Clock = Callable[[], datetime]

log = logging.getLogger("migratrack")

#: a worker whose clock is further than this from its store's is told so, once
CLOCK_SKEW_WARNING = timedelta(seconds=2)


#: one coalesced progress report: what a worker's loop said since its last write
ProgressUpdate = ProgressDelta


class PartiallyApplied(StorageUnavailable):
    """The store failed part-way through a batch of updates: what was written stays written, and
    only ``updates`` and ``increments`` are to be sent again (a retry of the whole batch without
    an operation id would count increments twice). A batch sent with an ``op_id`` may instead be
    sent again whole, with the same id: the parts already applied are acknowledged, not applied
    again — the safe retry when the failure leaves it unclear what was written."""

    def __init__(self, cause: Exception, updates: list[ProgressUpdate], increments: dict[str, int]) -> None:
        self.updates = updates
        self.increments = increments
        super().__init__(str(cause))


#: the longest operation id the service takes (it adds suffixes for a batch's parts)
MAX_OP_ID = 200
#: the most sub-tasks one page holds
MAX_PAGE = 1000


_UNSET = object()


def utc_now() -> datetime:
    return datetime.now(UTC)


class LocalClock:
    """A machine's own clock, given to a service as ``clock`` where it is not the authority on
    time: the store's clock stamps the writes where it has one; this one stamps them where the
    store has none (memory, SQLite), and is compared with the store's once (a warning past
    :data:`CLOCK_SKEW_WARNING`). The default clock. A test wraps a skewed clock in it to play a
    worker whose clock is wrong."""

    __slots__ = ("read",)

    def __init__(self, read: Clock = utc_now) -> None:
        self.read = read

    def __call__(self) -> datetime:
        return self.read()


def check_op_id(op_id: str | None) -> str | None:
    """The store's check, with room left for the suffixes of a batch's parts."""
    return store_check_op_id(op_id, MAX_OP_ID)


def part_id(op_id: str | None, part: int | str) -> str | None:
    """The operation id of one part of a write made of several store calls: a retried write
    derives the same ids, so each part is applied once whichever attempt reaches it first."""
    return None if op_id is None else f"{op_id}:{part}"


def fold_reports(updates: list[ProgressUpdate],
                 plain: Callable[[ProgressUpdate], bool]) -> tuple[list[int], list[ProgressUpdate]]:
    """A batch's reports with the plain ones on the same phase or sub-task folded together where
    applying the fold equals applying them in turn (``core/delta.py``: progress alone, ``add``
    counts, absolute ``done`` counts before any ``add``), and their positions: each folded report
    stands where its first part stood. Only ``plain`` reports fold (valid hot-path merges); any
    other (a total, metadata, a value the rules will refuse) is a fence: nothing folds across it
    on its phase or sub-task. Folding is deterministic, so a batch sent again folds the same way
    and its parts keep their operation ids."""
    if len({u.key for u in updates}) == len(updates):
        # the usual batch, one report a target (the SDK's coalescer folded them already): nothing
        # to fold, and no report validated twice on the way to the store
        return list(range(len(updates))), updates
    places: list[int] = []
    out: list[ProgressUpdate] = []
    open_at: dict[tuple[str, str | None], int] = {}  # key -> index in ``out`` of its open fold
    for i, u in enumerate(updates):
        key = u.key
        if not plain(u):
            open_at.pop(key, None)
            places.append(i)
            out.append(u)
            continue
        at = open_at.get(key)
        if at is not None and (u.done is None or not out[at].add):
            out[at] = out[at].merge(u)
            continue
        open_at[key] = len(out)
        places.append(i)
        out.append(u)
    return places, out


def alert_id_for(op_id: str) -> str:
    """The id of the alert an operation creates: a retry finds the alert its first attempt made."""
    return hashlib.sha256(op_id.encode()).hexdigest()[:16]


class MigrationService:
    """Commands and queries on migrations in one store. Thread-safe as far as its store is."""

    def __init__(self, storage: Storage | str, clock: Clock | None = None, *,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.storage = open_storage(storage)
        #: caps on the size of a plan this service accepts
        self.limits = limits
        self.clock: Clock = clock or LocalClock()
        #: an injected clock (anything but a LocalClock) stamps every write itself
        self.clock_is_authority = not isinstance(self.clock, LocalClock)
        # compared with the store's clock once, before the first write it does not stamp
        self._clock_checked = self.clock_is_authority or not self.storage.has_clock
        self._thresholds: dict[str, float] = {}
        #: the estimator's progress history and priors, kept per migration (estimate_inputs.py)
        self._eta_inputs = EstimateInputs(self.storage)
        self._prices: Prices | object | None = _UNSET

    def now(self) -> datetime:
        """This service's clock (see the module docstring for when it stamps writes)."""
        t = self.clock()
        if t.tzinfo is None:
            raise InvalidInput("the clock must return timezone-aware datetimes")
        return t

    def write_time(self) -> datetime | None:
        """The ``ts`` to give a write: None where the store's clock stamps it, else this
        service's clock (the authority, or a store without a clock)."""
        if not self._clock_checked:
            self._check_clock()
        if self.clock_is_authority or not self.storage.has_clock:
            return self.now()
        return None

    def read_time(self, state: MigrationState) -> datetime:
        """Now, for a view of ``state`` (durations, the estimate): the store's clock as it read
        the state, where the store's clock stamps the writes; else this service's."""
        if self.clock_is_authority or state.as_of is None:
            return self.now()
        return state.as_of

    def _check_clock(self) -> None:
        """Tell, once, that this machine's clock is far from the store's. Nothing depends on it
        (the store stamps the writes), but the operator should fix it: the process's own logs
        and anything it computes with its clock are off by as much."""
        store_now = self.storage.store_time()  # a store that is down fails here as the write would
        self._clock_checked = True
        if store_now is None:
            return
        skew = (self.now() - store_now).total_seconds()
        if abs(skew) > CLOCK_SKEW_WARNING.total_seconds():
            log.warning(
                "migratrack: this machine's clock is %.1f s %s the store's (%s); migratrack stamps "
                "times with the store's clock, but fix this one (NTP)",
                abs(skew), "ahead of" if skew > 0 else "behind", getattr(self.storage, "url", "the store"))

    # -- commands --------------------------------------------------------------------------

    def initialize(
        self,
        migration_id: str,
        phases: Iterable[Phase | Mapping[str, Any]],
        *,
        name: str | None = None,
        replace: bool = False,
        actor: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[MigrationState, bool]:
        """Create the migration; if it exists with the same plan, resume it (returns created=False)."""
        now = self.write_time() or self.storage.store_time() or self.now()
        state = build_state(migration_id, phases, now, name, limits=self.limits)
        if metadata:
            state.metadata.update(metadata)
        if not replace and self.storage.exists(migration_id):
            existing = self.storage.load(migration_id, sub_tasks="all")
            if plan_signature(existing) != plan_signature(state):
                raise PlanMismatch(
                    f"migration {migration_id!r} exists with a different plan (phases, dependencies, "
                    f"sub-tasks or approval gates differ); use another id, or initialize_migration(..., replace=True) "
                    f"to discard its history"
                )
            return existing, False
        event = NewEvent("migration.initialized", now, actor, {
            "name": state.name, "phases": [p.id for p in state.phases.values()], "replace": replace,
        })
        state.seq = self.storage.create(state, [event], replace=replace)
        self._thresholds.pop(migration_id, None)  # a replaced migration may have another threshold
        return state, True

    def run(
        self, migration_id: str, actor: str, command: Callable[[Rules], Any], *, sub_tasks: SubTaskScope = None,
        op_id: str | None = None, new_id: Callable[[], str] | None = None, phases: PhaseScope = None,
    ) -> Change:
        """``command`` through the rules under the migration's lock. With an ``op_id`` already
        applied, nothing runs and the answer is an empty Change (see ``storage/base.py``). The
        rules' now is the write's time as the store gives it (``state.as_of``).

        ``phases`` (with ``sub_tasks``) is what the command reads: None, the whole migration;
        else the header, these phases and their dependencies (a scoped load: what keeps a
        transition's cost independent of the migration's size)."""
        ts = self.write_time()

        def fn(state: MigrationState) -> Change:
            now = state.as_of or ts or self.now()
            rules = Rules(state, now, actor) if new_id is None else Rules(state, now, actor, new_id)
            command(rules)
            return rules.change

        try:
            return self.storage.transact(migration_id, fn, sub_tasks=sub_tasks, op_id=op_id, ts=ts, phases=phases)
        except NeedsSubTasks as need:  # nothing was written: once more with what the rule asks for
            return self.storage.transact(migration_id, fn, sub_tasks=need.phase_id, op_id=op_id, ts=ts,
                                         phases=phases)

    def execute(self, migration_id: str, command: Command, *, actor: str, op_id: str | None = None) -> Change:
        """Run one command (see ``core/commands.py``) under the migration's lock; once per
        ``op_id`` (a repeat answers an empty Change)."""
        change = self.run(migration_id, actor, command.apply, sub_tasks=command.scope, op_id=check_op_id(op_id),
                          phases=command.phase_scope)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s by %s: event %s", command.verb, actor, change.last_seq,
                      extra={"migration": migration_id, "phase": getattr(command, "phase", None)})
        return change

    def update_phase_progress(
        self,
        mid: str,
        phase_id: str,
        progress: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        done: int | None = None,
        total: int | None = None,
        add: int | None = None,
        actor: str,
        op_id: str | None = None,
    ) -> MergeResult | Change:
        """Hot path first (one atomic store operation); the rules decide whatever it cannot.
        Once per ``op_id``: the hot path and the rules record the same id, so whichever
        applied it, a repeat answers STALE or an empty Change."""
        value = None if progress is None else check_progress(progress)
        done_v = None if done is None else check_count(done, "done")
        add_v = None if add is None else check_count(add, "increment")
        check_op_id(op_id)
        if metadata is None and total is None:
            result = self.storage.merge_progress(
                mid, phase_id, None, progress=value, done=done_v, add=add_v, ts=self.write_time(), actor=actor,
                op_id=op_id
            )
            if result is not MergeResult.FALLBACK:
                return result
        return self.run(mid, actor, lambda r: r.update_phase_progress(
            phase_id, value, metadata, done=done_v, total=total, add=add_v), op_id=op_id, phases=(phase_id,))

    def _progress_by_rules(self, mid: str, u: ProgressUpdate, *, actor: str, op_id: str | None = None) -> Change:
        """The cold path of a progress report: under the lock, through the rules (what the hot
        path answered FALLBACK to, or what it cannot carry: metadata, a total)."""
        if u.sub_task is None:
            return self.run(mid, actor, lambda r: r.update_phase_progress(
                u.phase, u.progress, u.metadata or None, done=u.done, total=u.total, add=u.add), op_id=op_id,
                phases=(u.phase,))
        progress = u.progress
        if progress is None:
            raise InvalidInput("a sub-task takes a progress percentage")
        return self.run(mid, actor, lambda r: r.update_sub_task_progress(u.phase, str(u.sub_task), progress),
                        sub_tasks=(u.phase, str(u.sub_task)), op_id=op_id, phases=(u.phase,))

    def update_sub_task_progress(
        self, mid: str, phase_id: str, sub_id: str, progress: float, *, actor: str, op_id: str | None = None
    ) -> MergeResult | Change:
        value = check_progress(progress)
        check_op_id(op_id)
        result = self.storage.merge_progress(
            mid, phase_id, sub_id, progress=value, done=None, add=None, ts=self.write_time(), actor=actor,
            op_id=op_id
        )
        if result is not MergeResult.FALLBACK:
            return result
        return self._progress_by_rules(mid, ProgressUpdate(phase_id, sub_id, value), actor=actor, op_id=op_id)

    def create_alert(
        self, mid: str, level: str | AlertLevel, message: str, phase: str | None = None, *, actor: str,
        op_id: str | None = None, source: str = "user",
    ) -> Alert:
        """Raise an alert; once per ``op_id``: a repeat creates nothing and returns the alert the
        first one created. Its id is derived from the operation id, so this holds as long as the
        alert exists, also after the store's dedupe window."""
        created: list[Alert] = []
        scope = () if phase is None else (phase,)
        if check_op_id(op_id) is None:
            if source == "user":
                self._check_alert_cap(mid)
            self.run(mid, actor, lambda r: created.append(r.create_alert(level, message, phase, source)), phases=scope)
            return created[0]
        alert_id = alert_id_for(str(op_id))
        try:
            return self.storage.get_alert(mid, alert_id)
        except NotFound:
            pass  # not made yet; the store's record of the id settles a race with a repeat
        if source == "user":
            self._check_alert_cap(mid)
        self.run(mid, actor, lambda r: created.append(r.create_alert(level, message, phase, source)),
                 op_id=op_id,
                 new_id=lambda: alert_id, phases=scope)
        return created[0] if created else self.storage.get_alert(mid, alert_id)

    def _check_alert_cap(self, mid: str) -> None:
        """Refuse an alert past ``limits.max_alerts`` (checked before the write: alerts created at
        the same moment may pass it by their number)."""
        kept = self.storage.count_alerts(mid)
        if kept >= self.limits.max_alerts:
            raise LimitExceeded(
                f"migration {mid!r} keeps {kept} alerts, the most allowed ({self.limits.max_alerts}): a client "
                "raising this many is probably looping; fix it, or raise MIGRATRACK_MAX_ALERTS where the store is "
                "written (the server, or the SDK on a store)")

    def heartbeat(self, mid: str, *, actor: str) -> None:
        """A worker's sign of life, for stall detection (alerts/stall.py): one small write."""
        from migratrack.alerts.records import beat

        # the dispatcher compares it with the store's clock: stamp it with that clock too, so a
        # worker whose clock is off neither hides a stall nor makes one up
        at = self.write_time() or self.storage.store_time() or self.now()
        beat(self.storage, mid, at=at, actor=actor)

    def acknowledge_alert(self, mid: str, alert_id: str, by: str, *, actor: str) -> Alert:
        alert = self.storage.get_alert(mid, alert_id)
        self.run(mid, actor, lambda r: r.acknowledge_alert(alert, by), phases=())
        return alert

    def update_metrics(
        self,
        mid: str,
        values: Mapping[str, Any] | None = None,
        increments: Mapping[str, Any] | None = None,
        *,
        actor: str,
        op_id: str | None = None,
    ) -> None:
        """Set metrics and add to counters; once per ``op_id``."""
        values = values or {}
        increments = increments or {}
        sets, deltas = normalise_metrics(values, increments)  # validate before writing anything
        check_op_id(op_id)
        if sets:
            self.run(mid, actor, lambda r: r.update_metrics(values, increments), op_id=op_id, phases=())
            return
        if not deltas:
            return
        # a repeated id returns the counters as they are, and the threshold check below runs
        # again as if the increment were new: a check the first attempt did not get to is made
        # now (under an id of its own), one it made is not made twice
        counters = self.storage.increment_counters(mid, deltas, ts=self.write_time(), actor=actor, op_id=op_id)
        ok, failed = counters["successful_operations"], counters["failed_operations"]
        before_ok = ok - deltas.get("successful_operations", 0)
        before_failed = failed - deltas.get("failed_operations", 0)
        after = derived_error_rate(ok, failed, {})
        before = derived_error_rate(before_ok, before_failed, {})
        try:
            threshold = self._threshold(mid)
            # the rules decide (under the migration's lock) only when this increment moved the rate
            # across the threshold, or back across half of it (which re-arms the alert)
            up = after is not None and after > threshold and (before is None or before <= threshold)
            down = after is not None and before is not None and after <= threshold / 2 < before
            if up or down:
                self.run(mid, actor, lambda r: r.check_error_rate(), op_id=part_id(op_id, "rate"), phases=())
        except StorageError as exc:
            # the increments are in: a caller that sent them again would count them twice
            raise PartiallyApplied(exc, [], {}) from exc

    def _threshold(self, mid: str) -> float:
        if mid not in self._thresholds:
            self._thresholds[mid] = error_rate_threshold(self.storage.load(mid, sub_tasks=None, phases=()))
        return self._thresholds[mid]

    def apply_updates(
        self,
        mid: str,
        updates: Iterable[ProgressUpdate],
        increments: Mapping[str, int] | None = None,
        *,
        actor: str,
        op_id: str | None = None,
    ) -> Control | None:
        """Apply coalesced progress updates and counter increments in order. Each update is
        applied on its own: a rule violation in one is raised after the others were applied.
        Returns None: an in-process caller reads the control state itself when it needs it (a
        remote backend returns the state the server sent back with its reply).

        With an ``op_id``, the batch is applied once: the store calls it is split into (runs of
        merges, updates through the rules, the counter increment) each carry an id derived
        from it — update ``k`` of the list ``f"{op_id}:{k}"`` on whichever path applies it, the
        increments ``f"{op_id}:counters"`` — so the same batch sent again with the same id (the
        same updates in the same order, the same increments) applies exactly the parts that
        were not applied before, whatever failed and wherever.

        Plain reports on one phase or sub-task in a batch are folded into one where that is
        exact (``fold_reports``): one write and one event instead of one each; the folded report
        keeps the position, and so the operation id, of its first part."""
        first_error: Exception | None = None
        places, todo = fold_reports(list(updates), lambda u: self.as_merge(u) is not None)
        check_op_id(op_id)
        i = 0
        while i < len(todo):
            # a run of plain progress merges goes to the store in one call (one transaction where
            # the store can); whatever the store cannot decide goes through the rules, in order
            j = i
            merges: list[ProgressMerge] = []
            limit = len(todo) if self.storage.atomic_merge_many else i + 1
            while j < limit and (m := self.as_merge(todo[j], part_id(op_id, places[j]))) is not None:
                merges.append(m)
                j += 1
            try:
                if merges:
                    results = self.merge(mid, merges, actor=actor)
                else:
                    results, j = [MergeResult.FALLBACK], i + 1
                rest = [i + k for k, r in enumerate(results) if r is MergeResult.FALLBACK]
            except StorageError as exc:
                raise PartiallyApplied(exc, todo[i:], dict(increments or {})) from exc
            except (RuleViolation, NotFound, InvalidInput) as exc:
                first_error = first_error or exc
                rest = []
            for k in rest:
                u, uid = todo[k], part_id(op_id, places[k])
                try:
                    if merges:  # the store has answered FALLBACK already: straight to the rules
                        self._progress_by_rules(mid, u, actor=actor, op_id=uid)
                    elif u.sub_task is None:
                        self.update_phase_progress(mid, u.phase, u.progress, u.metadata or None, done=u.done,
                                                   total=u.total, add=u.add, actor=actor, op_id=uid)
                    elif u.progress is not None:
                        self.update_sub_task_progress(mid, u.phase, u.sub_task, u.progress, actor=actor, op_id=uid)
                except (RuleViolation, NotFound, InvalidInput) as exc:
                    first_error = first_error or exc
                except PartiallyApplied:
                    raise
                except StorageError as exc:
                    # each update is atomic: this one and those after it were not written
                    raise PartiallyApplied(exc, [u, *todo[j:]], dict(increments or {})) from exc
            i = j
        if increments:
            try:
                self.update_metrics(mid, None, increments, actor=actor, op_id=part_id(op_id, "counters"))
            except PartiallyApplied:
                raise
            except StorageError as exc:
                raise PartiallyApplied(exc, [], dict(increments)) from exc
        if first_error is not None:
            raise first_error
        return None

    def merge(self, mid: str, merges: Sequence[ProgressMerge], *, actor: str) -> list[MergeResult]:
        """Plain progress merges on the hot path, one result each: a single one is one statement
        (its own transaction); several are one transaction where the store can (``merge_many``)."""
        ts = self.write_time()
        if len(merges) > 1 and self.storage.atomic_merge_many:
            return self.storage.merge_many(mid, merges, ts=ts, actor=actor)
        return [self.storage.merge_progress(mid, m.phase_id, m.sub_task_id, progress=m.progress, done=m.done,
                                            add=m.add, ts=ts, actor=actor, op_id=m.op_id) for m in merges]

    @staticmethod
    def as_merge(u: ProgressUpdate, op_id: str | None = None) -> ProgressMerge | None:
        """The update as a plain hot-path merge (with this operation id), or None when the rules
        must see it (metadata, a total, or a value that does not validate)."""
        if u.metadata or u.total is not None:
            return None
        try:
            progress = None if u.progress is None else check_progress(u.progress)
            done = None if u.done is None else check_count(u.done, "done")
            add = None if u.add is None else check_count(u.add, "increment")
        except InvalidInput:
            return None
        if u.sub_task is not None and progress is None:
            return None
        return ProgressMerge(u.phase, u.sub_task, progress, done, add, op_id)

    # -- queries ---------------------------------------------------------------------------

    def list_ids(self) -> list[str]:
        return self.storage.list_ids()

    def exists(self, mid: str) -> bool:
        return self.storage.exists(mid)

    def state(self, mid: str) -> MigrationState:
        return self.storage.load(mid)

    def overview(self, mid: str) -> Overview:
        state = self.storage.load(mid)
        now = self.read_time(state)
        return build_overview(state, now, self._estimate(state, now))

    def dashboard(self, mid: str, *, alerts: int = 20, sub_tasks: bool = True) -> Dashboard:
        """``sub_tasks=False``: each phase's sub-task list left out (their counts stay)."""
        state = self.storage.load(mid)
        samples, since = self.speed_samples(state)
        now = self.read_time(state)
        d = build_dashboard(state, self.storage.alerts(mid, limit=alerts), now, self._estimate(state, now),
                            samples, since, sub_tasks=sub_tasks)
        cost = migration_cost(state, now, d.overview.estimate.remaining_seconds, self.prices)
        if cost is None:
            return d
        metrics = d.metrics.model_copy(update={"cost_metrics": cost_metrics(d.metrics.cost_metrics, cost)})
        return d.model_copy(update={"metrics": metrics})

    @property
    def prices(self) -> Prices | None:
        """The prices in the settings (MIGRATRACK_PRICE_*), read once; a plan's ``pricing`` wins."""
        if self._prices is _UNSET:
            try:
                s = Settings.from_env()
            except ConfigurationError as exc:  # a read must not fail on a setting it does not need
                log.warning("cost: the prices in the settings are not used: %s", exc)
                self._prices = None
                return None
            self._prices = Prices.of({}, Prices(per_gb=s.price_per_gb or 0.0,
                                                per_worker_hour=s.price_per_worker_hour or 0.0,
                                                fixed=s.price_fixed or 0.0))
        return self._prices if isinstance(self._prices, Prices) else None

    @prices.setter
    def prices(self, value: Prices | None) -> None:
        self._prices = value

    def speed_samples(self, state: MigrationState) -> tuple[list[DataSample] | None, datetime | None]:
        """The data-counter samples of the newest events, for the speed's sliding window, and the
        time of the oldest event read when the log goes further back (else None). None when the
        speed does not depend on them (finished, or reported by the script): the log is not read."""
        if not needs_samples(state):
            return None, None
        after = max(0, state.seq - SAMPLE_EVENTS)
        events = self.storage.events(state.id, after, SAMPLE_EVENTS)
        since = events[0].ts if after > 0 and events else None
        return data_samples(events), since

    def estimate(self, mid: str) -> Estimate:
        state = self.storage.load(mid)
        return self._estimate(state, self.read_time(state))

    def _estimate(self, state: MigrationState, now: datetime) -> Estimate:
        """The estimate with its history (the event log, folded) and priors (earlier runs)."""
        if state.finished_at is not None or state.cancelled_at is not None:
            return estimate(state, now)  # nothing left to estimate: no history to read
        inputs = self._eta_inputs
        return estimate(state, now, inputs.history(state), inputs.prior(state))

    def summary(self, mid: str) -> Summary:
        """Every phase with its sub-tasks counted by status (never listed): the cost of the phases."""
        state = self.storage.load(mid, sub_tasks=None)
        for pid, p in state.phases.items():
            if p.sub_task_counts is None:  # a phase stored before its counts were kept: count it once
                p.sub_task_counts = self.storage.load(mid, sub_tasks=pid, phases=[pid]).phases[pid].sub_task_counts
        return build_summary(state)

    def sub_tasks(self, mid: str, phase_id: str, *, status: str | Status | None = None, after: str | None = None,
                  limit: int = 100) -> SubTaskPage:
        """A page of one phase's sub-tasks in plan order, after the sub-task ``after``, in
        ``status`` if given; ``next_after`` names the next page's start. Costs the page."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be a whole number from 1 to {MAX_PAGE}, got {limit!r}")
        try:
            wanted = None if status is None else Status(status)
        except ValueError:
            raise InvalidInput(f"status must be one of {', '.join(s.value for s in Status)}; got {status!r}") from None
        # the migration, the phase and the cursor's sub-task must exist: a clear 404, not an empty page
        state = self.storage.load(mid, sub_tasks=None if after is None else (phase_id, after), phases=[phase_id])
        state.phase(phase_id)
        if after is not None:
            state.sub_task(phase_id, after)
        subs = self.storage.page_sub_tasks(mid, phase_id, status=None if wanted is None else wanted.value,
                                           after=after, limit=limit + 1)
        return build_page(phase_id, wanted, subs, limit)

    def control(self, mid: str) -> Control:
        return self.storage.control(mid)

    def events(self, mid: str, after: int = 0, limit: int = 1000) -> list[Event]:
        if not self.storage.exists(mid):
            raise MigrationNotFound(mid)
        return self.storage.events(mid, after, limit)

    # -- following the event log (the server's event hub) ------------------------------------

    @property
    def has_change_feed(self) -> bool:
        return self.storage.has_change_feed

    def claim_request(self, key: str, fingerprint: str) -> RequestRecord:
        """An HTTP Idempotency-Key, bound in the store to the request that first used it."""
        return self.storage.claim_request(key, fingerprint, ts=self.now())

    def finish_request(self, key: str, fingerprint: str, response: Any) -> None:
        self.storage.finish_request(key, fingerprint, response, ts=self.now())

    def last_seq(self, mid: str) -> int:
        return self.storage.load(mid, sub_tasks=None, phases=()).seq

    def events_after(self, mid: str, after: int, limit: int) -> list[Event]:
        """A page of the log, without checking the migration exists (a follower knows it does)."""
        return self.storage.events(mid, after, limit)

    def subscribe(self, mid: str, after: int, *, poll_interval: float) -> AsyncIterator[Event]:
        return self.storage.subscribe(mid, after, poll_interval=poll_interval)

    def alerts(self, mid: str, *, limit: int = 50, unacknowledged_only: bool = False) -> list[Alert]:
        if not self.storage.exists(mid):
            raise MigrationNotFound(mid)
        return self.storage.alerts(mid, limit=limit, unacknowledged_only=unacknowledged_only)
