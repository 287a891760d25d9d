"""The outbox: progress, metrics and alert writes that neither wait for nor fail on an outage.

A write is sent at once while the server answers and nothing is queued; otherwise it joins a
bounded in-memory queue that a background drainer thread sends, in order, with full-jitter
back-off, as soon as the server answers again. Each write keeps its Idempotency-Key (the
tracker's operation id) over every retry, so the server applies it once.

When the queue is full, the queued progress batches of each migration that were never sent are
folded into one (with the one merge of ``core/delta.py``): a batch that was sent, even once,
may be in the store already and is only ever sent again as it is, under its own key. If the
queue is still full, the oldest writes go to the spool (``sdk/spool.py``), as does whatever is
still queued when the outbox is closed after waiting out the deadline — nothing is dropped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from migratrack.core.delta import ProgressDelta
from migratrack.errors import StorageUnavailable
from migratrack.sdk.retry import Backoff, new_op_id
from migratrack.sdk.spool import Spool
from migratrack.sdk.transport import Transient, Transport, error_for

log = logging.getLogger("migratrack")

DEFAULT_BUFFER = 10_000


@dataclass(slots=True)
class Item:
    """A buffered write."""

    method: str
    path: str
    body: dict[str, Any]
    actor: str
    kind: str  # "batch", "metrics", "alert"
    mid: str
    key: str = field(default_factory=new_op_id)
    failures: int = 0
    #: sent at least once: it may be in the store, so it is never merged with another write
    attempted: bool = False

    def record(self) -> dict[str, Any]:
        """The write as a spool line."""
        return {"op_id": self.key, "kind": self.kind, "actor": self.actor, "body": self.body}


class Outbox:
    """The queue of one backend's writes and its drainer thread. ``on_sent`` sees each queued
    write the server accepted, with its reply."""

    def __init__(
        self, transport: Transport, *, size: int, owner: object, on_sent: Callable[[Item, httpx.Response], None],
        spool: Spool | None = None,
    ) -> None:
        self._transport = transport
        self.size = size
        self._spool = spool
        self.spooled = 0
        # held weakly here, strongly by a running drainer: see _start_drainer
        self._owner = weakref.ref(owner)
        self._on_sent = on_sent
        self._items: deque[Item] = deque()
        self._cv = threading.Condition()
        self._drainer: threading.Thread | None = None
        self.closed = False
        self.dropped = 0
        _all.add(self)

    def _after_fork(self) -> None:
        # in a forked child: the queued writes are the parent's to send, and the lock may have
        # been copied held
        self._items = deque()
        self._cv = threading.Condition()
        self._drainer = None

    def send(self, item: Item) -> dict[str, Any] | None:
        """Send now if nothing is queued; on an outage (or while one lasts) queue it. Returns the
        reply's JSON, or None when queued. With a strict transport, nothing is queued."""
        t = self._transport
        if t.strict:
            try:
                r = t.attempt(item.method, item.path, body=item.body, actor=item.actor, key=item.key)
            except Transient as exc:
                raise t.unavailable(exc) from None
            if r.status_code >= 400:
                raise error_for(r)
            return dict(r.json())
        with self._cv:
            # while the server is known to be away, queue at once: the drainer probes it, and the
            # migration never waits on a connect timeout
            if self._items or t.down_since is not None:
                self._enqueue(item)
                return None
        item.attempted = True
        try:
            r = t.attempt(item.method, item.path, body=item.body, actor=item.actor, key=item.key)
        except Transient as exc:
            t.note_down(exc)
            with self._cv:
                self._enqueue(item)
            return None
        t.note_up()
        if r.status_code >= 400:
            raise error_for(r)
        return dict(r.json())

    @property
    def queued(self) -> bool:
        """Whether writes are queued, read without the lock: a moment stale at worst."""
        return bool(self._items)

    @property
    def pending(self) -> int:
        """Writes buffered and not yet accepted by the server."""
        with self._cv:
            return len(self._items)

    def wait_drained(self, end: float) -> None:
        """Wait until the queue is empty; StorageUnavailable at ``end`` (``time.monotonic()``)."""
        with self._cv:
            if self._items:
                self._start_drainer()
            while self._items:
                left = end - time.monotonic()
                if left <= 0:
                    raise StorageUnavailable(
                        f"migratrack server {self._transport.url} unavailable for "
                        f"{self._transport.deadline:.0f} s; {len(self._items)} buffered writes not yet sent")
                self._cv.wait(min(left, 0.5))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every buffered write was sent (or ``timeout`` passed); True if none is left."""
        end = time.monotonic() + (self._transport.deadline if timeout is None else timeout)
        try:
            self.wait_drained(end)
        except StorageUnavailable:
            return False
        return True

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (waiting up to ``timeout``, default the deadline), then stop;
        what could not be sent by then goes to the spool."""
        sent = self.flush(timeout)
        self.closed = True
        with self._cv:
            self._cv.notify_all()
            left = list(self._items)
            self._items.clear()
        if not sent and left:
            self._spill(left, f"unreachable for {self._transport.deadline:.0f} s")

    def _enqueue(self, item: Item) -> None:  # caller holds self._cv
        if len(self._items) >= self.size:
            self._compact()
        self._items.append(item)
        self._start_drainer()

    def _start_drainer(self) -> None:  # caller holds self._cv
        if self._drainer is None or not self._drainer.is_alive():
            # The thread holds the owner (the backend) while it runs: a backend dropped with writes
            # still queued stays open, and registered for the drain at exit, until they are sent.
            self._drainer = threading.Thread(target=self._drain, args=(self._owner(),),
                                             name="migratrack-remote-drain", daemon=True)
            self._drainer.start()

    def _compact(self) -> None:  # caller holds self._cv
        """The buffer is full: fold the queued progress batches of a migration that were never
        sent into one (highest progress and done count, summed increments); if still full, the
        oldest writes go to the spool."""
        items = list(self._items)
        keep: list[Item] = items[:1]  # the head may be on the wire right now: never merge into it
        merged: dict[str, Item] = {}
        for item in items[1:]:
            if item.kind != "batch" or item.attempted:
                keep.append(item)
                continue
            into = merged.get(item.mid)
            if into is None:
                merged[item.mid] = item
                keep.append(item)
                continue
            merge_batch(into.body, item.body)
        self._items = deque(keep)
        if len(self._items) >= self.size:
            # a tenth at a time: a queue that stays full does not hit the disk on every write
            n = max(1, len(self._items) - self.size + 1, self.size // 10)
            spill = [self._items.popleft() for _ in range(min(n, len(self._items)))]
            self._spill(spill, f"{self.size} writes buffered")

    def _spill(self, items: list[Item], why: str) -> None:
        """Put writes that cannot be kept or sent in the spool, one file per migration."""
        by_mid: dict[str, list[Item]] = {}
        for item in items:
            by_mid.setdefault(item.mid, []).append(item)
        for mid, group in by_mid.items():
            if self._spool is None:
                self.dropped += len(group)
                log.error("migratrack: dropped %d writes to %s for migration %r (%s; no spool)", len(group),
                          self._transport.url, mid, why)
                continue
            try:
                path = self._spool.append(mid, [i.record() for i in group])
            except OSError as exc:
                self.dropped += len(group)
                log.error("migratrack: dropped %d writes to %s for migration %r (%s): the spool is not "
                          "writable: %s", len(group), self._transport.url, mid, why, exc)
                continue
            self.spooled += len(group)
            log.warning("migratrack: %d writes for migration %r could not be delivered to %s (%s); they are "
                        "kept in the spool file %s, replayed by the next tracker for this migration",
                        len(group), mid, self._transport.url, why, path)

    def _drain(self, owner: object) -> None:  # owner: only held, see _start_drainer
        t = self._transport
        backoff = Backoff(*t.backoff)
        while True:
            with self._cv:
                if not self._items or self.closed:
                    self._cv.notify_all()
                    return
                item = self._items[0]
                item.attempted = True
            try:
                r = t.attempt(item.method, item.path, body=item.body, actor=item.actor, key=item.key)
            except Exception as exc:  # Transient; RuntimeError when closed under our feet; anything else
                if self.closed:
                    return
                if not isinstance(exc, Transient):
                    log.warning("migratrack: unexpected error sending a buffered write: %r", exc)
                t.note_down(exc)
                item.failures += 1
                with self._cv:  # woken early by close()
                    self._cv.wait(backoff.next())
                continue
            t.note_up()
            backoff.reset()
            if r.status_code >= 400:
                log.warning("migratrack: the server refused a buffered %s write to %s: %s", item.kind, item.path,
                            error_for(r))
            else:
                self._on_sent(item, r)
            with self._cv:
                if self._items and self._items[0] is item:
                    self._items.popleft()
                self._cv.notify_all()


def merge_batch(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Fold the batch body ``other`` (queued later) into ``into``."""
    updates: list[dict[str, Any]] = into["updates"]
    at = {(u["phase"], u.get("sub_task")): i for i, u in enumerate(updates)}
    for u in other["updates"]:
        k = (u["phase"], u.get("sub_task"))
        i = at.get(k)
        if i is None:
            at[k] = len(updates)
            updates.append(dict(u))
        else:  # other was queued after into
            updates[i] = ProgressDelta.from_dict(updates[i]).merge(ProgressDelta.from_dict(u)).to_dict()
    inc = into.setdefault("increments", {})
    for name, v in (other.get("increments") or {}).items():
        inc[name] = inc.get(name, 0) + v


_all: weakref.WeakSet[Outbox] = weakref.WeakSet()


def _forget_parent_work() -> None:
    for outbox in list(_all):
        outbox._after_fork()


os.register_at_fork(after_in_child=_forget_parent_work)
