"""The delivery outbox and the dispatcher's lease, kept in the store (``Storage.kv_*``).

Documents (kind: key):

* ``delivery``: <delivery id> — one message to one channel (:class:`Delivery`), with every attempt;
* ``due``: <delivery id> — the pending ones, so a dispatcher lists only what it may have to send;
* ``by-alert``: <alert id>|<delivery id> — which deliveries carried an alert (``alerts show``);
* ``lease``: dispatcher — who dispatches now, and until when.

Nothing is sent twice: a delivery is claimed (compare-and-set, with an expiry) before its send
and finished (compare-and-set on the claimed version) after it; a second dispatcher, or a
retry after a crash, finds it claimed or finished. Only a dispatcher killed between the
receiver's acceptance and the finish sends it again after the claim expires; the message then
carries the same idempotency key (the delivery id) for receivers that de-duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tenacity import RetryCallState, Retrying, wait_random_exponential

from migratrack.alerts.model import Attempt, Delivery, DeliveryStatus
from migratrack.storage.base import Storage

DELIVERY = "delivery"
DUE = "due"
BY_ALERT = "by-alert"
LEASE = "lease"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off with full jitter between attempts, then give up."""

    #: the first retry waits up to this many seconds; each next one up to twice as long
    first: float = 2.0
    #: no wait is longer than this
    cap: float = 300.0
    #: attempts before a delivery is given up as failed
    max_attempts: int = 12

    def wait(self, failures: int) -> timedelta:
        state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = failures
        return timedelta(seconds=float(wait_random_exponential(multiplier=self.first, max=self.cap)(state)))


class Outbox:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def enqueue(self, delivery: Delivery) -> bool:
        """Add a delivery unless one with its id exists; True if added. Idempotent: the index
        entries are written first, so a crash part-way is mended by enqueuing it again."""
        s = self.storage
        pending = delivery.status is DeliveryStatus.PENDING
        if pending:
            s.kv_put(DUE, delivery.id, {"at": _iso(delivery.next_attempt_at)})
        for alert_id in delivery.alert_ids:
            s.kv_put(BY_ALERT, f"{alert_id}|{delivery.id}", delivery.id)
        added = s.kv_put(DELIVERY, delivery.id, delivery.to_dict(), expected=0) is not None
        if not added and pending:
            found = self.get(delivery.id)
            if found is not None and found.status is not DeliveryStatus.PENDING:
                s.kv_delete(DUE, delivery.id)
        return added

    def get(self, delivery_id: str) -> Delivery | None:
        doc = self.storage.kv_get(DELIVERY, delivery_id)
        return None if doc is None else Delivery.from_dict(doc.value)

    def due(self, now: datetime, *, limit: int = 100) -> list[str]:
        """Ids of the pending deliveries whose next attempt is due, oldest due first."""
        found = []
        for key, doc in self.storage.kv_list(DUE, limit=10_000):
            at = doc.value.get("at")
            if at is None or datetime.fromisoformat(at) <= now:
                found.append((at or "", key))
        return [key for _, key in sorted(found)[:limit]]

    def claim(self, delivery_id: str, holder: str, now: datetime,
              lease: timedelta | Callable[[Delivery], timedelta]) -> tuple[Delivery, int] | None:
        """Take a due delivery for one attempt, until ``now + lease``; None if it is not pending,
        not due, or claimed by another dispatcher whose claim has not expired."""
        doc = self.storage.kv_get(DELIVERY, delivery_id)
        if doc is None:
            self.storage.kv_delete(DUE, delivery_id)
            return None
        d = Delivery.from_dict(doc.value)
        if d.status is not DeliveryStatus.PENDING:
            self.storage.kv_delete(DUE, delivery_id)
            return None
        if d.next_attempt_at is not None and d.next_attempt_at > now:
            return None
        if d.claimed_by not in (None, holder) and d.claimed_until is not None and d.claimed_until > now:
            return None
        d.claimed_by, d.claimed_until = holder, now + (lease(d) if callable(lease) else lease)
        version = self.storage.kv_put(DELIVERY, delivery_id, d.to_dict(), expected=doc.version)
        return None if version is None else (d, version)

    def finish(self, d: Delivery, version: int, attempt: Attempt, *, retry_at: datetime | None,
               give_up: bool = False) -> bool:
        """Record an attempt on a claimed delivery: delivered (``attempt.ok``), pending again until
        ``retry_at``, or failed (``give_up``). False if the claim was lost meanwhile."""
        d.attempts.append(attempt.to_dict())
        d.claimed_by = d.claimed_until = None
        if attempt.ok:
            d.status, d.delivered_at, d.next_attempt_at = DeliveryStatus.DELIVERED, attempt.at, None
        elif give_up or retry_at is None:
            d.status, d.next_attempt_at = DeliveryStatus.FAILED, None
        else:
            d.next_attempt_at = retry_at
        if self.storage.kv_put(DELIVERY, d.id, d.to_dict(), expected=version) is None:
            return False
        if d.status is DeliveryStatus.PENDING:
            self.storage.kv_put(DUE, d.id, {"at": _iso(d.next_attempt_at)})
        else:
            self.storage.kv_delete(DUE, d.id)
        return True

    def for_alert(self, alert_id: str) -> list[Delivery]:
        found = []
        for _, doc in self.storage.kv_list(BY_ALERT, f"{alert_id}|"):
            d = self.get(str(doc.value))
            if d is not None:
                found.append(d)
        return sorted(found, key=lambda d: d.created_at)

    def recent(self, *, migration_id: str | None = None, status: DeliveryStatus | None = None,
               limit: int = 100) -> list[Delivery]:
        """Deliveries, newest first (a scan: for operators' look-ups, not for the hot path)."""
        found = [Delivery.from_dict(doc.value) for _, doc in self.storage.kv_list(DELIVERY, limit=100_000)]
        found = [d for d in found if (migration_id is None or d.migration_id == migration_id)
                 and (status is None or d.status is status)]
        return sorted(found, key=lambda d: d.created_at, reverse=True)[:limit]


class Lease:
    """One holder at a time, for a time: taken when free or expired, renewed by its holder."""

    def __init__(self, storage: Storage, name: str = "dispatcher") -> None:
        self.storage = storage
        self.name = name

    def acquire(self, holder: str, now: datetime, ttl: timedelta) -> bool:
        doc = self.storage.kv_get(LEASE, self.name)
        value = {"holder": holder, "until": (now + ttl).isoformat(), "since": now.isoformat()}
        if doc is None:
            return self.storage.kv_put(LEASE, self.name, value, expected=0) is not None
        cur: dict[str, Any] = doc.value
        if cur.get("holder") not in (None, holder) and datetime.fromisoformat(cur["until"]) > now:
            return False
        if cur.get("holder") == holder:
            value["since"] = cur.get("since", value["since"])
        return self.storage.kv_put(LEASE, self.name, value, expected=doc.version) is not None

    def release(self, holder: str) -> None:
        doc = self.storage.kv_get(LEASE, self.name)
        if doc is not None and doc.value.get("holder") == holder:
            self.storage.kv_put(LEASE, self.name, {"holder": None, "until": doc.value["until"]},
                                expected=doc.version)

    def holder(self, now: datetime) -> str | None:
        """Who holds the lease now, or None."""
        doc = self.storage.kv_get(LEASE, self.name)
        if doc is None or doc.value.get("holder") is None:
            return None
        return str(doc.value["holder"]) if datetime.fromisoformat(doc.value["until"]) > now else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
