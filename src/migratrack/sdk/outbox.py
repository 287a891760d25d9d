"""The outbox: progress, metrics and alert writes that neither wait for nor fail on an outage.

A write is sent at once while the server answers and nothing is queued; otherwise it joins a
bounded in-memory queue that a background drainer thread sends, in order, as soon as the server
answers again. When the queue is full, the queued progress batches of each migration are folded
into one (with the one merge of ``core/delta.py``), and only then is the oldest write dropped.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from migratrack.core.delta import ProgressDelta
from migratrack.errors import StorageUnavailable
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
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    failures: int = 0


class Outbox:
    """The queue of one backend's writes and its drainer thread. ``on_sent`` sees each queued
    write the server accepted, with its reply."""

    def __init__(
        self, transport: Transport, *, size: int, owner: object, on_sent: Callable[[Item, httpx.Response], None]
    ) -> None:
        self._transport = transport
        self.size = size
        # held weakly here, strongly by a running drainer: see _start_drainer
        self._owner = weakref.ref(owner)
        self._on_sent = on_sent
        self._items: deque[Item] = deque()
        self._cv = threading.Condition()
        self._drainer: threading.Thread | None = None
        self.closed = False
        self.dropped = 0

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
        """Send what is queued (waiting up to ``timeout``, default the deadline), then stop."""
        if not self.flush(timeout):
            log.error("migratrack: %d progress/metrics/alert writes could not be sent to %s", self.pending,
                      self._transport.url)
        self.closed = True
        with self._cv:
            self._cv.notify_all()

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
        """The buffer is full: fold every queued progress batch of a migration into one (highest
        progress and done count, summed increments); if still full, drop the oldest write."""
        items = list(self._items)
        keep: list[Item] = items[:1]  # the head may be on the wire right now: never merge into it
        merged: dict[str, Item] = {}
        for item in items[1:]:
            if item.kind != "batch":
                keep.append(item)
                continue
            into = merged.get(item.mid)
            if into is None:
                merged[item.mid] = item
                keep.append(item)
                continue
            merge_batch(into.body, item.body)
        self._items = deque(keep)
        while len(self._items) >= self.size:
            lost = self._items.popleft()
            self.dropped += 1
            log.error("migratrack: buffer full (%d writes); dropped a %s write to %s", self.size, lost.kind,
                      lost.path)

    def _drain(self, owner: object) -> None:  # owner: only held, see _start_drainer
        t = self._transport
        delay = t.backoff[0]
        while True:
            with self._cv:
                if not self._items or self.closed:
                    self._cv.notify_all()
                    return
                item = self._items[0]
            try:
                r = t.attempt(item.method, item.path, body=item.body, actor=item.actor, key=item.key)
            except Exception as exc:  # Transient; RuntimeError when closed under our feet; anything else
                if self.closed:
                    return
                if not isinstance(exc, Transient):
                    log.warning("migratrack: unexpected error sending a buffered write: %r", exc)
                t.note_down(exc)
                with self._cv:  # woken early by close()
                    self._cv.wait(delay)
                delay = min(delay * 2, t.backoff[1])
                continue
            t.note_up()
            delay = t.backoff[0]
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
