"""The Lambda alert processor: SNS events (the tracker's alerts, CloudWatch alarms) routed to
Slack and PagerDuty with the same formats and keys."""

from __future__ import annotations

import json
from typing import Any

import pytest

from migratrack.aws import lambda_handler
from migratrack.aws.lambda_alerts import DeliveryPending

from .receiver import Receiver


def sns(message: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {"EventSource": "aws:sns", "Sns": {"MessageId": message_id, "Message": json.dumps(message)}}


TRACKER_ALERT = {
    "kind": "firing", "key": "firing-abc", "migration_id": "db-move", "level": "error", "phase": "copy",
    "title": "[ERROR] migration db-move, phase copy: checksum mismatch", "fingerprint": "f" * 32, "count": 1,
    "alerts": [{"id": "a1", "level": "error", "message": "checksum mismatch", "created_at": "2026-11-30T05:00:00+00:00",
                "phase": "copy", "source": "user", "actor": "w", "acknowledged_at": None, "acknowledged_by": None}],
    "link": None,
}


def alarm(state: str) -> dict[str, Any]:
    return {"AlarmName": "db-move-error-rate", "NewStateValue": state, "NewStateReason": "Threshold crossed",
            "StateChangeTime": "2026-11-30T05:01:00.000+0000",
            "Trigger": {"Dimensions": [{"name": "MigrationId", "value": "db-move"}]}}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    for k in ("MIGRATRACK_STORAGE_URL", "REDIS_URL", "MIGRATRACK_ALERTS_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url + "/slack")
    monkeypatch.setenv("MIGRATRACK_PAGERDUTY_ROUTING_KEY", "r" * 32)
    monkeypatch.setenv("MIGRATRACK_PAGERDUTY_EVENTS_URL", receiver.url + "/pd")
    monkeypatch.setenv("MIGRATRACK_SNS_TOPIC_ARN", "arn:aws:sns:eu-west-1:1:loop")  # never published back to


def test_tracker_alerts_and_alarms_reach_slack_and_pagerduty(env: None, receiver: Receiver) -> None:
    event = {"Records": [sns(TRACKER_ALERT, "m-1"), sns(alarm("ALARM"), "m-2"), sns(alarm("OK"), "m-3"),
                         {"Sns": {"MessageId": "m-4", "Message": "not json"}}]}
    summary = lambda_handler(event, None)
    assert summary == {"delivered": 6, "failed": 0, "pending": 0, "skipped": 1}
    slack = [r.json for r in receiver.accepted if r.path == "/slack"]
    pd = [r.json for r in receiver.accepted if r.path == "/pd"]
    assert slack[0]["attachments"][0]["fields"][2] == {"title": "Phase", "value": "copy", "short": True}
    assert "RESOLVED" in slack[2]["text"]
    assert [p["event_action"] for p in pd] == ["trigger", "trigger", "resolve"]
    assert pd[0]["dedup_key"] == "f" * 32
    assert pd[1]["dedup_key"] == pd[2]["dedup_key"]  # the alarm's resolve closes its incident


def test_a_receiver_that_fails_makes_lambda_retry_the_event(env: None, receiver: Receiver) -> None:
    receiver.fail(1)
    with pytest.raises(DeliveryPending):
        lambda_handler({"Records": [sns(TRACKER_ALERT, "m-9")]}, None)
