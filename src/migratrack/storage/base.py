"""The storage contract, written once. Every backend (memory, SQLite, Redis, PostgreSQL) implements it.

A store keeps, per migration:

* the **materialised state** — the migration's header (name, control state, pauses, times),
  its phases and sub-tasks (status, progress, done/total and the rest), and its metrics
  (three exact counters and last-written gauges);
* the **event log** — every change, numbered by a per-migration sequence that starts at 1,
  is strictly increasing and has no gaps; the audit trail and the source of live views;
* the **alerts** of the migration.

Two kinds of write, with different costs:

``transact(migration_id, fn)`` — the cold path (transitions, alerts, control, metadata):
    load the state, call ``fn(state)`` (which validates the command with the pure rules,
    mutates the state it was given and returns a :class:`~migratrack.core.rules.Change`),
    then write what the change names and append its events — atomically with respect to
    every other write on the same migration (a lock, a transaction or a compare-and-set with
    retry). If ``fn`` raises, nothing is written.

``merge_progress`` / ``increment_counters`` — the hot path (progress ticks, counter increments):
    one atomic store operation (one SQL statement or transaction, one Redis script call),
    never a read-modify-write of a whole document. Progress merges with ``max``; counters
    with ``+``. ``merge_progress`` answers FALLBACK when the rules must decide (the target is
    not in progress, or a done count would pass its total): the caller then uses ``transact``.

Reads (``load``, ``events``, ``alerts``, ``control``) see committed writes only.

Scoped loads — what keeps a transition's cost independent of the migration's size. ``load`` and
``transact`` take ``phases`` (None: every phase) and ``sub_tasks``. Given ``phases``, the store
reads the migration's header and metrics, the phases named (those that exist) and the phases they
depend on, and of sub-tasks only what ``sub_tasks`` names: none, one phase's, or one sub-task.
Such a state says ``partial``; its ``alert_counts`` are not filled. The rules decide what they
cannot see from counts the rules keep themselves, as statuses move: the migration's phases by
status (``phase_counts``, in the header) and each phase's sub-tasks by status
(``sub_task_counts``, in the phase's row). A store guarantees both are there in a partial state:
a migration stored before the counts were kept is loaded whole (its first transition writes them),
and a phase without counts has its sub-tasks read whole and counted. Transitions then write the
rows they changed, by key (never a position that needs the whole list). Every load of a phase's
sub-tasks in whole recounts them, so a count can never drift from the rows it counts for long.

Free text (names, descriptions, errors, messages, metadata) goes through ``self.codec`` so a
store can encrypt it at rest; numbers, statuses and ids stay plain so the hot path can merge
them in place.

Retention: a migration is *finished* once it completed (``finished_at``) or was cancelled
(``cancelled_at``). ``purge_finished(older_than)`` drops the finished ones that ended before a
cutoff; an active migration is never purged. Stores take a ``retention`` (seconds, or a
``?retention=30d`` URL parameter) after which finished migrations expire by themselves.

Exactly once: operation ids. The writes a client may have to send again — ``merge_progress``,
``merge_many`` (one id per merge, on :attr:`ProgressMerge.op_id`), ``increment_counters`` and
``transact`` — take an optional ``op_id``: any text up to :data:`MAX_OP_ID` characters, unique
per write (a UUID, or a batch's id with a suffix). The store records the id in the same atomic
step as the write (the Redis script, the PostgreSQL statement or transaction, the SQLite
statement or transaction, the memory store's lock) and keeps it for its ``dedupe_window`` (default
:data:`DEFAULT_DEDUPE_WINDOW`, or ``?dedupe_window=24h`` in the URL). A write whose id is
already recorded is acknowledged and not applied again:

* ``merge_progress`` / ``merge_many`` answer STALE for it (nothing changed by this call);
* ``increment_counters`` adds nothing, appends no event, and returns the current counters;
* ``transact`` does not call ``fn`` and returns an empty :class:`Change` whose ``last_seq`` is
  the migration's current sequence number.

An id is recorded only with a write that changed something: an APPLIED merge, an increment, a
transact whose change was written. A merge answered STALE or FALLBACK, or a transact whose
change is empty, leaves no record, so the same id stays free for the path that will apply it:
the caller sends a FALLBACK merge through ``transact`` under the merge's own id. Without an id,
a write is applied every time it is received (at least once on a retry).

The window is measured in the writes' own times (see Time below): an id recorded at ``t`` makes
any write with the same id made at or before ``t + dedupe_window`` a duplicate. It must outlast
every retry of a write — the SDK gives up after ``MIGRATRACK_RETRY_DEADLINE`` (300 s by
default) and may replay a spool file later — hence a day by default. Expired ids are pruned by
the stores as they go.

HTTP ``Idempotency-Key``s live in the store too, with the same window (``claim_request`` /
``finish_request``): a key, the fingerprint of the request that first used it, and the answer
it got, shared by every server on the store and kept across restarts.

Time: one clock per migration, whoever writes. A write's time stamps its events, and — through
``state.as_of``, which ``transact`` hands the rules — the times the rules record (a phase's start
and end, pauses) and measure (durations). Every write takes ``ts``:

* ``ts=None``: the store's time. A store with a clock of its own, that every writer on every
  machine reads (``has_clock``: Redis ``TIME``, PostgreSQL ``clock_timestamp()``), reads it
  inside the write's own script or statement — no extra round trip. A store without one
  (memory, SQLite: one machine) uses this process's clock.
* ``ts`` given: that time, the caller's clock, taken as the authority (an injected clock in
  tests, a server that stamps for its clients).

Either way a store keeps the time of each migration's last event and stamps every write at
``max(last, time)``: event times never go backwards in sequence order, even when a writer's
clock is behind another's. ``load`` reports the store's clock as ``as_of`` (None when it has no
clock of its own), so readers on different machines measure durations and estimates against
the same now.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

from migratrack.core.delta import ProgressDelta
from migratrack.core.models import (
    Alert,
    Event,
    MigrationState,
    NewEvent,
    PhaseState,
    SubTaskState,
    count_statuses,
)
from migratrack.core.rules import Change
from migratrack.core.states import Control
from migratrack.errors import ConfigurationError, InvalidInput, MigrationNotFound

#: phase fields a store keeps as plain values, merged in place by the hot path
PHASE_HOT_FIELDS = ("status", "progress", "done", "total", "sub_tasks")

#: which sub-tasks ``load`` materialises: every loaded phase's ("all"), one phase's (its id), one
#: sub-task (a ``(phase id, sub-task id)`` pair), or none
SubTaskScope = Literal["all"] | str | tuple[str, str] | None
#: which phases ``load`` materialises: every one (None), or these and the phases they depend on
PhaseScope = Sequence[str] | None

#: how long a store remembers an applied operation id (and an HTTP Idempotency-Key) by default
DEFAULT_DEDUPE_WINDOW = timedelta(hours=24)
#: the longest operation id or request key a store takes (the service takes 200 characters and
#: derives the ids of a batch's parts by adding a suffix)
MAX_OP_ID = 256


class MergeResult(str, Enum):
    #: the merge changed the state and appended one progress event
    APPLIED = "applied"
    #: the target is in progress but the update changes nothing (a stale or repeated value)
    STALE = "stale"
    #: the rules must decide: call transact() with the full command
    FALLBACK = "fallback"


@dataclass(slots=True)
class TokenRecord:
    """An API token as stored: only its SHA-256 hash is kept, never the token itself."""

    id: str
    name: str
    role: str
    token_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
    #: who created and who revoked it: a token's identity, or the local user of the CLI
    created_by: str | None = None
    revoked_by: str | None = None
    #: the migrations this token may act on; None: every migration
    migrations: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "role": self.role, "token_hash": self.token_hash,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "created_by": self.created_by, "revoked_by": self.revoked_by, "migrations": self.migrations,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TokenRecord:
        return cls(
            id=d["id"], name=d["name"], role=d["role"], token_hash=d["token_hash"],
            created_at=datetime.fromisoformat(d["created_at"]),
            revoked_at=datetime.fromisoformat(d["revoked_at"]) if d.get("revoked_at") else None,
            created_by=d.get("created_by"), revoked_by=d.get("revoked_by"), migrations=d.get("migrations"),
        )


#: the prefix of text written by an encrypting codec (see storage/crypto.py)
ENCRYPTED_PREFIX = "mtenc:"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | float | timedelta) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"2w"`` or a number of seconds -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value).lower())
        if not m:
            raise ConfigurationError(f"a duration looks like 30d, 12h, 90m, 45s or 2w; got {value!r}")
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if seconds <= 0:
        raise ConfigurationError(f"a duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


class ProgressMerge(ProgressDelta):
    """One hot-path progress merge: a :class:`ProgressDelta` without total or metadata, made
    from (and read as) the arguments of ``merge_progress``, with its operation id (None: none)."""

    __slots__ = ("op_id",)

    def __init__(self, phase_id: str, sub_task_id: str | None = None, progress: float | None = None,
                 done: int | None = None, add: int | None = None, op_id: str | None = None) -> None:
        super().__init__(phase_id, sub_task_id, progress, done, None, add)
        self.op_id = op_id

    @property
    def phase_id(self) -> str:
        return self.phase

    @property
    def sub_task_id(self) -> str | None:
        return self.sub_task


@dataclass(slots=True, frozen=True)
class Versioned:
    """A document of the alert dispatcher's (see ``kv_get``) and its version: 1 when first
    written, one more at every write; what a compare-and-set names."""

    value: Any
    version: int


@dataclass(slots=True)
class RequestRecord:
    """An HTTP ``Idempotency-Key`` as a store keeps it: the fingerprint of the request that first
    used the key and, once that request was answered, its answer (None until then)."""

    fingerprint: str
    response: Any = None


def check_op_id(op_id: str | None, limit: int = MAX_OP_ID) -> str | None:
    """``op_id`` if it is a usable operation id (or None); a clear error otherwise."""
    if op_id is not None and (not isinstance(op_id, str) or not op_id or len(op_id) > limit):
        raise InvalidInput(f"op_id must be a non-empty string of at most {limit} characters, got {op_id!r:.80}")
    return op_id


def check_kv(kind: str, key: str) -> None:
    """A clear error for a document kind or key a store cannot take (see ``Storage.kv_get``)."""
    if not isinstance(kind, str) or not kind or len(kind) > 64 or ":" in kind:
        raise InvalidInput(f"a document kind is 1 to 64 characters without ':', got {kind!r:.80}")
    if not isinstance(key, str) or not key or len(key) > MAX_OP_ID:
        raise InvalidInput(f"a document key is 1 to {MAX_OP_ID} characters, got {key!r:.80}")


def place(*parts: str) -> str:
    """Where a value is kept, as an encrypting codec binds it (its associated data): the
    migration, the field and the row's ids, joined by U+001F, which no id may hold."""
    return "\x1f".join(parts)


