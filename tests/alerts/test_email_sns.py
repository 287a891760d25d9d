"""E-mail through a real SMTP server (aiosmtpd) and SNS/SSM in moto's server mode."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import boto3
import pytest
from aiosmtpd.controller import Controller
from moto.server import ThreadedMotoServer

from migratrack.alerts.dispatcher import Dispatcher
from migratrack.alerts.model import DeliveryStatus
from migratrack.service import MigrationService
from migratrack.storage import open_storage

from .helpers import config, run_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            self.refuse -= 1
            return "451 try again later"
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK queued"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def test_email_arrives_once_after_a_temporary_refusal(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    inbox.refuse = 2
    store = open_storage("memory://")
    svc = MigrationService(store)
    svc.initialize("db-move", [{"id": "copy"}], actor="t")
    svc.create_alert("db-move", "critical", "replica lag 900s", "copy", actor="t")
    d = Dispatcher(store, config({"mail": {"type": "email", "to": ["ops@example.com", "dba@example.com"],
                                           "smtp_url": f"smtp://127.0.0.1:{port}", "min_level": "error"}},
                                 public_url="http://dash.local"))
    run_until(d, lambda: len(inbox.messages) >= 1)
    for _ in range(3):
        d.tick()
    assert len(inbox.messages) == 1
    rcpts, msg = inbox.messages[0]
    assert rcpts == ["ops@example.com", "dba@example.com"]
    assert msg["Subject"].startswith("[CRITICAL] migration db-move, phase copy: replica lag 900s")
    assert "http://dash.local/admin/migration/db-move" in msg.get_payload()
    (delivery,) = d.outbox.recent()
    assert [a["ok"] for a in delivery.attempts] == [False, False, True]
    assert "SMTP 451" in delivery.attempts[0]["detail"]


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "eu-west-1",
                 "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": url}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield url
    server.stop()


def test_sns_topic_from_the_parameter_store_and_read_back_from_sqs(moto: str) -> None:
    sns = boto3.client("sns", region_name="eu-west-1")
    sqs = boto3.client("sqs", region_name="eu-west-1")
    ssm = boto3.client("ssm", region_name="eu-west-1")
    topic = sns.create_topic(Name="migration-alerts")["TopicArn"]
    ssm.put_parameter(Name="/migration/alert-topic-arn", Value=topic, Type="String")
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"})

    store = open_storage("memory://")
    svc = MigrationService(store)
    svc.initialize("bucket-copy", [{"id": "sync"}], actor="t")
    svc.create_alert("bucket-copy", "error", "403 on s3://old/bucket", "sync", actor="t")
    # no topic ARN configured: the channel reads it from /migration/alert-topic-arn
    d = Dispatcher(store, config({"sns": {"type": "sns"}}))
    run_until(d, lambda: bool(d.outbox.recent(status=DeliveryStatus.DELIVERED)))
    got: list[dict[str, Any]] = []
    end = time.monotonic() + 5
    while not got and time.monotonic() < end:
        for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            got.append(json.loads(m["Body"]))
    assert len(got) == 1
    assert got[0]["migration_id"] == "bucket-copy" and got[0]["level"] == "error"
    assert got[0]["alerts"][0]["message"] == "403 on s3://old/bucket"
    (delivery,) = d.outbox.recent()
    assert delivery.attempts[-1]["detail"].startswith("SNS MessageId ")
