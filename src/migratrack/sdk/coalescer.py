"""Coalescing and delivery: a tracker's reports, merged, written once each, and never lost.

Reports are merged per (phase, sub-task) into one :class:`~migratrack.core.delta.ProgressDelta`
and increments per counter; a key is written at most once per ``interval`` seconds, by the
caller when due or by a background flusher thread, and at ``flush()``. The first report for a
key is written at once, so a mistake raises where it was made.

Every write leaves as a :class:`Write` with an operation id made once. A write whose outcome is
unknown (the store failed, or failed part-way: it may have applied some or all of it) is kept
exactly as it was sent, with its id, at the head of a queue and sent again with the same id, in
order, with full-jitter back-off (``sdk/retry.py``): the store acknowledges what it had applied
and applies the rest, so nothing is counted twice. Reports made meanwhile are merged into new
pending state, never into a write that may already be in the store. Alerts and metric values
are written the same way. A transient store failure is logged, never raised into the migration
(unless ``strict``).

Nothing accepted is dropped. When the store has been unreachable for the give-up time
(``deadline``, ``MIGRATRACK_RETRY_DEADLINE``) whatever is undelivered is written to the spool
(``sdk/spool.py``) with a warning naming the count and the file; this process replays it first
once the store answers again, else the next tracker for the migration does at its start. A
tracker that is garbage-collected, or still open at interpreter exit, hands its coalescer over
to be finished: ``abandon()`` (one attempt now, then the flusher keeps retrying in the
background) and the exit hook, which waits for delivery or the give-up time. A forked child
starts with nothing of its parent's pending work: the parent delivers it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from migratrack.core.commands import Command
from migratrack.core.delta import ProgressDelta
from migratrack.core.models import Alert
from migratrack.core.rules import MAX_TEXT
from migratrack.core.states import AlertLevel
from migratrack.errors import InvalidInput, LimitExceeded, MigratrackError, NotFound, RuleViolation
from migratrack.sdk import lifecycle
from migratrack.sdk.backend import TRANSIENT, Backend
from migratrack.sdk.control import KnownControl
from migratrack.sdk.retry import Backoff, new_op_id
from migratrack.sdk.spool import Claim, Record, Spool
from migratrack.service import MigrationService, ProgressUpdate, alert_id_for
from migratrack.settings import DEFAULT_RETRY_DEADLINE

log = logging.getLogger("migratrack")
Key = tuple[str, str | None]

#: errors that refuse a write for good: sending it again cannot help
REFUSED: tuple[type[BaseException], ...] = (RuleViolation, NotFound, InvalidInput)
#: writes kept in memory during an outage before they go to the spool early
MAX_QUEUE = 10_000


@dataclass(slots=True)
class _Pending:
    """One key's reports not yet written, merged, and when the key was last written."""

    delta: ProgressDelta | None = None
    sent_at: float = 0.0

    @property
    def dirty(self) -> bool:
        return self.delta is not None

    def take(self) -> ProgressDelta:
        delta, self.delta = self.delta, None
        assert delta is not None
        return delta


@dataclass(slots=True, eq=False)
class Write:
    """One write as it leaves the coalescer, with its operation id: a progress ``batch``
    (updates and counter increments), an ``alert``, or ``metrics`` values (with increments)."""

    kind: str
    op_id: str
    actor: str
    updates: list[ProgressUpdate] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    #: the spool file it was replayed from, told once it is settled
    claim: Claim | None = None

    def record(self) -> Record:
        """The write as a spool line (the body the server's route takes)."""
        body: dict[str, Any]
        if self.kind == "batch":
            body = {"updates": [u.to_dict() for u in self.updates], "increments": dict(self.counters)}
        elif self.kind == "alert":
            body = {"level": str(self.args["level"]), "message": self.args["message"]}
            if self.args.get("phase") is not None:
                body["phase"] = self.args["phase"]
        else:
            body = {"values": dict(self.args.get("values") or {}), "increment": dict(self.counters)}
        return {"op_id": self.op_id, "kind": self.kind, "actor": self.actor, "body": body}

    @classmethod
    def from_record(cls, r: Record, claim: Claim | None = None) -> Write:
        body = r["body"]
        kind = str(r["kind"])
        actor = str(r.get("actor") or "migratrack")
        if kind == "batch":
            return cls(kind, str(r["op_id"]), actor, [ProgressDelta.from_dict(u) for u in body.get("updates", [])],
                       dict(body.get("increments") or {}), claim=claim)
        if kind == "alert":
            return cls(kind, str(r["op_id"]), actor, args={"level": body["level"], "message": body["message"],
                                                             "phase": body.get("phase")}, claim=claim)
        if kind == "metrics":
            return cls(kind, str(r["op_id"]), actor, counters=dict(body.get("increment") or {}),
                       args={"values": dict(body.get("values") or {})}, claim=claim)
        raise ValueError(f"unknown kind of spooled write {kind!r}")

    def settle(self) -> None:
        if self.claim is not None:
            self.claim.settle()
            self.claim = None


