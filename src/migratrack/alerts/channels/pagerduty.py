"""PagerDuty Events API v2: trigger on an alert, resolve when its condition clears, both by the
alert's fingerprint as the dedup key (so repeats of one condition are one incident)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migratrack.alerts.channels.http import post
from migratrack.alerts.config import ChannelConfig
from migratrack.alerts.model import Answer, NoticeKind, Notification

SEVERITY = {"info": "info", "warning": "warning", "error": "error", "critical": "critical"}


def event(routing_key: str, notice: Notification) -> dict[str, Any]:
    action = "resolve" if notice.kind is NoticeKind.RESOLVED else "trigger"
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": notice.fingerprint}
    if action == "trigger":
        body["payload"] = {
            "summary": notice.title[:1024], "source": f"migratrack:{notice.migration_id}",
            "severity": SEVERITY[notice.level.value], "component": notice.phase or notice.migration_id,
            "group": notice.migration_id, "class": notice.kind.value,
            "custom_details": {"alerts": notice.lines(), "key": notice.key},
        }
        if notice.link:
            body["links"] = [{"href": notice.link, "text": "migratrack dashboard"}]
    return body


@dataclass
class PagerDutyChannel:
    name: str
    routing_key: str
    events_url: str
    timeout: float
    supports_resolve: bool = True

    def send(self, notice: Notification) -> Answer:
        return post(self.events_url, json_body=event(self.routing_key, notice), timeout=self.timeout)


def build(name: str, config: ChannelConfig) -> PagerDutyChannel:
    assert config.routing_key is not None
    return PagerDutyChannel(name, config.routing_key, config.events_url, config.timeout)
