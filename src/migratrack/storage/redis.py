"""``redis://``, ``rediss://`` and ``redis+cluster://``: the store many workers on many machines share.

Key layout (version :data:`LAYOUT_VERSION`, kept in ``mt:layout``). Every key of one migration
carries the hash tag ``{<id>}`` so that, on Redis Cluster, they share a slot and the scripts
(``lua/*.lua``) stay atomic; migrations spread over the cluster's nodes::

    mt:{m}:h    hash   header (encoded), control, seq, counters, gauges, phase order, alert counts,
                       lt: the last event's time (epoch microseconds; events are stamped no earlier)
    mt:{m}:p    hash   per phase <pid>/s status, /p progress, /d done, /t total, /o sub-task order, /x rest
    mt:{m}:s    hash   per sub-task <pid>/<sid>/s status, /p progress, /x rest
    mt:{m}:e    stream the event log; entry id <seq>-0; its time in field us (epoch microseconds;
                       ts, ISO text, in entries written before one clock)
    mt:{m}:a    hash   alert id -> alert (encoded);  mt:{m}:an zset (order)  mt:{m}:au set (unacknowledged)
    mt:{m}:lock string held by a transition while it reads, validates and writes
    mt:{m}:o    zset   applied operation ids, scored by their write's ts (epoch s); pruned by
                       score as ids are added, and the key expires a dedupe window after its last add
    mt:ids      zset   migration ids by creation time (entries of expired migrations are pruned on read)
    mt:{tokens}:d / :x API tokens by id / id by hash
    mt:rq:<key> hash   an Idempotency-Key: fingerprint, claimed at, response; expires after the window
    mt:{kv}:<kind> hash the alert dispatcher's documents: key -> "<version>:<encoded value>"

Hot path: one ``EVALSHA`` per progress tick or counter increment. Cold path: ``SET lock NX``,
one script to read, the pure rules, one script that checks the lock is still ours and writes.
Hot-path scripts refuse to run while a transition holds the lock (the client retries within a
few milliseconds), so a transition never overwrites a concurrent max-merge.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from importlib.resources import files
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, SlotNotCoveredError
from redis.retry import Retry

from migratrack.core.models import Alert, Event, Metrics, MigrationState, NewEvent, PhaseState, SubTaskState
from migratrack.core.rules import Change
from migratrack.core.states import Control
from migratrack.errors import (
    AlertNotFound,
    MigrationAlreadyExists,
    MigrationNotFound,
    SchemaVersionError,
    StorageError,
    StorageUnavailable,
)
from migratrack.storage import retry
from migratrack.storage.base import (
    Codec,
    MergeResult,
    PhaseScope,
    ProgressMerge,
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

#: 2 added the operation-id sets (:o) and the Idempotency-Key hashes (rq:), both written as they
#: are needed: an older layout upgrades by its marker alone
LAYOUT_VERSION = 2
_SUFFIXES = ("h", "p", "s", "e", "a", "an", "au", "o")

# -- scripts: lua/<name>.lua -----------------------------------------------------------------

#: what the hot-path scripts answer when a transition holds the lock, or the migration is missing
_LOCKED = -1
_MISSING = -2


@cache
def _script(name: str) -> str:
    """The source of ``lua/<name>.lua``, shipped as package data beside this module."""
    return files("migratrack.storage").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def _esc(ident: str) -> str:
    """An id made safe inside a hash tag: no braces (they would end the tag early)."""
    return ident.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _keys(prefix: str, migration_id: str) -> dict[str, str]:
    base = f"{prefix}:{{{_esc(migration_id)}}}:"
    keys = {s: base + s for s in _SUFFIXES}
    keys["lock"] = base + "lock"
    return keys


def _write_keys(k: Mapping[str, str]) -> list[str]:
    return [k["h"], k["p"], k["s"], k["e"], k["a"], k["an"], k["au"], k["lock"], k["o"]]


def _float_text(value: float) -> str:
    return repr(float(value))


def _epoch(value: datetime) -> float:
    return value.timestamp()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(value: datetime) -> int:
    """Epoch microseconds, exactly: how the scripts keep and compare times (Redis TIME's unit)."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def _from_us(value: str | int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


def _time_arg(ts: datetime | None) -> str:
    """A write's time for a script: epoch microseconds, or '' for the server's TIME."""
    return "" if ts is None else str(_us(ts))


def _transient(exc: BaseException) -> bool:
    """An error worth a retry: the connection was lost or timed out (BusyLoadingError, a server
    still loading its data, is one), or a cluster is failing over."""
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, ClusterDownError, SlotNotCoveredError))


def _not_locked(res: Any) -> bool:
    """A hot-path script's answer other than "a transition holds the lock"."""
    code = res[0] if isinstance(res, list) else res
    return bool(code != _LOCKED)


def _connection_error(exc: Exception) -> StorageUnavailable:
    return StorageUnavailable(f"Redis is unreachable or failed: {exc}; check the server and the storage URL")


