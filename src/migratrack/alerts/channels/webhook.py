"""A generic webhook: the notice as JSON, signed with HMAC-SHA256 of the body.

Headers: ``X-Migratrack-Signature: sha256=<hex>`` (when a secret is set), ``Idempotency-Key``
(the same over every retry of one message), ``X-Migratrack-Kind`` (firing, resolved, ...).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from migratrack.alerts.channels.http import post
from migratrack.alerts.config import ChannelConfig
from migratrack.alerts.model import Answer, Notification

SIGNATURE_HEADER = "X-Migratrack-Signature"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class WebhookChannel:
    name: str
    url: str
    secret: str | None
    timeout: float
    supports_resolve: bool = True

    def send(self, notice: Notification) -> Answer:
        body = json.dumps(notice.to_dict(), separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": notice.key,
                   "X-Migratrack-Kind": notice.kind.value}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        return post(self.url, content=body, headers=headers, timeout=self.timeout)


def build(name: str, config: ChannelConfig) -> WebhookChannel:
    assert config.url is not None
    return WebhookChannel(name, config.url, config.secret, config.timeout)
