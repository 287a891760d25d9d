"""What a tracker does for alerting: heartbeats (so a stall is told from dead workers) and, in
embedded use (a store URL), the alert dispatcher's thread when it is wanted (alerts/runner.py)."""

from __future__ import annotations

import logging
from typing import Any

from migratrack.errors import ConfigurationError
from migratrack.settings import Settings
from migratrack.storage.base import parse_duration

log = logging.getLogger("migratrack")

#: stall_after when MIGRATRACK_STALL_AFTER is not set (alerts/config.py has the same default)
DEFAULT_STALL_AFTER = 600.0


def heartbeat_interval(settings: Settings) -> float:
    """A quarter of the stall threshold, between half a second and thirty seconds: a few beats
    fit in every window, and a worker costs one small write every half minute at most."""
    seconds = DEFAULT_STALL_AFTER
    if settings.stall_after:
        try:
            seconds = parse_duration(settings.stall_after).total_seconds()
        except ConfigurationError:
            log.warning("migratrack: MIGRATRACK_STALL_AFTER=%r is not a duration (90s, 10m); using 10m",
                        settings.stall_after)
    return min(30.0, max(0.5, seconds / 4))


def embedded_alerts(backend: Any, settings: Settings) -> Any:
    """The dispatcher thread for a tracker on a store (not a server), or None."""
    storage = getattr(backend, "storage", None)
    if storage is None or getattr(backend, "url", "").startswith(("http://", "https://")):
        return None
    from migratrack.alerts.runner import embedded_dispatcher

    return embedded_dispatcher(storage, settings)