class RedisStorage(Storage):
    """The Redis (and Redis Cluster) store. See the module docstring for the key layout.

    URL options: ``?cluster=true`` (same as ``redis+cluster://``), ``?prefix=mt`` (key prefix),
    ``?retention=30d`` (finished migrations EXPIRE after this), ``?lock_timeout=30`` (seconds a transition may hold its
    migration's lock). ``reconnect`` bounds, in seconds, how long a call retries a lost connection.
    """

    schemes = ("redis", "rediss", "redis+cluster")
    embedded = False
    has_change_feed = True
    #: the server's TIME, read inside the scripts (and by the load that starts a transition)
    has_clock = True

    def __init__(
        self,
        url: str | StoreURL = "redis://127.0.0.1:6379/0",
        codec: Codec | None = None,
        *,
        retention: str | float | timedelta | None = None,
        lock_timeout: float | None = None,
        reconnect: float = 10.0,
        check_schema: bool = True,
        dedupe_window: str | float | timedelta | None = None,
        read_only: bool = False,
    ) -> None:
        location = store_url_for("redis", url)
        options = location.options
        super().__init__(codec, dedupe_window=dedupe_window if dedupe_window is not None
                         else options.get("dedupe_window"), read_only=read_only)
        self.location = location
        cluster_opt = options.get("cluster", "false").lower() in ("1", "true", "yes")
        self.cluster = self.location.scheme == "redis+cluster" or cluster_opt
        if retention is None:
            retention = options.get("retention")
        self.retention = parse_duration(retention) if retention is not None else None
        #: every key starts with this (``?prefix=``), so several deployments can share one Redis
        self.prefix = options.get("prefix", "mt")
        self._layout_key = f"{self.prefix}:layout"
        self._ids_key = f"{self.prefix}:ids"
        self._tokens_key = f"{self.prefix}:{{tokens}}:d"
        self._token_hash_key = f"{self.prefix}:{{tokens}}:x"
        lock_opt = options.get("lock_timeout")
        self.lock_timeout = float(lock_timeout if lock_timeout is not None else (lock_opt or 30.0))
        #: the URL, its password masked: what messages show
        self.url = str(self.location)
        self._conn_url = self.location.driver_url()
        # One layer of retries: _call() backs off (full jitter, capped at 1 s) for about
        # `reconnect` seconds; redis-py's own Retry, on by default, is switched off so a blip is
        # not retried twice over (a cluster client still follows MOVED/ASK and re-reads the
        # topology after a failed node, before it raises to _call)
        self._reconnect = retry.Backoff(first=0.05, cap=1.0, budget=reconnect)
        self._lock_wait = retry.Backoff(first=0.0005, cap=0.02, budget=self.lock_timeout + 5.0)
        self._r: redis.Redis | RedisCluster
        try:
            if self.cluster:
                self._r = RedisCluster.from_url(self._conn_url, decode_responses=True, socket_connect_timeout=5.0,
                                                socket_timeout=30.0, retry=Retry(NoBackoff(), 0))
            else:
                self._r = redis.Redis.from_url(self._conn_url, decode_responses=True, socket_connect_timeout=5.0,
                                               socket_timeout=30.0, retry=Retry(NoBackoff(), 0),
                                               health_check_interval=30)
        except redis.RedisError as exc:
            raise _connection_error(exc) from exc
        self._merge_many_script = self._r.register_script(_script("merge_many"))
        self._increment = self._r.register_script(_script("increment"))
        self._load_script = self._r.register_script(_script("load"))
        self._load_fields = self._r.register_script(_script("load_fields"))
        self._page = self._r.register_script(_script("page_sub_tasks"))
        self._write = self._r.register_script(_script("write"))
        self._unlock = self._r.register_script(_script("unlock"))
        self._alerts = self._r.register_script(_script("alerts"))
        self._save_token = self._r.register_script(_script("save_token"))
        self._claim_request = self._r.register_script(_script("claim_request"))
        self._finish_request = self._r.register_script(_script("finish_request"))
        self._kv_put = self._r.register_script(_script("kv_put"))
        if check_schema:  # False only for `migratrack upgrade-store`
            self._check_layout()

    # -- plumbing --------------------------------------------------------------------------

    def _keys(self, migration_id: str) -> dict[str, str]:
        return _keys(self.prefix, migration_id)

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run one Redis call, retried with back-off while the connection is lost (or the server
        is still loading its data, or a cluster fails over); lost for good: StorageUnavailable."""
        try:
            return retry.call(fn, self._reconnect, retry_if=_transient)
        except (redis.ConnectionError, redis.TimeoutError, ClusterDownError, SlotNotCoveredError) as exc:
            raise _connection_error(exc) from exc

    def _check_layout(self) -> None:
        found = self._call(lambda: self._r.get(self._layout_key))
        if found is None and self.read_only:
            return  # an empty store, read as one; its first writer marks it
        if found is None:
            self._call(lambda: self._r.set(self._layout_key, str(LAYOUT_VERSION), nx=True))
            found = self._call(lambda: self._r.get(self._layout_key))
        version = int(found)
        if version > LAYOUT_VERSION:
            raise SchemaVersionError(
                f"the Redis store at {self.url} uses key layout version {version}, newer than this "
                f"migratrack understands ({LAYOUT_VERSION}); upgrade migratrack (pip install -U migratrack)"
            )
        if version < LAYOUT_VERSION:
            raise SchemaVersionError(
                f"the Redis store at {self.url} uses key layout version {version}, older than this "
                f"migratrack's ({LAYOUT_VERSION}); run `migratrack upgrade-store --storage {self.url}` "
                f"to upgrade it in place"
            )

    def upgrade(self) -> tuple[int, int]:
        """Bring an older key layout to :data:`LAYOUT_VERSION`; returns (from, to)."""
        version = int(self._call(lambda: self._r.get(self._layout_key)) or LAYOUT_VERSION)
        if version > LAYOUT_VERSION:
            self._check_layout()  # raises: a newer layout is never downgraded
        # version 0 (pre-release) had the same per-migration keys, only the marker was missing;
        # version 1 had no operation-id sets or Idempotency-Key hashes, which are made as needed
        self._call(lambda: self._r.set(self._layout_key, str(LAYOUT_VERSION)))
        return version, LAYOUT_VERSION

    def close(self) -> None:
        self._r.close()

    @contextmanager
    def _holding(self, lock_key: str) -> Iterator[str]:
        """The migration's lock (its token), for a transition, a create or a delete. Threads of
        this process queue for it first (``queue_for``), so only one of them at a time asks
        Redis: two hundred workers' requests on one server no longer poll Redis by the dozen."""
        with self.queue_for(lock_key):
            yield self._acquire(lock_key)

    def _wait_local(self, lock_key: str) -> None:
        """Wait until no thread of this process holds the migration's lock (a hot-path script
        found it taken): cheaper than polling Redis when the holder is here."""
        if self.queue_holder(lock_key):
            with self.queue_for(lock_key):
                pass

    def _acquire(self, lock_key: str) -> str:
        token = secrets.token_hex(8)
        ttl_ms = int(self.lock_timeout * 1000)
        if not retry.until(lambda: self._call(lambda: self._r.set(lock_key, token, nx=True, px=ttl_ms)),
                           self._lock_wait, done=bool):
            raise StorageUnavailable(
                f"migration lock {lock_key} stayed taken for {self.lock_timeout + 5:.0f} s; "
                f"another writer is stuck or the lock_timeout is too short"
            )
        return token

    def _hot(self, fn: Callable[[], Any], lock_key: str) -> Any:
        """Run a hot-path script, waiting out a transition that holds the migration's lock."""
        def attempt() -> Any:
            found = self._call(fn)
            if not _not_locked(found):
                self._wait_local(lock_key)
            return found

        res = retry.until(attempt, self._lock_wait, done=_not_locked)
        if not _not_locked(res):
            raise StorageUnavailable("a transition held the migration's lock too long; try again")
        return res

    # -- encode / decode -------------------------------------------------------------------

    def _phase_fields(self, migration_id: str, p: PhaseState, *, full: bool) -> list[str]:
        f = p.id + "/"
        out = [f + "s", p.status.value, f + "x", self.phase_rest(migration_id, p)]
        if full:
            out += [f + "p", _float_text(p.progress), f + "d", str(p.done),
                    f + "t", "" if p.total is None else str(p.total),
                    f + "o", json.dumps(list(p.sub_tasks))]
        return out

    def _phase_write(self, migration_id: str, p: PhaseState) -> list[str]:
        # a transition writes the whole row: the lock keeps hot-path merges out meanwhile
        return self._phase_fields(migration_id, p, full=True)[:-2]

    def _sub_fields(self, migration_id: str, phase_id: str, s: SubTaskState) -> list[str]:
        f = f"{phase_id}/{s.id}/"
        return [f + "s", s.status.value, f + "p", _float_text(s.progress), f + "x",
                self.sub_task_rest(migration_id, phase_id, s)]

    def _header_fields(self, state: MigrationState) -> list[str]:
        ended = state.finished_at or state.cancelled_at
        return ["hdr", self.codec.dumps(state.header_dict(), self.at_header(state.id)), "ctl", state.control.value,
                "fin", "" if ended is None else repr(_epoch(ended))]

    def _metrics_fields(self, migration_id: str, m: Metrics) -> list[str]:
        return ["so", str(m.successful_operations), "fo", str(m.failed_operations),
                "td", str(m.total_data_migrated), "g", self.codec.dumps(m.gauges, self.at_gauges(migration_id))]

    def _event_rows(self, migration_id: str, events: Sequence[NewEvent], last: int) -> tuple[list[list[str]], int]:
        """The events as the write script takes them, each stamped no earlier than the one before
        (``last``: the migration's last event time, epoch microseconds); and the new last."""
        rows = []
        for e in events:
            last = max(last, _us(e.ts))
            rows.append([e.type, str(last), e.actor, self.codec.dumps(e.payload, self.at_event(migration_id, e.type))])
        return rows, last

    def _expire(self, state: MigrationState) -> int:
        """Seconds to EXPIRE the migration's keys by (finished), 0 to PERSIST them, -1 to leave."""
        if self.retention is None:
            return -1
        ended = state.finished_at or state.cancelled_at
        if ended is None:
            return 0
        left = (ended + self.retention - datetime.now(UTC)).total_seconds()
        return max(1, int(left))

    def _window_ms(self) -> str:
        return str(max(1, int(self.dedupe_window.total_seconds() * 1000)))

    def _dedupe_args(self, ts: datetime) -> list[str]:
        """ts and the dedupe cutoff as epoch seconds, and the window in ms: what the scripts
        take to check and record operation ids at a time known to the caller."""
        return [repr(_epoch(ts)), repr(_epoch(self.dedupe_cutoff(ts))), self._window_ms()]

    def _decode(self, migration_id: str, raw: list[Any]) -> MigrationState:
        h_flat, p_flat, s_flat = raw[:3]
        h = dict(zip(h_flat[::2], h_flat[1::2], strict=True))
        p = dict(zip(p_flat[::2], p_flat[1::2], strict=True))
        s = dict(zip(s_flat[::2], s_flat[1::2], strict=True))
        state = MigrationState.from_header(self.codec.loads(h["hdr"], self.at_header(migration_id)))
        state.metrics = Metrics(int(h.get("so", 0)), int(h.get("fo", 0)), int(h.get("td", 0)),
                                self.codec.loads(h["g"], self.at_gauges(migration_id)))
        for pid in json.loads(h["phases"]):
            f = pid + "/"
            phase = self._phase_from(migration_id, pid, [p.get(f + x) for x in self._PHASE])
            if phase is None:
                continue
            state.phases[pid] = phase
            if not s:
                continue
            for sid in json.loads(p[f + "o"]):
                sf = f"{pid}/{sid}/"
                x = s.get(sf + "x")
                if x is None:
                    continue
                phase.sub_tasks[sid] = self.sub_task_of_row(migration_id, pid, sid, s[sf + "s"], float(s[sf + "p"]), x)
        state.seq = int(h.get("seq", 0))
        state.alert_counts = {k[3:]: int(v) for k, v in h.items() if k.startswith("ac:") and int(v)}
        state.unacknowledged_alerts = int(h.get("unack", 0))
        return state

    def _event(self, migration_id: str, entry_id: str, fields: Mapping[str, str]) -> Event:
        payload = self.codec.loads(fields["p"], self.at_event(migration_id, fields["t"]))
        if "x" in fields:
            extra = json.loads(fields["x"])
            extra["progress"] = float(extra["progress"])
            payload.update(extra)
        # "us": epoch microseconds (the scripts stamp with TIME); "ts": ISO text, entries written
        # before the store kept one clock
        ts = _from_us(fields["us"]) if "us" in fields else datetime.fromisoformat(fields["ts"])
        return Event(migration_id, int(entry_id.split("-", 1)[0]), fields["t"], ts, fields["a"], payload)

    # -- migrations ------------------------------------------------------------------------

    def create(self, state: MigrationState, events: Sequence[NewEvent], *, replace: bool = False) -> int:
        k = self._keys(state.id)
        rows, last = self._event_rows(state.id, events, 0)
        h = self._header_fields(state) + self._metrics_fields(state.id, state.metrics) + [
            "created", repr(_epoch(state.created_at)), "phases", json.dumps(list(state.phases)), "seq", "0",
            "v", str(LAYOUT_VERSION), "lt", str(last)]
        p: list[str] = []
        s: list[str] = []
        for phase in state.phases.values():
            p += self._phase_fields(state.id, phase, full=True)
            for sub in phase.sub_tasks.values():
                s += self._sub_fields(state.id, phase.id, sub)
        doc = {"mode": "replace" if replace else "create", "h": h, "p": p, "s": s, "new_alerts": [],
               "updated_alerts": [], "events": rows, "expire": self._expire(state)}
        with self._holding(k["lock"]) as token:
            try:
                seq = int(self._call(lambda: self._write(keys=_write_keys(k), args=[token, json.dumps(doc)])))
            except redis.ResponseError as exc:
                self._release(k["lock"], token)
                if "MTEXISTS" in str(exc):
                    raise MigrationAlreadyExists(state.id) from None
                raise self._write_error(exc) from exc
        self._call(lambda: self._r.zadd(self._ids_key, {state.id: _epoch(state.created_at)}))
        return seq

    def _release(self, lock_key: str, token: str) -> None:
        with suppress(StorageUnavailable):  # the lock expires by itself
            self._call(lambda: self._unlock(keys=[lock_key], args=[token]))

    def _write_error(self, exc: redis.ResponseError) -> StorageError:
        if "MTLOCKLOST" in str(exc):
            return StorageError(
                f"a transition took longer than the lock timeout ({self.lock_timeout:g} s) and was not "
                f"written; retry it, or raise ?lock_timeout= in the storage URL"
            )
        return StorageError(f"Redis refused a write: {exc}")

    def _load_raw(self, k: Mapping[str, str], sub_tasks: SubTaskScope, op_id: str | None = None) -> list[Any] | None:
        """The load script's answer: the migration's hashes, the server's TIME and (given an
        operation id) the id's score; None if the migration does not exist."""
        if isinstance(sub_tasks, tuple):  # one sub-task, on the whole-migration path: its phase's
            sub_tasks = sub_tasks[0]
        scope = "*" if sub_tasks == "all" else ("" if sub_tasks is None else sub_tasks)
        keys, args = [k["h"], k["p"], k["s"]], [scope]
        if op_id is not None:
            keys.append(k["o"])
            args.append(op_id)
        res: list[Any] | None = self._call(lambda: self._load_script(keys=keys, args=args))
        return res

    def load(self, migration_id: str, *, sub_tasks: SubTaskScope = "all",
             phases: PhaseScope = None) -> MigrationState:
        if phases is not None:
            raw, state = self._load_scoped(self._keys(migration_id), migration_id, sub_tasks, phases)
        else:
            found = self._load_raw(self._keys(migration_id), sub_tasks)
            if not found:
                raise MigrationNotFound(migration_id)
            raw, state = found, self._decode(migration_id, found)
            self.counted(state, sub_tasks)
        state.as_of = _from_us(self._now_us(raw))
        return state

    # -- scoped loads: named fields only (see "Scoped loads" in storage/base.py) ---------------

    _HEADER = ("hdr", "so", "fo", "td", "g", "seq", "lt")
    _PHASE = ("s", "p", "d", "t", "x")

    def _fields(self, k: Mapping[str, str], want: Mapping[str, list[str]], op_id: str | None = None) -> list[Any]:
        keys, args = [k["h"], k["p"], k["s"]], [json.dumps(want)]
        if op_id is not None:
            keys.append(k["o"])
            args.append(op_id)
        res: list[Any] = self._call(lambda: self._load_fields(keys=keys, args=args))
        return res

    def _phase_from(self, migration_id: str, pid: str, vals: Sequence[str | None]) -> PhaseState | None:
        status, progress, done, total, rest = vals
        if status is None or rest is None:
            return None
        return self.phase_of_row(migration_id, pid, status, float(progress or 0), int(done or 0),
                                 int(total) if total else None, rest)

    def _load_scoped(self, k: Mapping[str, str], migration_id: str, sub_tasks: SubTaskScope,
                     phases: Sequence[str], op_id: str | None = None) -> tuple[list[Any], MigrationState]:
        """One script call for the header, the phases named and the sub-task named (the common
        transition: no more), then what ``assemble`` still asks for. Returns the first call's
        answer in the shape of the load script's (header as a flat list, TIME, op score)."""
        named = list(dict.fromkeys(phases))
        one = sub_tasks if isinstance(sub_tasks, tuple) else None
        want = {"h": list(self._HEADER), "p": [f"{pid}/{f}" for pid in named for f in self._PHASE],
                "s": [f"{one[0]}/{one[1]}/{f}" for f in ("s", "p", "x")] if one else []}
        raw = self._fields(k, want, op_id)
        if not raw:
            raise MigrationNotFound(migration_id)
        h = dict(zip(self._HEADER, raw[0], strict=True))
        state = MigrationState.from_header(self.codec.loads(h["hdr"], self.at_header(migration_id)))
        state.metrics = Metrics(int(h["so"] or 0), int(h["fo"] or 0), int(h["td"] or 0),
                                self.codec.loads(h["g"], self.at_gauges(migration_id)))
        state.seq = int(h["seq"] or 0)
        n = len(self._PHASE)
        pre_p = {pid: raw[1][i * n:(i + 1) * n] for i, pid in enumerate(named)}
        pre_s = {one: raw[2]} if one else {}
        self.assemble((k, pre_p, pre_s), state, sub_tasks, phases)
        flat_h = [x for kv in h.items() for x in kv]
        return [flat_h, [], [], raw[3], raw[4]], state

    def read_phases(self, ctx: Any, state: MigrationState, ids: Sequence[str] | None) -> None:
        k, pre_p, _ = ctx
        if ids is None:  # every phase, in plan order: the order is in the header hash
            order = json.loads(self._call(lambda: self._r.hget(k["h"], "phases")) or "[]")
            flat = self._call(lambda: self._r.hgetall(k["p"]))
            for pid in order:
                phase = self._phase_from(state.id, pid, [flat.get(f"{pid}/{f}") for f in self._PHASE])
                if phase is not None:
                    state.phases[pid] = phase
            return
        todo = [pid for pid in ids if pid not in pre_p]
        if todo:
            vals = self._fields(k, {"p": [f"{pid}/{f}" for pid in todo for f in self._PHASE]})[1]
            n = len(self._PHASE)
            pre_p.update({pid: vals[i * n:(i + 1) * n] for i, pid in enumerate(todo)})
        for pid in ids:
            phase = self._phase_from(state.id, pid, pre_p[pid])
            if phase is not None:
                state.phases[pid] = phase

    def read_sub_tasks(self, ctx: Any, state: MigrationState, scope: str | tuple[str, str]) -> None:
        k, _, pre_s = ctx
        if scope == "all":
            for pid in list(state.phases):
                self.read_sub_tasks(ctx, state, pid)
            return
        if isinstance(scope, tuple):
            pid, sids = scope[0], [scope[1]]
            vals = pre_s.get(scope) or self._fields(k, {"s": [f"{pid}/{scope[1]}/{f}" for f in ("s", "p", "x")]})[2]
        else:
            pid = scope
            sids = json.loads(self._fields(k, {"p": [f"{pid}/o"]})[1][0] or "[]")
            vals = self._fields(k, {"s": [f"{pid}/{sid}/{f}" for sid in sids for f in ("s", "p", "x")]})[2]
        phase = state.phases.get(pid)
        if phase is None:
            return
        for i, sid in enumerate(sids):
            status, progress, rest = vals[i * 3:i * 3 + 3]
            if status is None or rest is None:
                continue
            phase.sub_tasks[sid] = self.sub_task_of_row(state.id, pid, sid, status, float(progress), rest)

    @staticmethod
    def _last_us(raw: list[Any]) -> int:
        """The migration's last event time (epoch microseconds) in a load script's answer."""
        h = raw[0]
        for i in range(0, len(h), 2):
            if h[i] == "lt":
                return int(h[i + 1])
        return 0

    def _now_us(self, raw: list[Any], ts: datetime | None = None) -> int:
        """A write's time given a load script's answer: ``ts`` or the server's TIME, never before
        the migration's last event."""
        seconds, micros = raw[3]
        now = int(seconds) * 1_000_000 + int(micros) if ts is None else _us(ts)
        return max(now, self._last_us(raw))

    def store_time(self) -> datetime:
        seconds, micros = self._call(self._r.time)
        return _from_us(int(seconds) * 1_000_000 + int(micros))

    def exists(self, migration_id: str) -> bool:
        return bool(self._call(lambda: self._r.exists(self._keys(migration_id)["h"])))

    def list_ids(self) -> list[str]:
        ids: list[str] = self._call(lambda: self._r.zrange(self._ids_key, 0, -1))
        if not ids:
            return []
        if self.cluster:
            alive = [bool(self._call(partial(self._r.exists, self._keys(i)["h"]))) for i in ids]
        else:
            pipe = self._r.pipeline(transaction=False)
            for i in ids:
                pipe.exists(self._keys(i)["h"])
            alive = [bool(x) for x in self._call(pipe.execute)]
        gone = [i for i, ok in zip(ids, alive, strict=True) if not ok]
        if gone:  # expired or dropped behind our back: prune the index
            self._call(lambda: self._r.zrem(self._ids_key, *gone))
        return [i for i, ok in zip(ids, alive, strict=True) if ok]

    def delete(self, migration_id: str) -> bool:
        k = self._keys(migration_id)
        with self._holding(k["lock"]) as token:
            try:
                n = int(self._call(lambda: self._r.delete(*[k[s] for s in _SUFFIXES])))
            finally:
                self._release(k["lock"], token)
        self._call(lambda: self._r.zrem(self._ids_key, migration_id))
        return n > 0

    # -- writes ----------------------------------------------------------------------------

    def transact(
        self, migration_id: str, fn: Callable[[MigrationState], Change], *, sub_tasks: SubTaskScope = "all",
        op_id: str | None = None, ts: datetime | None = None, phases: PhaseScope = None,
    ) -> Change:
        check_op_id(op_id)
        k = self._keys(migration_id)
        with self._holding(k["lock"]) as token:
            return self._transact(k, migration_id, token, fn, sub_tasks, op_id, ts, phases)

    def _transact(self, k: Mapping[str, str], migration_id: str, token: str,
                  fn: Callable[[MigrationState], Change], sub_tasks: SubTaskScope, op_id: str | None,
                  ts: datetime | None, phases: PhaseScope) -> Change:
        written = False
        try:
            # under the lock: no write with this id can land meanwhile, and the last event time
            # the load reads stays the last until this write
            if phases is not None:
                raw, state = self._load_scoped(k, migration_id, sub_tasks, phases, op_id)
            else:
                found = self._load_raw(k, sub_tasks, op_id)
                if not found:
                    raise MigrationNotFound(migration_id)
                raw, state = found, self._decode(migration_id, found)
                self.counted(state, sub_tasks)
            last = self._last_us(raw)
            state.as_of = at = _from_us(self._now_us(raw, ts))
            score = raw[4]
            if score is not None and float(score) >= _epoch(self.dedupe_cutoff(at)):
                return Change(last_seq=state.seq)
            change = fn(state)
            if change.empty:
                change.last_seq = state.seq
                return change
            rows, last = self._event_rows(migration_id, change.events, last)
            h = ["lt", str(last)]
            if change.header:
                h += self._header_fields(state)
            if change.metrics:
                h += self._metrics_fields(migration_id, state.metrics)
            p: list[str] = []
            for pid in change.phases:
                p += self._phase_write(migration_id, state.phases[pid])
            s: list[str] = []
            for pid, sid in change.sub_tasks:
                s += self._sub_fields(migration_id, pid, state.phases[pid].sub_tasks[sid])
            doc = {
                "mode": "update", "h": h, "p": p, "s": s,
                "new_alerts": [[a.id, a.level.value, self.codec.dumps(a.to_dict(), self.at_alert(migration_id, a.id)),
                                int(a.acknowledged_at is not None)] for a in change.new_alerts],
                "updated_alerts": [[a.id, self.codec.dumps(a.to_dict(), self.at_alert(migration_id, a.id)),
                                    int(a.acknowledged_at is not None)]
                                   for a in change.updated_alerts],
                "events": rows,
                # every write re-applies the expiry: keys created after the finish (alerts) get it too
                "expire": self._expire(state),
            }
            if op_id is not None:
                doc["op"] = [op_id, *self._dedupe_args(at)]
            try:
                change.last_seq = int(self._call(lambda: self._write(keys=_write_keys(k),
                                                                     args=[token, json.dumps(doc)])))
            except redis.ResponseError as exc:
                if "MTMISSING" in str(exc):
                    raise MigrationNotFound(migration_id) from None
                raise self._write_error(exc) from exc
            written = True  # the write script released the lock
            return change
        finally:
            if not written:
                self._release(k["lock"], token)

    def merge_progress(
        self, migration_id: str, phase_id: str, sub_task_id: str | None, *,
        progress: float | None, done: int | None, add: int | None, ts: datetime | None, actor: str,
        op_id: str | None = None,
    ) -> MergeResult:
        [result] = self.merge_many(migration_id, [ProgressMerge(phase_id, sub_task_id, progress, done, add, op_id)],
                                   ts=ts, actor=actor)
        return result

    #: merge_many is one script call: its merges run together, nothing interleaves with them
    atomic_merge_many = True

    def merge_many(
        self, migration_id: str, merges: Sequence[ProgressMerge], *, ts: datetime | None, actor: str
    ) -> list[MergeResult]:
        """Every merge in one script call (one round trip), with ``merge_progress``'s semantics;
        the script stamps them with the server's TIME unless ``ts`` is given."""
        if not merges:
            return []
        k = self._keys(migration_id)
        args: list[str] = [_time_arg(ts), actor, self._window_ms()]
        for m in merges:
            op = "" if check_op_id(m.op_id) is None else str(m.op_id)
            if m.sub_task_id is not None:
                if m.progress is None:  # nothing to merge: the rules decide (FALLBACK below)
                    args += ["s", "\n", "0", "", "0", "", ""]
                    continue
                payload = self.codec.dumps({"phase": m.phase_id, "sub_task": m.sub_task_id, "progress": m.progress},
                                           self.at_event(migration_id, "subtask.progress"))
                args += ["s", f"{m.phase_id}/{m.sub_task_id}/", _float_text(m.progress), "", "0", payload, op]
            else:
                args += ["p", m.phase_id + "/", "" if m.progress is None else _float_text(m.progress),
                         "" if m.done is None else str(m.done), str(m.add or 0),
                         self.codec.dumps({"phase": m.phase_id}, self.at_event(migration_id, "phase.progress")), op]
        codes = self._hot(lambda: self._merge_many_script(
            keys=[k["h"], k["p"], k["s"], k["e"], k["lock"], k["o"]], args=args), k["lock"])
        return [(MergeResult.FALLBACK, MergeResult.STALE, MergeResult.APPLIED)[int(c)] for c in codes]

    def increment_counters(
        self, migration_id: str, deltas: Mapping[str, int], *, ts: datetime | None, actor: str,
        op_id: str | None = None,
    ) -> dict[str, int]:
        k = self._keys(migration_id)
        payload = self.codec.dumps({"increment": dict(deltas)}, self.at_event(migration_id, "metrics.updated"))
        op = "" if check_op_id(op_id) is None else str(op_id)
        res = self._hot(lambda: self._increment(
            keys=[k["h"], k["e"], k["lock"], k["o"]],
            args=[deltas.get("successful_operations", 0), deltas.get("failed_operations", 0),
                  deltas.get("total_data_migrated", 0), _time_arg(ts), actor, payload, op, self._window_ms()]),
            k["lock"])
        if res[0] == _MISSING:
            raise MigrationNotFound(migration_id)
        return {"successful_operations": int(res[0]), "failed_operations": int(res[1]),
                "total_data_migrated": int(res[2])}

    # -- reads -----------------------------------------------------------------------------

    def page_sub_tasks(self, migration_id: str, phase_id: str, *, status: str | None = None,
                       after: str | None = None, limit: int = 100) -> list[SubTaskState]:
        k = self._keys(migration_id)
        flat = self._call(lambda: self._page(keys=[k["p"], k["s"]],
                                             args=[phase_id, status or "", "" if after is None else after,
                                                   str(limit), "1" if after is not None else "0"]))
        return [self.sub_task_of_row(migration_id, phase_id, flat[i], flat[i + 1], float(flat[i + 2]), flat[i + 3])
                for i in range(0, len(flat), 4)]

    def control(self, migration_id: str) -> Control:
        value = self._call(lambda: self._r.hget(self._keys(migration_id)["h"], "ctl"))
        if value is None:
            raise MigrationNotFound(migration_id)
        return Control(value)

    def events(self, migration_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        if limit <= 0:
            return []
        key = self._keys(migration_id)["e"]
        rows = self._call(lambda: self._r.xrange(key, f"{after + 1}-0", "+", count=limit))
        return [self._event(migration_id, eid, fields) for eid, fields in rows]

    def count_alerts(self, migration_id: str) -> int:
        k = self._keys(migration_id)

        def both() -> list[Any]:
            pipe = self._r.pipeline(transaction=False)
            pipe.exists(k["h"])
            pipe.zcard(k["an"])
            return pipe.execute()

        exists, n = self._call(both)
        if not exists:
            raise MigrationNotFound(migration_id)
        return int(n)

    def alerts(self, migration_id: str, *, limit: int = 50, unacknowledged_only: bool = False) -> list[Alert]:
        if limit <= 0:
            return []
        k = self._keys(migration_id)
        rows = self._call(lambda: self._alerts(keys=[k["a"], k["an"], k["au"]],
                                               args=[limit, int(unacknowledged_only)]))
        return [Alert.from_dict(self.codec.loads(rows[i + 1], self.at_alert(migration_id, rows[i])))
                for i in range(0, len(rows), 2)]

    def get_alert(self, migration_id: str, alert_id: str) -> Alert:
        raw = self._call(lambda: self._r.hget(self._keys(migration_id)["a"], alert_id))
        if raw is None:
            raise AlertNotFound(alert_id)
        return Alert.from_dict(self.codec.loads(raw, self.at_alert(migration_id, alert_id)))

    async def subscribe(
        self, migration_id: str, after: int = 0, *, poll_interval: float = 0.25
    ) -> AsyncIterator[Event]:
        """Every event after ``after``, then new ones as they are written: ``XREAD BLOCK`` on the
        migration's stream wakes on each write (no polling)."""
        key = self._keys(migration_id)["e"]
        client: Any
        # this loop is the one layer of retries, as _call() is for the other calls
        no_retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
        if self.cluster:
            client = redis.asyncio.RedisCluster.from_url(self._conn_url, decode_responses=True, retry=no_retry)
        else:
            client = redis.asyncio.Redis.from_url(self._conn_url, decode_responses=True, socket_timeout=None,
                                                  retry=no_retry)
        last = f"{after}-0"
        # every reader of every server reconnects at once after a restart: spread them out
        delays = retry.Delays(first=poll_interval, cap=5.0)
        try:
            while True:
                try:
                    res = await client.xread({key: last}, count=1000, block=1000)
                except (redis.ConnectionError, redis.TimeoutError, ClusterDownError, SlotNotCoveredError):
                    await asyncio.sleep(delays.next())
                    continue
                delays.reset()
                for _stream, entries in res or []:
                    for eid, fields in entries:
                        last = eid
                        yield self._event(migration_id, eid, fields)
        finally:
            await client.aclose()

    # -- retention ---------------------------------------------------------------------------

    def purge_finished(self, older_than: datetime) -> list[str]:
        cutoff = _epoch(older_than)
        gone: list[str] = []
        for mid in self.list_ids():
            fin = self._call(partial(self._r.hget, self._keys(mid)["h"], "fin"))
            if fin and float(fin) < cutoff and self.delete(mid):
                gone.append(mid)
        return gone

    # -- Idempotency-Keys ----------------------------------------------------------------------

    def _request_key(self, key: str) -> str:
        check_op_id(key)
        return f"{self.prefix}:rq:{key}"

    def claim_request(self, key: str, fingerprint: str, *, ts: datetime) -> RequestRecord:
        rk = self._request_key(key)
        found, response = self._call(lambda: self._claim_request(keys=[rk], args=[fingerprint, *self._dedupe_args(ts)]))
        return RequestRecord(found, self.codec.loads(response, self.at_request(key)) if response else None)

    def finish_request(self, key: str, fingerprint: str, response: Any, *, ts: datetime) -> None:
        rk = self._request_key(key)
        text = self.codec.dumps(response, self.at_request(key))
        self._call(lambda: self._finish_request(keys=[rk], args=[fingerprint, text]))

    # -- tokens ----------------------------------------------------------------------------

    def save_token(self, token: TokenRecord) -> None:
        self._call(lambda: self._save_token(keys=[self._tokens_key, self._token_hash_key],
                                            args=[token.id, token.token_hash, json.dumps(token.to_dict())]))

    def find_token(self, token_hash: str) -> TokenRecord | None:
        tid = self._call(lambda: self._r.hget(self._token_hash_key, token_hash))
        if tid is None:
            return None
        raw = self._call(lambda: self._r.hget(self._tokens_key, tid))
        return TokenRecord.from_dict(json.loads(raw)) if raw else None

    def list_tokens(self) -> list[TokenRecord]:
        raw = self._call(lambda: self._r.hvals(self._tokens_key))
        return sorted((TokenRecord.from_dict(json.loads(r)) for r in raw), key=lambda t: (t.created_at, t.id))

    # -- the alert dispatcher's documents --------------------------------------------------------

    def _kv_key(self, kind: str) -> str:
        return f"{self.prefix}:{{kv}}:{kind}"

    def _kv_decode(self, kind: str, key: str, raw: bytes | str) -> Versioned:
        text = raw.decode() if isinstance(raw, bytes) else raw
        version, _, value = text.partition(":")
        return Versioned(self.codec.loads(value, self.at_kv(kind, key)), int(version))

    def kv_get(self, kind: str, key: str) -> Versioned | None:
        check_kv(kind, key)
        raw = self._call(lambda: self._r.hget(self._kv_key(kind), key))
        return None if raw is None else self._kv_decode(kind, key, raw)

    def kv_put(self, kind: str, key: str, value: Any, *, expected: int | None = None) -> int | None:
        check_kv(kind, key)
        args = [key, "" if expected is None else str(expected), self.codec.dumps(value, self.at_kv(kind, key)), ""]
        version = int(self._call(lambda: self._kv_put(keys=[self._kv_key(kind)], args=args)))
        return None if version < 0 else version

    def kv_list(self, kind: str, prefix: str = "", *, limit: int = 1000) -> list[tuple[str, Versioned]]:
        raw: dict[Any, Any] = self._call(lambda: self._r.hgetall(self._kv_key(kind)))
        found = sorted((k.decode() if isinstance(k, bytes) else k, v) for k, v in raw.items())
        return [(k, self._kv_decode(kind, k, v)) for k, v in found if k.startswith(prefix)][:limit]

    def kv_delete(self, kind: str, key: str, *, expected: int | None = None) -> bool:
        check_kv(kind, key)
        args = [key, "" if expected is None else str(expected), "", "del"]
        return int(self._call(lambda: self._kv_put(keys=[self._kv_key(kind)], args=args))) == 1