class Coalescer:
    """The pending reports and the unacknowledged writes of one migration, and the thread that
    writes them. ``on_close`` runs once everything was delivered or spooled, after ``close()``
    or an abandoned coalescer's last write (it closes the backend; its argument says whether it
    may wait: not for an abandoned coalescer)."""

    def __init__(
        self, backend: Backend, migration_id: str, known: KnownControl, *, actor: str, interval: float, strict: bool,
        deadline: float = DEFAULT_RETRY_DEADLINE, spool: Spool | None = None, target: str = "the store",
        on_close: Callable[[bool], None] | None = None, max_queue: int = MAX_QUEUE,
    ) -> None:
        self._backend = backend
        self._migration_id = migration_id
        self._known = known
        self.actor = actor
        self.interval = interval
        self.strict = strict
        self._capped = False  # the alert cap was met (logged once)
        self.deadline = deadline
        self._spool = spool
        self._target = target
        self._on_close = on_close
        self._max_queue = max_queue
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._pending: dict[Key, _Pending] = {}
        self._counters: dict[str, int] = {}
        self._counters_sent_at = 0.0
        self._values: dict[str, Any] = {}
        #: sent and not acknowledged (outcome unknown), or queued behind such a write: sent as
        #: they are, in order, before anything newer
        self._queue: deque[Write] = deque()
        #: written to the spool during this outage: replayed before anything newer
        self._spooled = False
        self.spooled = 0  # writes this coalescer put in the spool
        self._backoff = Backoff()
        self._retry_at = 0.0
        self._down_since: float | None = None
        self._give_up_at = 0.0
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.closed = False
        self.abandoned = False
        self._inherited = False
        #: seconds between heartbeats (stall detection, alerts/stall.py); None: none are sent
        self.heartbeat_every: float | None = None
        self._beat_at = 0.0
        _all.add(self)

    # -- reports ---------------------------------------------------------------------------

    def tick(
        self, key: Key, progress: float | None, done: int | None, total: int | None, add: int,
        metadata: Mapping[str, Any] | None,
    ) -> None:
        """Merge one report into the key's pending delta; write it if it is the key's first or due."""
        report = ProgressDelta(key[0], key[1], progress, done, total, add or None, dict(metadata) if metadata else {})
        if not self.interval and not self._outage:  # coalescing off: every call is written, in the caller's thread
            self._send(Write("batch", new_op_id(), self.actor, [report]), raise_rules=True)
            return
        now = time.monotonic()
        with self._lock:
            p = self._pending.get(key)
            first = p is None
            if p is None:
                p = self._pending[key] = _Pending()
            p.delta = report if p.delta is None else p.delta.merge(report)
            due = first or now - p.sent_at >= self.interval
        if due and not self._outage:
            self._flush_keys([key], raise_rules=first or self.strict)
        else:
            self._ensure_flusher()

    def count(self, deltas: Mapping[str, int]) -> None:
        """Add validated increments to the pending counters; write them when due."""
        with self._lock:
            for k, v in deltas.items():
                self._counters[k] = self._counters.get(k, 0) + v
            due = time.monotonic() - self._counters_sent_at >= self.interval
        if due and not self._outage:
            self._flush_counters()
        else:
            self._ensure_flusher()

    def write_metrics(self, values: Mapping[str, Any]) -> None:
        """Set metric values now, with the pending counters, in one write; during an outage they
        wait (later values of a metric replace earlier ones) and are written when it ends."""
        with self._lock:
            self._values.update(values)
        if self._outage:
            self._ensure_flusher()
            return
        with self._send_lock:
            if not self._drain(force=False):
                self._ensure_flusher()
                return
            for w in self._take(keys=(), counters=True, values=True):
                self._send(w, raise_rules=True)

    def alert(self, level: str | AlertLevel, message: str, phase: str | None) -> Alert | None:
        """Raise an alert: written now, or, during an outage, kept with its operation id and
        written once it ends (applied once). Returns the stored alert, or a provisional one;
        None when the migration keeps the most alerts allowed (strict: LimitExceeded)."""
        try:
            lvl = AlertLevel(str(level))
        except ValueError:
            raise InvalidInput(
                f"alert level must be one of {', '.join(v.value for v in AlertLevel)}; got {level!r}") from None
        if not isinstance(message, str) or not message.strip() or len(message) > MAX_TEXT:
            raise InvalidInput(f"alert message must be a non-empty string of at most {MAX_TEXT} characters")
        w = Write("alert", new_op_id(), self.actor, args={"level": lvl.value, "message": message, "phase": phase})
        if self._outage:
            self._enqueue([w])
        else:
            try:
                stored = self._send(w, raise_rules=True)
            except LimitExceeded as exc:
                if self.strict:
                    raise
                # a cap is no reason to stop the migration: say so (once), and go on
                if not self._capped:
                    self._capped = True
                    log.warning("migratrack: alert not recorded: %s", exc)
                return None
            if isinstance(stored, Alert):
                return stored
        # the in-process service derives the alert's id from the operation id: the provisional
        # alert already has the id the stored one will have
        aid = alert_id_for(w.op_id) if isinstance(self._backend, MigrationService) else f"pending-{w.op_id[:12]}"
        return Alert(id=aid, level=lvl, message=message, created_at=datetime.now(UTC), phase=phase, actor=w.actor)

    def flush_before(self, command: Command) -> None:
        """Write the pending reports of the command's sub-task, or of its phase and the phase's
        sub-tasks, so that its rule judges them first. A rejected (stale) report is logged: it
        must not stop the transition."""
        phase, sub = getattr(command, "phase", None), getattr(command, "sub_task", None)
        if sub is not None:
            self._flush_keys([(str(phase), sub)], raise_rules=False, force=True)
        elif phase is not None:
            with self._lock:
                keys = [k for k in self._pending if k[0] == phase]
            self._flush_keys(keys, raise_rules=False, force=True)

    def flush(self) -> None:
        """Send the unacknowledged writes again now, then every pending report, increment and
        metric value. During an outage what fails stays queued (and is logged)."""
        with self._send_lock:
            self._deliver_all(raise_rules=self.strict)

    def replay(self) -> int:
        """Claim the migration's spool (left by an earlier tracker, or by this process during
        an outage) and send it before anything newer; the number of writes claimed."""
        with self._send_lock:
            n = self._claim_spool()
            if n:
                self._drain(force=True)
        if self._queue:
            self._ensure_flusher()
        return n

    def _claim_spool(self) -> int:  # caller holds _send_lock
        if self._spool is None:
            return 0
        try:
            claim = self._spool.claim(self._migration_id)
        except OSError as exc:
            log.warning("migratrack: could not read the spool of migration %r: %s", self._migration_id, exc)
            return 0
        if claim is None:
            return 0
        writes = []
        for r in claim.records:
            try:
                writes.append(Write.from_record(r, claim))
            except (KeyError, TypeError, ValueError, InvalidInput) as exc:
                log.warning("migratrack: skipped a spooled write that cannot be read (%s): %r", exc, r)
                claim.settle()
        log.warning("migratrack: replaying %d writes spooled for migration %r (%s)", len(writes),
                    self._migration_id, ", ".join(str(p) for p in claim.paths))
        with self._lock:
            self._queue.extendleft(reversed(writes))  # older than anything queued here
        return len(writes)

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the flusher and deliver everything: retried until it is delivered or the store
        has been unreachable for the give-up time, then spooled. Then ``on_close``."""
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        self._wake.set()
        try:
            self._finish()
        except MigratrackError:
            log.warning("migratrack: final flush failed", exc_info=True)
        self._done()

    def abandon(self) -> None:
        """The tracker is gone (garbage-collected) without close(): write what is pending now;
        if the store does not take it, keep retrying in the background (the exit hook finishes
        the job), then ``on_close``. Never blocks on an outage."""
        if self.closed or self.abandoned:
            return
        self.abandoned = True
        _orphans.add(self)
        if threading.current_thread() is self._flusher:
            self._wake.set()  # collected inside our own flusher: it finishes the job when it wakes
            return
        try:
            with self._send_lock:
                self._deliver_all(raise_rules=False)
        except Exception:  # a finalizer must not raise
            log.warning("migratrack: could not write a dropped tracker's reports", exc_info=True)
        if self._idle():
            self.closed = True
            self._stop.set()
            self._wake.set()
            self._done()
        else:
            self._ensure_flusher()

    @property
    def undelivered(self) -> int:
        """Writes queued and reports pending, not yet in the store."""
        with self._lock:
            pending = sum(1 for p in self._pending.values() if p.dirty)
            return len(self._queue) + pending + bool(self._counters) + bool(self._values)

    # -- sending ---------------------------------------------------------------------------

    @property
    def _outage(self) -> bool:
        """Writes wait in order: new ones go behind them (read without the lock: a moment stale
        at worst, which only means one write tried out of turn)."""
        return bool(self._queue) or self._spooled

    def _flush_keys(self, keys: Iterable[Key], *, raise_rules: bool = True, force: bool = False) -> None:
        with self._send_lock:
            if not self._drain(force=force):
                self._ensure_flusher()
                return
            for w in self._take(keys=keys, counters=False, values=False):
                self._send(w, raise_rules)

    def _flush_counters(self) -> None:
        with self._send_lock:
            if not self._drain(force=False):
                self._ensure_flusher()
                return
            for w in self._take(keys=(), counters=True, values=False):
                self._send(w, raise_rules=self.strict)

    def _deliver_all(self, *, raise_rules: bool) -> bool:  # caller holds _send_lock
        """The queue, then everything pending; True if all of it is in the store."""
        if not self._drain(force=True):
            return False
        for w in self._take(keys=None, counters=True, values=True):
            if self._outage:  # the write before failed: this one waits behind it
                self._enqueue([w])
            else:
                self._send(w, raise_rules)
        return not self._outage

    def _take(self, *, keys: Iterable[Key] | None, counters: bool, values: bool) -> list[Write]:
        """Pending reports as new writes, each with a new operation id. ``keys`` None: all."""
        out: list[Write] = []
        with self._lock:
            now = time.monotonic()
            updates = []
            for k in (self._pending if keys is None else keys):
                p = self._pending.get(k)
                if p is not None and p.dirty:
                    updates.append(p.take())
                    p.sent_at = now
            taken: dict[str, int] = {}
            if counters:
                taken, self._counters = self._counters, {}
                self._counters_sent_at = now
            if values and self._values:
                vals, self._values = self._values, {}
                out.append(Write("metrics", new_op_id(), self.actor, counters=taken, args={"values": vals}))
                taken = {}
            if updates or taken:
                out.insert(0, Write("batch", new_op_id(), self.actor, updates, taken))
        return out

    def _deliver(self, w: Write) -> object:
        """One write to the backend, with its operation id."""
        mid = self._migration_id
        if w.kind == "batch":
            control = self._backend.apply_updates(mid, w.updates, w.counters or None, actor=w.actor, op_id=w.op_id)
            if control is not None:
                self._known.learn(control)
            return control
        if w.kind == "alert":
            a = w.args
            return self._backend.create_alert(mid, a["level"], a["message"], a.get("phase"), actor=w.actor,
                                              op_id=w.op_id)
        self._backend.update_metrics(mid, w.args.get("values") or None, w.counters or None, actor=w.actor,
                                     op_id=w.op_id)
        return None

    def _send(self, w: Write, raise_rules: bool) -> object:
        """Send a new write; on a transient failure keep it, as it is, at the end of the queue."""
        try:
            result = self._deliver(w)
        except REFUSED:
            if raise_rules:
                raise
            log.warning("migratrack: a coalesced %s write was rejected", w.kind, exc_info=True)
        except TRANSIENT as exc:
            if self.strict:
                raise
            self._enqueue([w])
            self._failed(exc)
            return None
        else:
            if self._down_since is not None:
                self._ok()
            return result
        return None

    def _enqueue(self, writes: list[Write]) -> None:
        with self._lock:
            self._queue.extend(writes)
            full = len(self._queue) >= self._max_queue
        if full:
            self._give_up(f"{len(self._queue)} writes waiting")
        self._ensure_flusher()

    def _drain(self, *, force: bool) -> bool:  # caller holds _send_lock
        """Send the queued writes again, oldest first, each with its own operation id; stop at
        the first failure. With ``force`` now, else only once the back-off has passed. True
        when the queue is empty (and nothing spooled waits to be replayed)."""
        if not self._outage:
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        if self._spooled:
            # the spool holds older writes than the queue: replay it first, once the store
            # answers a read again
            try:
                self._backend.control(self._migration_id)
            except TRANSIENT as exc:
                self._failed(exc)
                return False
            except REFUSED:
                pass
            self._spooled = False
            self._ok()
            self._claim_spool()
        while True:
            with self._lock:
                if not self._queue:
                    return True
                w = self._queue[0]
            try:
                self._deliver(w)
            except TRANSIENT as exc:
                self._failed(exc)
                return False
            except REFUSED as exc:
                log.warning("migratrack: the store refused a %s write sent again (it is dropped): %s", w.kind, exc)
            with self._lock:
                if self._queue and self._queue[0] is w:
                    self._queue.popleft()
            w.settle()
            self._ok()

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._retry_at = now + self._backoff.next()
            first = self._down_since is None
            if first:
                self._down_since = now
                self._give_up_at = now + self.deadline
            give_up = now >= self._give_up_at
        if first:
            log.warning("migratrack: store unavailable, will retry (kept: %d writes): %s", len(self._queue), exc)
        if give_up:
            self._give_up(f"unreachable for {now - (self._down_since or now):.0f} s")
        self._wake.set()  # the flusher's next wake-up is due sooner

    def _ok(self) -> None:
        with self._lock:
            self._backoff.reset()
            self._retry_at = 0.0
            down, self._down_since = self._down_since, None
        if down is not None:
            log.warning("migratrack: store reachable again after %.1f s", time.monotonic() - down)

    def _give_up(self, why: str) -> None:
        """Put every undelivered write (the queue, then what is pending) in the spool."""
        with self._lock:
            writes = list(self._queue)
            self._queue.clear()
        writes += self._take(keys=None, counters=True, values=True)
        if not writes:
            return
        if self._spool is None:
            with self._lock:
                self._queue.extendleft(reversed(writes))
            return
        try:
            path = self._spool.append(self._migration_id, [w.record() for w in writes])
        except OSError as exc:
            with self._lock:
                self._queue.extendleft(reversed(writes))
            log.error("migratrack: could not write %d undelivered writes to the spool (%s); keeping them in "
                      "memory", len(writes), exc)
            return
        for w in writes:
            w.settle()
        with self._lock:
            self._spooled = True
            self.spooled += len(writes)
            self._give_up_at = time.monotonic() + self.deadline
        log.warning("migratrack: %d writes for migration %r could not be delivered to %s (%s); they are kept "
                    "in the spool file %s, replayed when it answers again or by the next tracker for this "
                    "migration", len(writes), self._migration_id, self._target, why, path)

    def _finish(self) -> None:
        """Deliver everything, retrying with back-off until the give-up time; then spool."""
        while True:
            with self._send_lock:
                # what was spooled is safe on disk: only what is in memory is waited for
                if self._deliver_all(raise_rules=self.strict) or self._idle():
                    return
                now = time.monotonic()
                if self._down_since is not None and now >= self._give_up_at:
                    self._give_up(f"unreachable for {now - self._down_since:.0f} s")
                    return
                # not down: another thread's send raced with ours; look again shortly
                wait = 0.01 if self._down_since is None else max(0.0, min(self._retry_at, self._give_up_at) - now)
            time.sleep(wait)

    def _done(self) -> None:
        _orphans.discard(self)
        if self._on_close is not None and not self._inherited:
            on_close, self._on_close = self._on_close, None
            on_close(not self.abandoned)

    def _idle(self) -> bool:
        with self._lock:
            return not self._queue and not self._counters and not self._values and not any(
                p.dirty for p in self._pending.values())

    # -- the background flusher ------------------------------------------------------------

    def _due(self) -> None:
        if self.abandoned:
            with self._send_lock:
                self._deliver_all(raise_rules=False)
            if self._idle():
                self.closed = True
                self._stop.set()
                self._done()
            return
        if self._outage:
            with self._send_lock:
                if not self._drain(force=False):
                    return
        now = time.monotonic()
        with self._lock:
            keys = [k for k, p in self._pending.items() if p.dirty and now - p.sent_at >= self.interval]
            counters_due = bool(self._counters) and now - self._counters_sent_at >= self.interval
            values = bool(self._values)
        if keys:
            self._flush_keys(keys, raise_rules=False)
        if counters_due:
            self._flush_counters()
        if values:
            self.write_metrics({})

    def keep_alive(self, every: float) -> None:
        """Send a heartbeat every ``every`` seconds from the background loop (started here if it
        is not running yet), the first one ``every`` seconds from now."""
        if self.heartbeat_every is None:
            self._beat_at = time.monotonic()
        self.heartbeat_every = every
        self._ensure_flusher()

    def beat(self) -> None:
        """A heartbeat when one is due: a sign of life even while a loop makes no progress. Its
        failure is logged and forgotten: the next one tries again."""
        if self.heartbeat_every is None or self.closed or time.monotonic() - self._beat_at < self.heartbeat_every:
            return
        self._beat_at = time.monotonic()
        send = getattr(self._backend, "heartbeat", None)
        if send is None:
            return
        try:
            send(self._migration_id, actor=self.actor)
        except Exception as exc:
            log.debug("migratrack: heartbeat failed: %s", exc)

    def _next_wait(self) -> float:
        if self._outage:
            return max(0.005, self._retry_at - time.monotonic())
        return max(self.interval, 0.01)

    def _ensure_flusher(self) -> None:
        if self._flusher is not None or self.closed:
            return
        with self._lock:
            if self._flusher is not None:
                return
            # the thread holds the coalescer weakly: a coalescer dropped (its tracker closed or
            # collected, its work done) is not kept alive by its flusher, which then ends
            ref = weakref.ref(self)
            stop, wake = self._stop, self._wake

            def run() -> None:
                while not stop.is_set():
                    coalescer = ref()
                    if coalescer is None:
                        return
                    timeout = coalescer._next_wait()
                    del coalescer
                    wake.wait(timeout)
                    wake.clear()
                    coalescer = ref()
                    if coalescer is None or stop.is_set():
                        return
                    try:
                        coalescer._due()
                    except Exception:  # a flusher must never die
                        log.warning("migratrack: background flush failed", exc_info=True)
                    coalescer.beat()
                    del coalescer

            self._flusher = threading.Thread(target=run, name=f"migratrack-flush-{self._migration_id}",
                                             daemon=True)
            self._flusher.start()

    # -- fork ------------------------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: the pending work is the parent's (the parent delivers it) and the
        locks may have been copied held; start empty, and leave the backend to the parent."""
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._flusher = None
        self._pending = {}
        self._counters = {}
        self._values = {}
        self._queue = deque()
        self._spooled = False
        self._down_since = None
        self._retry_at = 0.0
        self._backoff = Backoff()
        self._inherited = True


#: every coalescer of this process, for the reset after a fork
_all: weakref.WeakSet[Coalescer] = weakref.WeakSet()
#: coalescers whose tracker was collected with writes still undelivered: held until they are done
_orphans: set[Coalescer] = set()


def _forget_parent_work() -> None:
    for c in list(_all):
        c._after_fork()
    _orphans.clear()


os.register_at_fork(after_in_child=_forget_parent_work)


@lifecycle.at_exit(lifecycle.TRACKERS)
def _finish_orphans() -> None:
    for c in list(_orphans):
        c.close()
