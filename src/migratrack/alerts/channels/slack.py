"""Slack incoming webhooks: one attachment coloured by level, with the phase and a link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migratrack.alerts.channels.http import post
from migratrack.alerts.config import ChannelConfig
from migratrack.alerts.model import Answer, NoticeKind, Notification

COLOURS = {"info": "#439FE0", "warning": "#ECB22E", "error": "#E01E5A", "critical": "#8B0000"}
RESOLVED_COLOUR = "#2EB67D"


def message(notice: Notification) -> dict[str, Any]:
    """The webhook's JSON body."""
    fields = [{"title": "Migration", "value": notice.migration_id, "short": True},
              {"title": "Level", "value": notice.level.value, "short": True}]
    if notice.phase:
        fields.append({"title": "Phase", "value": notice.phase, "short": True})
    colour = RESOLVED_COLOUR if notice.kind is NoticeKind.RESOLVED else COLOURS[notice.level.value]
    attachment: dict[str, Any] = {
        "color": colour, "title": notice.title, "text": "\n".join(notice.lines()), "fields": fields,
        "footer": f"migratrack · {notice.key}",
    }
    if notice.link:
        attachment["title_link"] = notice.link
    return {"text": notice.title, "attachments": [attachment]}


@dataclass
class SlackChannel:
    name: str
    url: str
    timeout: float
    supports_resolve: bool = True

    def send(self, notice: Notification) -> Answer:
        return post(self.url, json_body=message(notice), timeout=self.timeout,
                    headers={"Idempotency-Key": notice.key})


def build(name: str, config: ChannelConfig) -> SlackChannel:
    assert config.url is not None
    return SlackChannel(name, config.url, config.timeout)
