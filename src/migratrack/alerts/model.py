"""What the outbox keeps and what a channel sends: deliveries, attempts, notifications."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from migratrack.core.states import AlertLevel


class DeliveryStatus(str, Enum):
    #: waiting for its (next) attempt
    PENDING = "pending"
    #: the receiver accepted it
    DELIVERED = "delivered"
    #: given up: the receiver refused it for good, or every retry failed
    FAILED = "failed"
    #: not sent, on purpose: silenced, inhibited, a duplicate, or below the channel's level
    SUPPRESSED = "suppressed"


class NoticeKind(str, Enum):
    FIRING = "firing"
    #: the condition behind an earlier alert cleared (a stall ended, the error rate fell back)
    RESOLVED = "resolved"
    #: an unacknowledged critical alert sent on to a further channel
    ESCALATION = "escalation"
    #: ``migratrack alerts test``
    TEST = "test"


@dataclass(slots=True)
class Notification:
    """One message to one channel: one alert, or a group of them (a burst)."""

    kind: NoticeKind
    channel: str
    #: the idempotency key of the message (the delivery's id): the same over every retry
    key: str
    migration_id: str
    #: the alerts, as ``Alert.to_dict()``, oldest first (a large group keeps the first ones)
    alerts: list[dict[str, Any]]
    #: how many alerts the group held (``len(alerts)`` unless it was cut short)
    count: int
    #: stable across repeats of one condition: what PagerDuty de-duplicates and resolves by
    fingerprint: str
    #: a link to the migration on the dashboard (MIGRATRACK_PUBLIC_URL), or None
    link: str | None = None

    @property
    def level(self) -> AlertLevel:
        levels = [AlertLevel(a["level"]) for a in self.alerts] or [AlertLevel.INFO]
        return max(levels, key=lambda lv: lv.rank)

    @property
    def phase(self) -> str | None:
        phases = {a.get("phase") for a in self.alerts}
        return phases.pop() if len(phases) == 1 else None

    @property
    def title(self) -> str:
        prefix = {NoticeKind.RESOLVED: "RESOLVED", NoticeKind.ESCALATION: "ESCALATED",
                  NoticeKind.TEST: "TEST"}.get(self.kind)
        head = f"[{self.level.value.upper()}] migration {self.migration_id}"
        if self.phase:
            head += f", phase {self.phase}"
        if self.count > 1:
            head += f": {self.count} alerts"
        else:
            head += f": {self.alerts[0]['message']}" if self.alerts else ""
        return f"{prefix} {head}" if prefix else head

    def lines(self) -> list[str]:
        """One line per alert, for the message body."""
        out = [f"{a['created_at']} {a['level']}" + (f" [{a['phase']}]" if a.get("phase") else "")
               + f" {a['message']}" for a in self.alerts]
        if self.count > len(self.alerts):
            out.append(f"... and {self.count - len(self.alerts)} more (migratrack alerts list {self.migration_id})")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the generic webhook and of SNS messages."""
        return {
            "kind": self.kind.value, "key": self.key, "migration_id": self.migration_id,
            "level": self.level.value, "phase": self.phase, "title": self.title, "fingerprint": self.fingerprint,
            "count": self.count, "alerts": self.alerts, "link": self.link,
        }


@dataclass(slots=True)
class Answer:
    """A receiver's answer to one attempt."""

    ok: bool
    #: worth trying again (a 5xx, a timeout, a refused connection); False: given up at once
    retry: bool
    #: what the receiver said, short and without secrets ("HTTP 200 ok", "250 queued as ...")
    detail: str


@dataclass(slots=True)
class Attempt:
    at: datetime
    ok: bool
    detail: str
    by: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "ok": self.ok, "detail": self.detail, "by": self.by}


@dataclass(slots=True)
class Delivery:
    """One message to one channel, as the outbox keeps it (kind ``delivery`` in the store)."""

    id: str
    channel: str
    kind: NoticeKind
    migration_id: str
    alert_ids: list[str]
    notification: dict[str, Any]
    status: DeliveryStatus
    created_at: datetime
    next_attempt_at: datetime | None
    reason: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    delivered_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "channel": self.channel, "kind": self.kind.value, "migration_id": self.migration_id,
            "alert_ids": self.alert_ids, "notification": self.notification, "status": self.status.value,
            "created_at": self.created_at.isoformat(),
            "next_attempt_at": _iso(self.next_attempt_at), "reason": self.reason, "attempts": self.attempts,
            "claimed_by": self.claimed_by, "claimed_until": _iso(self.claimed_until),
            "delivered_at": _iso(self.delivered_at),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Delivery:
        return cls(
            id=d["id"], channel=d["channel"], kind=NoticeKind(d["kind"]), migration_id=d["migration_id"],
            alert_ids=list(d["alert_ids"]), notification=d["notification"], status=DeliveryStatus(d["status"]),
            created_at=datetime.fromisoformat(d["created_at"]), next_attempt_at=_dt(d.get("next_attempt_at")),
            reason=d.get("reason"), attempts=list(d.get("attempts") or []), claimed_by=d.get("claimed_by"),
            claimed_until=_dt(d.get("claimed_until")), delivered_at=_dt(d.get("delivered_at")),
        )

    def notice(self) -> Notification:
        n = self.notification
        return Notification(
            kind=NoticeKind(n["kind"]), channel=self.channel, key=self.id, migration_id=self.migration_id,
            alerts=n["alerts"], count=n["count"], fingerprint=n["fingerprint"], link=n.get("link"),
        )


def delivery_id(channel: str, kind: NoticeKind, alert_ids: list[str], extra: str = "") -> str:
    """The idempotency key of a message: the same alerts to the same channel give the same key,
    so a dispatcher that crashed after writing it writes nothing new when it starts again."""
    digest = hashlib.sha256("\n".join([channel, kind.value, extra, *alert_ids]).encode()).hexdigest()[:24]
    return f"{kind.value}-{digest}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
