"""The Lambda alert processor: an SNS event in — an alert the tracker published (the SNS
channel's JSON), or a CloudWatch alarm notification — and out through the same routing
(levels, phases), formats and idempotency keys to Slack, e-mail, PagerDuty or a webhook.

Configured like the dispatcher (docs/alerts.md): ``MIGRATRACK_ALERTS_CONFIG`` and/or the
environment (``SLACK_WEBHOOK_URL``, ``MIGRATION_ALERT_EMAIL`` + ``MIGRATRACK_SMTP_URL``,
``MIGRATRACK_PAGERDUTY_ROUTING_KEY``, ...). SNS channels are left out (the message came from
one). With ``MIGRATRACK_STORAGE_URL`` (Redis or PostgreSQL) the outbox is shared, so a retried
invocation sends only what the first did not, and silences apply; without it each invocation
keeps its outbox in memory and the messages carry their idempotency key for the receivers.

A delivery that failed but may succeed later makes the handler raise, so Lambda retries the
event (asynchronous invocations are retried twice, then go to the function's failure destination).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from migratrack.alerts.channels import build_channel
from migratrack.alerts.config import load_config
from migratrack.alerts.dispatcher import Dispatcher
from migratrack.alerts.model import DeliveryStatus, NoticeKind, Notification, delivery_id
from migratrack.alerts.router import channel_refuses, fingerprint
from migratrack.core.models import Alert
from migratrack.core.states import AlertLevel
from migratrack.settings import Settings
from migratrack.storage import open_storage

log = logging.getLogger("migratrack.aws")

#: CloudWatch alarm states -> the notice's level (OK resolves the alarm's notice, so it goes where
#: the alarm went)
_ALARM_LEVEL = {"ALARM": AlertLevel.ERROR, "OK": AlertLevel.ERROR, "INSUFFICIENT_DATA": AlertLevel.WARNING}


class DeliveryPending(RuntimeError):
    """Some deliveries failed and may succeed on a retry of the event."""


def notice_of(record: dict[str, Any]) -> Notification | None:
    """The notice an SNS record carries, or None for a message this processor does not know."""
    sns = record.get("Sns") or {}
    message_id = str(sns.get("MessageId") or "")
    try:
        body = json.loads(sns.get("Message") or "")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return None
    if "AlarmName" in body:  # a CloudWatch alarm notification
        state = str(body.get("NewStateValue", "ALARM"))
        kind = NoticeKind.RESOLVED if state == "OK" else NoticeKind.FIRING
        dims = (body.get("Trigger") or {}).get("Dimensions") or []
        migration = next((str(d.get("value")) for d in dims if d.get("name") in ("MigrationId", "Migration")),
                         str(body["AlarmName"]))
        alert = Alert(id=f"cw-{message_id or body['AlarmName']}", level=_ALARM_LEVEL.get(state, AlertLevel.INFO),
                      message=f"CloudWatch alarm {body['AlarmName']} is {state}: {body.get('NewStateReason', '')}",
                      created_at=_time(body.get("StateChangeTime")), source="cloudwatch")
        fp = fingerprint(migration, {"level": "error", "phase": None, "source": "cloudwatch",
                                     "message": str(body["AlarmName"])})
        return Notification(kind, "", "", migration, [alert.to_dict()], 1, fp)
    if {"kind", "migration_id", "alerts"} <= body.keys():  # published by the tracker's SNS channel
        return Notification(NoticeKind(body["kind"]), "", "", str(body["migration_id"]), list(body["alerts"]),
                            int(body.get("count") or len(body["alerts"])), str(body.get("fingerprint") or ""),
                            body.get("link"))
    return None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    config = load_config(settings)
    shared = bool(os.environ.get("MIGRATRACK_STORAGE_URL") or os.environ.get("REDIS_URL"))
    storage = open_storage(settings.storage_url if shared else "memory://")
    try:
        channels = {n: build_channel(n, c) for n, c in config.channels.items() if c.type != "sns"}
        d = Dispatcher(storage, config, channels=channels)
        delivered = failed = pending = skipped = 0
        for record in event.get("Records") or []:
            notice = notice_of(record)
            if notice is None:
                skipped += 1
                log.warning("migratrack: an SNS message this processor does not know was skipped")
                continue
            message_id = str((record.get("Sns") or {}).get("MessageId") or notice.fingerprint)
            first = Alert.from_dict(notice.alerts[0]) if notice.alerts else None
            for name in channels:
                cfg = config.channels[name]
                if first is not None and channel_refuses(cfg, notice.migration_id, _at_level(first, notice)):
                    continue
                key = delivery_id(name, notice.kind, [message_id])
                out = Notification(notice.kind, name, key, notice.migration_id, notice.alerts, notice.count,
                                   notice.fingerprint or key, notice.link)
                d.enqueue(out, [a["id"] for a in notice.alerts], d.now())
                d.send_one(key)
                result = d.outbox.get(key)
                status = result.status if result else DeliveryStatus.FAILED
                if status is DeliveryStatus.DELIVERED:
                    delivered += 1
                elif status is DeliveryStatus.PENDING:
                    pending += 1
                else:
                    failed += 1
        summary = {"delivered": delivered, "failed": failed, "pending": pending, "skipped": skipped}
        if pending:
            raise DeliveryPending(f"{pending} deliveries failed for now; retrying the event: {summary}")
        return summary
    finally:
        storage.close()


def _at_level(alert: Alert, notice: Notification) -> Alert:
    """The alert routed at the notice's level (the highest of its group)."""
    alert.level = notice.level
    return alert


def _time(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("+0000", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
