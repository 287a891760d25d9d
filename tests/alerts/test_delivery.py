"""Alerts go to the store first, then out through the outbox: each arrives once, through 500s."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path

import pytest

from migratrack.alerts.dispatcher import Dispatcher, send_test
from migratrack.alerts.model import DeliveryStatus
from migratrack.service import MigrationService
from migratrack.storage import open_storage

from .helpers import config, run_until
from .receiver import Receiver


def channel_for(kind: str, receiver: Receiver) -> dict[str, object]:
    if kind == "slack":
        return {"type": "slack", "url": receiver.url + "/services/T/B/X", "min_level": "info"}
    if kind == "webhook":
        return {"type": "webhook", "url": receiver.url + "/hook", "secret": "s3cret", "min_level": "info"}
    return {"type": "pagerduty", "routing_key": "R" * 32, "events_url": receiver.url + "/v2/enqueue",
            "min_level": "info"}


@pytest.mark.parametrize("kind", ["slack", "webhook", "pagerduty"])
def test_each_alert_arrives_once_though_the_receiver_fails_first(kind: str, receiver: Receiver,
                                                                  tmp_path: Path) -> None:
    store = open_storage(f"sqlite:///{tmp_path}/a.db")
    svc = MigrationService(store)
    for i in range(3):
        svc.initialize(f"m{i}", [{"id": "copy"}], actor="t")
        svc.create_alert(f"m{i}", "error", f"disk full on node {i}", "copy", actor="t")
    receiver.fail(4)  # answers 500 four times, then recovers
    d = Dispatcher(store, config({"out": channel_for(kind, receiver)}, public_url="https://mt.example"))
    run_until(d, lambda: len(receiver.accepted) >= 3 and not d.outbox.due(d.now() + timedelta(days=1)))
    # a few more rounds change nothing: nothing is sent twice
    for _ in range(5):
        d.tick()
    assert len(receiver.accepted) == 3
    assert len(receiver.seen) == 7
    bodies = [r.json for r in receiver.accepted]
    text = json.dumps(bodies)
    assert all(f"disk full on node {i}" in text for i in range(3))
    deliveries = d.outbox.recent()
    assert len(deliveries) == 3 and all(x.status is DeliveryStatus.DELIVERED for x in deliveries)
    assert sum(len(x.attempts) for x in deliveries) == 7  # every attempt recorded, with the answer
    failed = [a for x in deliveries for a in x.attempts if not a["ok"]]
    assert len(failed) == 4 and all("HTTP 500" in a["detail"] for a in failed)
    if kind == "slack":
        att = bodies[0]["attachments"][0]
        assert att["color"] == "#E01E5A" and att["title_link"].startswith("https://mt.example/admin/migration/m")
        assert {"title": "Phase", "value": "copy", "short": True} in att["fields"]
    elif kind == "webhook":
        r = receiver.accepted[0]
        want = "sha256=" + hmac.new(b"s3cret", r.body, hashlib.sha256).hexdigest()
        assert r.headers["x-migratrack-signature"] == want
        assert r.headers["idempotency-key"] == r.json["key"]
    else:
        assert {b["event_action"] for b in bodies} == {"trigger"}
        assert bodies[0]["payload"]["severity"] == "error" and len(bodies[0]["dedup_key"]) == 32
    store.close()


def test_a_receiver_that_refuses_for_good_is_not_retried(receiver: Receiver) -> None:
    store = open_storage("memory://")
    svc = MigrationService(store)
    svc.initialize("m", [{"id": "copy"}], actor="t")
    svc.create_alert("m", "error", "boom", actor="t")
    receiver.fail(100, status=404)
    d = Dispatcher(store, config({"hook": channel_for("webhook", receiver)}))
    run_until(d, lambda: bool(d.outbox.recent(status=DeliveryStatus.FAILED)))
    (failed,) = d.outbox.recent()
    assert len(failed.attempts) == 1 and "HTTP 404" in failed.attempts[0]["detail"]


def test_the_test_command_reports_the_receivers_answer(receiver: Receiver) -> None:
    store = open_storage("memory://")
    d = Dispatcher(store, config({"slack": channel_for("slack", receiver)}))
    delivery = send_test(d, "slack", actor="ops")
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.attempts[0]["detail"] == "HTTP 200 ok"
    assert "TEST" in receiver.accepted[0].json["text"]