class Codec:
    """Turns JSON-able values into the text a store keeps, and back. Plain JSON by default.

    ``where`` names the value's place (see :func:`place`): an encrypting codec binds the
    ciphertext to it, so a value copied to another row, field or migration no longer reads."""

    def dumps(self, value: Any, where: str = "") -> str:
        return json.dumps(value, separators=(",", ":"), default=str)

    def loads(self, text: str | bytes, where: str = "") -> Any:
        if isinstance(text, bytes):
            text = text.decode()
        if text.startswith(ENCRYPTED_PREFIX):
            raise ConfigurationError(
                "this store holds encrypted data; set MIGRATRACK_ENCRYPTION_KEY to the key it was written with"
            )
        return json.loads(text)


class Storage(ABC):
    """Base class of every store; see the module docstring for the contract."""

    #: URL schemes this class serves, e.g. ("sqlite",)
    schemes: tuple[str, ...] = ()

    # What a store is, declared rather than guessed from its class: callers (the server, the
    # event hub) choose how to use a store from these, so a subclass or a new store is served
    # by what it says it can do.

    #: True when the store lives in this process or on a local disk and answers in microseconds
    #: (memory, SQLite): the server may call it on the event loop instead of a worker thread.
    #: False for a store across a network, whose calls can wait on a server.
    embedded: bool = False
    #: True when the store pushes new events to ``subscribe()`` as they are written (a Redis
    #: stream read with XREAD BLOCK, PostgreSQL LISTEN/NOTIFY), so a reader wakes on the write,
    #: also one made by another process. False: ``subscribe()`` polls ``events()`` every
    #: ``poll_interval``; a reader that needs news sooner must learn of writes some other way
    #: (the server's event hub is poked after its own writes).
    has_change_feed: bool = False
    #: True when the store has a clock of its own that every writer reads (Redis ``TIME``,
    #: PostgreSQL ``clock_timestamp()``): a write given no ``ts`` is stamped by it, inside the
    #: write's script or statement. False: the caller's clock is the time (memory, SQLite).
    has_clock: bool = False

    def __init__(self, codec: Codec | None = None, *,
                 dedupe_window: str | float | timedelta | None = None, read_only: bool = False) -> None:
        self.codec = codec or Codec()
        #: opened for reading only (``open_storage(url, read_only=True)``, ``?mode=ro`` on SQLite):
        #: opening creates, upgrades and purges nothing (a missing SQLite file is an error, not a
        #: new store), and writes are refused — by SQLite itself (``mode=ro``) and by PostgreSQL
        #: (read-only transactions); Redis has no such mode: only the opening is guaranteed not
        #: to write there. What ``migratrack status``, ``list``, ``events`` and ``watch`` use.
        self.read_only = read_only
        #: how long applied operation ids and Idempotency-Keys are remembered (``?dedupe_window=``)
        self.dedupe_window = DEFAULT_DEDUPE_WINDOW if dedupe_window is None else parse_duration(dedupe_window)
        self._queues: dict[str, threading.Lock] = {}
        self._queues_lock = threading.Lock()
        self._queues_pid = os.getpid()

    def dedupe_cutoff(self, ts: datetime) -> datetime:
        """Ids recorded before this are forgotten, for a write made at ``ts``."""
        return ts - self.dedupe_window

    def store_time(self) -> datetime | None:
        """The store's clock now (one round trip), or None for a store without a clock of its own
        (``has_clock`` False). For a caller that wants to compare its clock with the store's."""
        return None

    # -- migrations ------------------------------------------------------------------------

    @abstractmethod
    def create(self, state: MigrationState, events: Sequence[NewEvent], *, replace: bool = False) -> int:
        """Store a new migration and its first events; return the last sequence number.

        Raises MigrationAlreadyExists unless ``replace``, which drops the old migration (state,
        events and alerts) in the same atomic step.
        """

    @abstractmethod
    def load(self, migration_id: str, *, sub_tasks: SubTaskScope = "all",
             phases: PhaseScope = None) -> MigrationState:
        """The migration's state; ``state.seq`` is the last event's number and
        ``state.alert_counts`` / ``unacknowledged_alerts`` are filled (but in a scoped load:
        ``phases`` given, see the module docstring). Raises MigrationNotFound."""

    @abstractmethod
    def exists(self, migration_id: str) -> bool: ...

    @abstractmethod
    def list_ids(self) -> list[str]:
        """Ids of every stored migration, oldest first."""

    def versions(self) -> dict[str, tuple[str, int]]:
        """Every stored migration's version: ``(created_at, last event's seq)``, equal between two
        reads only if nothing in the migration changed in between (every change appends an event;
        the creation time tells a migration created again under the same id from the old one).
        For a reader that keeps what it computed from a state (the /metrics scrape). This default
        reads each migration's header; a store with one query for it overrides it."""
        out: dict[str, tuple[str, int]] = {}
        for mid in self.list_ids():
            try:
                state = self.load(mid, sub_tasks=None, phases=())
            except MigrationNotFound:
                continue
            out[mid] = (state.created_at.isoformat(), state.seq)
        return out

    @abstractmethod
    def delete(self, migration_id: str) -> bool:
        """Drop a migration with its events and alerts. True if it existed."""

    # -- writes ----------------------------------------------------------------------------

    @abstractmethod
    def transact(
        self,
        migration_id: str,
        fn: Callable[[MigrationState], Change],
        *,
        sub_tasks: SubTaskScope = "all",
        op_id: str | None = None,
        ts: datetime | None = None,
        phases: PhaseScope = None,
    ) -> Change:
        """Cold path: load (with the given phase and sub-task scope), apply ``fn``, write its Change and
        number its events, atomically. Sets ``change.last_seq``. Raises MigrationNotFound.

        ``fn`` gets the state with ``as_of`` set to the write's time: ``ts`` (or, None, the
        store's time), never before the migration's last event. The rules take their now from it.

        With an ``op_id`` already recorded, ``fn`` is not called and the answer is an empty
        Change (``last_seq``: the current sequence number); otherwise the id is recorded with
        the change, at the write's time."""

    @abstractmethod
    def merge_progress(
        self,
        migration_id: str,
        phase_id: str,
        sub_task_id: str | None,
        *,
        progress: float | None,
        done: int | None,
        add: int | None,
        ts: datetime | None,
        actor: str,
        op_id: str | None = None,
    ) -> MergeResult:
        """Hot path: max-merge a progress value (and for phases, a done count or increment).
        An ``op_id`` already recorded answers STALE and changes nothing; an APPLIED merge
        records its ``op_id`` (see the module docstring).

        Semantics, identical on every store (see ``core.rules.merge_values``): the target must
        be in progress; a sub-task takes only ``progress``; for a phase the new done count is
        ``max(done, done_arg) + add`` and, when a total is set and a count was given, the
        progress becomes at least ``min(100, done * 100 / total)``. A count that would pass
        the total is FALLBACK. On a change, append one ``phase.progress`` event
        (payload: phase, progress, done, total) or ``subtask.progress`` event (payload: phase,
        sub_task, progress)."""

    #: True when ``merge_many`` applies all its merges or none (one transaction)
    atomic_merge_many: bool = False

    def merge_many(
        self, migration_id: str, merges: Sequence[ProgressMerge], *, ts: datetime | None, actor: str
    ) -> list[MergeResult]:
        """Several ``merge_progress`` calls, with one result each, in order. Each merge carries
        its own operation id (``ProgressMerge.op_id``), so a batch that was partly applied
        before a failure can be sent again whole: the merges already applied answer STALE.
        A store that applies them in one transaction (all or none) says so with
        ``atomic_merge_many``; this default makes one call each, so a failure part-way leaves
        the earlier ones applied."""
        return [
            self.merge_progress(migration_id, m.phase_id, m.sub_task_id, progress=m.progress, done=m.done,
                                add=m.add, ts=ts, actor=actor, op_id=m.op_id)
            for m in merges
        ]

    @abstractmethod
    def increment_counters(
        self, migration_id: str, deltas: Mapping[str, int], *, ts: datetime | None, actor: str,
        op_id: str | None = None,
    ) -> dict[str, int]:
        """Hot path: add to the counters atomically, append one ``metrics.updated`` event
        (payload: {"increment": deltas}) and return the counters' new values. An ``op_id``
        already recorded adds nothing and returns the current values."""

    # -- reads -----------------------------------------------------------------------------

    @abstractmethod
    def page_sub_tasks(self, migration_id: str, phase_id: str, *, status: str | None = None,
                       after: str | None = None, limit: int = 100) -> list[SubTaskState]:
        """A page of one phase's sub-tasks in plan order: those after the sub-task ``after`` (None:
        from the first; an unknown id: none), in ``status`` if given, at most ``limit``. Costs the
        page (and, on Redis, the phase's list of ids), not the phase. An unknown migration or
        phase gives an empty page: the caller checks them (a scoped load)."""

    @abstractmethod
    def control(self, migration_id: str) -> Control:
        """The control state alone: the cheap read a worker makes to honour pause/cancel."""

    @abstractmethod
    def events(self, migration_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        """Events with ``seq > after``, oldest first, at most ``limit``."""

    def events_of_types(self, migration_id: str, after: int, upto: int, types: Collection[str]) -> list[Event]:
        """The events of ``types`` among those with ``after < seq <= upto``, oldest first: a range of
        numbers is a range of events (the sequence has no gaps), read without decoding the others.
        This default reads the range through ``events``; a store that can filter by type overrides it."""
        out: list[Event] = []
        while after < upto:
            batch = self.events(migration_id, after, min(1000, upto - after))
            if not batch:
                break
            out.extend(e for e in batch if e.seq <= upto and e.type in types)
            after = batch[-1].seq
        return out

    @abstractmethod
    def alerts(
        self, migration_id: str, *, limit: int = 50, unacknowledged_only: bool = False
    ) -> list[Alert]:
        """The newest alerts first."""

    @abstractmethod
    def get_alert(self, migration_id: str, alert_id: str) -> Alert:
        """One alert; raises AlertNotFound."""

    def count_alerts(self, migration_id: str) -> int:
        """How many alerts the migration keeps (what the cap on alerts is checked against); a
        store answers from an index or a counter, without reading the alerts."""
        return len(self.alerts(migration_id, limit=2**31))

    async def subscribe(
        self, migration_id: str, after: int = 0, *, poll_interval: float = 0.25
    ) -> AsyncIterator[Event]:
        """Every event with ``seq > after``, once and in order, then new ones as they are written;
        endless. This default polls ``events()``; stores with a change feed (Redis, PostgreSQL
        LISTEN/NOTIFY) override it to wake on writes instead of on a timer, and say so with
        ``has_change_feed``."""
        seq = after
        while True:
            async for event in self.stored_events(migration_id, seq):
                yield event
                seq = event.seq
            await asyncio.sleep(poll_interval)

    async def stored_events(self, migration_id: str, after: int) -> AsyncIterator[Event]:
        """Every event already stored with ``seq > after``, read page by page off the event loop."""
        seq = after
        while True:
            batch = await asyncio.to_thread(self.events, migration_id, seq, 1000)
            for event in batch:
                yield event
                seq = event.seq
            if len(batch) < 1000:
                return

    # -- retention ---------------------------------------------------------------------------

    @abstractmethod
    def purge_finished(self, older_than: datetime) -> list[str]:
        """Drop every finished (completed or cancelled) migration that ended before ``older_than``,
        with its events and alerts; return their ids. Active migrations are never dropped."""

    # -- HTTP Idempotency-Keys (the server's) ---------------------------------------------------

    @abstractmethod
    def claim_request(self, key: str, fingerprint: str, *, ts: datetime) -> RequestRecord:
        """Bind ``key`` (the server scopes it by token) to a request's ``fingerprint``, unless a
        request within the dedupe window bound it first; return the key's record either way,
        atomically (two servers claiming one key at once get the same record). A record older
        than the window is forgotten and replaced."""

    @abstractmethod
    def finish_request(self, key: str, fingerprint: str, response: Any, *, ts: datetime) -> None:
        """Keep the answer (JSON-able; encoded by the codec) of the request that holds ``key``
        with this ``fingerprint``; nothing if the key is bound to another request."""

    # -- API tokens (the server's; stored hashed) --------------------------------------------

    @abstractmethod
    def save_token(self, token: TokenRecord) -> None:
        """Insert or replace a token record (by id)."""

    @abstractmethod
    def find_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash, revoked or not; None if unknown."""

    @abstractmethod
    def list_tokens(self) -> list[TokenRecord]:
        """Every token record, oldest first."""

    # -- scoped loads shared by the stores ---------------------------------------------------

    def read_phases(self, ctx: Any, state: MigrationState, ids: Sequence[str] | None) -> None:
        """Add to ``state.phases`` the stored phases among ``ids`` (None: every one, in plan order),
        without sub-tasks. ``ctx``: the store's open transaction, connection or record."""
        raise NotImplementedError

    def read_sub_tasks(self, ctx: Any, state: MigrationState, scope: str | tuple[str, str]) -> None:
        """Add to the loaded phases the stored sub-tasks of one phase (its id) or one sub-task
        (a ``(phase id, sub-task id)`` pair), or of every phase (``"all"``), in plan order."""
        raise NotImplementedError

    def assemble(self, ctx: Any, state: MigrationState, sub_tasks: SubTaskScope, phases: PhaseScope) -> None:
        """Fill ``state`` (its header and metrics read) with the phases and sub-tasks a load
        asks for, through ``read_phases`` / ``read_sub_tasks``: the scoped load of the module
        docstring, once for every store."""
        state.partial = phases is not None and state.phase_counts is not None
        if state.partial:
            wanted = list(dict.fromkeys(phases or ()))
            self.read_phases(ctx, state, wanted)
            if len(state.phases) < len(wanted):
                # an unknown phase: read them all, so that the error names the phases there are
                state.partial = False
                state.phases.clear()
            else:
                self.read_phases(ctx, state, self.missing_dependencies(state.phases))
        if not state.partial:
            self.read_phases(ctx, state, None)
        if sub_tasks == "all" and state.partial:
            for pid in list(state.phases):
                self.read_sub_tasks(ctx, state, pid)
        elif sub_tasks is not None:
            self.read_sub_tasks(ctx, state, sub_tasks)
            if isinstance(sub_tasks, tuple) and sub_tasks[0] in state.phases \
                    and sub_tasks[1] not in state.phases[sub_tasks[0]].sub_tasks:
                sub_tasks = sub_tasks[0]  # an unknown sub-task: its phase's, to name them in the error
                state.phases[sub_tasks].sub_tasks.clear()
                self.read_sub_tasks(ctx, state, sub_tasks)
        for pid in self.counted(state, sub_tasks):
            state.phases[pid].sub_tasks.clear()
            self.read_sub_tasks(ctx, state, pid)
            self.counted(state, pid)

    @staticmethod
    def counted(state: MigrationState, sub_tasks: SubTaskScope) -> list[str]:
        """At the end of a load: count what was read in whole (every phase, unless partial; the
        sub-tasks of each phase read in whole) and return the loaded phases whose sub-task counts
        are still unknown, whose sub-tasks the store must read in whole (then call this again)."""
        if not state.partial:
            state.phase_counts = count_statuses(state.phases.values())
        whole = (list(state.phases) if sub_tasks == "all"
                 else [sub_tasks] if isinstance(sub_tasks, str) else [])
        for pid in whole:
            phase = state.phases.get(pid)
            if phase is not None:
                phase.sub_task_counts = count_statuses(phase.sub_tasks.values())
        return [pid for pid, p in state.phases.items() if p.sub_task_counts is None] if state.partial else []

    @staticmethod
    def missing_dependencies(found: Mapping[str, PhaseState]) -> list[str]:
        """The phases ``found`` depend on that are not among them: what a scoped load reads next."""
        return list(dict.fromkeys(d for p in found.values() for d in p.dependencies if d not in found))

    # -- the alert dispatcher's documents (alerts/outbox.py) -------------------------------------
    #
    # Small JSON documents by (kind, key): the delivery outbox, the dispatcher's lease, silences,
    # grouping buffers and rule state. Every write is a compare-and-set on the document's
    # version, atomic across every process on the store, so the dispatcher's logic is written
    # once (alerts/outbox.py) over these four calls. Values go through ``self.codec`` (they hold
    # alert messages). ``kind`` and ``key`` are non-empty text (a kind at most 64 characters, a
    # key at most :data:`MAX_OP_ID`).

    def kv_get(self, kind: str, key: str) -> Versioned | None:
        """The document, or None if there is none."""
        raise self._no_kv()

    def kv_put(self, kind: str, key: str, value: Any, *, expected: int | None = None) -> int | None:
        """Write a document; return its new version, or None when ``expected`` did not match.

        ``expected=None`` writes whatever is there; ``expected=0`` writes only if the document does
        not exist (an insert); ``expected=n`` only if its version is ``n`` (a compare-and-set)."""
        raise self._no_kv()

    def kv_list(self, kind: str, prefix: str = "", *, limit: int = 1000) -> list[tuple[str, Versioned]]:
        """The documents of ``kind`` whose key starts with ``prefix``, by key, at most ``limit``."""
        raise self._no_kv()

    def kv_delete(self, kind: str, key: str, *, expected: int | None = None) -> bool:
        """Delete a document (only at version ``expected`` when given); True if one was deleted."""
        raise self._no_kv()

    def _no_kv(self) -> NotImplementedError:
        # not abstract, so a wrapper or a store written before alert delivery still opens; every
        # store of migratrack's implements the four
        return NotImplementedError(f"{type(self).__name__} keeps no alert-dispatcher documents (kv_get, kv_put, "
                                   "kv_list, kv_delete): alerts cannot be dispatched from it")

    # -- row encoding shared by the stores ---------------------------------------------------

    def queue_for(self, migration_id: str) -> threading.Lock:
        """A lock of this process per migration: the threads that want the migration's lock in the
        store (a transition) queue here first, so only one of them at a time waits in the store —
        polling it (Redis) or holding a pooled connection while it waits (PostgreSQL). A forked
        child starts with none (a lock held at the fork would be no one's there)."""
        if self._queues_pid != os.getpid():
            self._queues, self._queues_lock, self._queues_pid = {}, threading.Lock(), os.getpid()
        with self._queues_lock:
            return self._queues.setdefault(migration_id, threading.Lock())

    def queue_holder(self, migration_id: str) -> bool:
        """Whether a thread of this process holds :meth:`queue_for`'s lock of the migration."""
        lock = self._queues.get(migration_id)
        return lock is not None and lock.locked()

    def phase_rest(self, migration_id: str, p: PhaseState) -> str:
        """A phase's fields but those the hot path merges in place (``PHASE_HOT_FIELDS``), encoded
        by the codec: what a store keeps beside its plain columns."""
        data = p.to_dict(with_sub_tasks=False)
        for k in PHASE_HOT_FIELDS:
            data.pop(k, None)
        return self.codec.dumps(data, self.at_phase(migration_id, p.id))

    def sub_task_rest(self, migration_id: str, phase_id: str, s: SubTaskState) -> str:
        """A sub-task's fields but its status and progress, encoded by the codec."""
        data = s.to_dict()
        data.pop("status")
        data.pop("progress")
        return self.codec.dumps(data, self.at_sub_task(migration_id, phase_id, s.id))

    def phase_of_row(self, migration_id: str, phase_id: str, status: str, progress: float, done: int,
                     total: int | None, rest: str | bytes) -> PhaseState:
        """A phase from its plain columns and the text ``phase_rest`` made: what every store reads."""
        d = self.codec.loads(rest, self.at_phase(migration_id, phase_id))
        d.update(id=phase_id, status=status, progress=progress, done=done, total=total)
        return PhaseState.from_dict(d)

    def sub_task_of_row(self, migration_id: str, phase_id: str, sub_task_id: str, status: str, progress: float,
                        rest: str | bytes) -> SubTaskState:
        """A sub-task from its status, its progress and the text ``sub_task_rest`` made."""
        d = self.codec.loads(rest, self.at_sub_task(migration_id, phase_id, sub_task_id))
        d.update(id=sub_task_id, status=status, progress=progress)
        return SubTaskState.from_dict(d)

    # where each kind of value is kept: what an encrypting codec binds it to

    @staticmethod
    def at_phase(migration_id: str, phase_id: str) -> str:
        return place(migration_id, "phase", phase_id)

    @staticmethod
    def at_sub_task(migration_id: str, phase_id: str, sub_task_id: str) -> str:
        return place(migration_id, "sub_task", phase_id, sub_task_id)

    @staticmethod
    def at_event(migration_id: str, event_type: str) -> str:
        return place(migration_id, "event", event_type)

    @staticmethod
    def at_alert(migration_id: str, alert_id: str) -> str:
        return place(migration_id, "alert", alert_id)

    @staticmethod
    def at_header(migration_id: str) -> str:
        return place(migration_id, "header")

    @staticmethod
    def at_gauges(migration_id: str) -> str:
        return place(migration_id, "gauges")

    @staticmethod
    def at_request(key: str) -> str:
        return place("", "request", key)

    @staticmethod
    def at_kv(kind: str, key: str) -> str:
        return place("", "kv", kind, key)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The store is unusable afterwards."""

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
