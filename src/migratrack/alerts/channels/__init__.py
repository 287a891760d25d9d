"""One module per channel; :func:`build_channel` picks one by its configured ``type``."""

from __future__ import annotations

import importlib
from typing import Protocol

from migratrack.alerts.config import ChannelConfig
from migratrack.alerts.model import Answer, Notification

_MODULES = {"slack": "slack", "email": "email", "sns": "sns", "webhook": "webhook", "pagerduty": "pagerduty"}


class Channel(Protocol):
    name: str
    #: sends resolved notices (every channel here does; a resolved notice says so in its text)
    supports_resolve: bool

    def send(self, notice: Notification) -> Answer:
        """Send once; never raises: a failure is an Answer that says whether to retry."""
        ...


def build_channel(name: str, config: ChannelConfig) -> Channel:
    module = importlib.import_module(f"migratrack.alerts.channels.{_MODULES[config.type]}")
    channel: Channel = module.build(name, config)
    return channel
