from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from migratrack.alerts.config import AlertsConfig
from migratrack.alerts.dispatcher import Dispatcher


def config(channels: dict[str, dict[str, Any]], **kw: Any) -> AlertsConfig:
    """Fast windows and retries, for tests."""
    base: dict[str, Any] = {"group_wait": "0.01s", "group_interval": "0.01s", "retry_first": "0.05s",
                            "retry_cap": "0.2s", "tick": "0.05s", "lease_ttl": "2s"}
    base.update(kw)
    return AlertsConfig.model_validate({"channels": channels, **base})


def run_until(d: Dispatcher, done: Callable[[], bool], timeout: float = 10.0) -> int:
    """Tick until ``done()``; the number of ticks."""
    end = time.monotonic() + timeout
    n = 0
    while time.monotonic() < end:
        d.tick()
        n += 1
        if done():
            return n
        time.sleep(0.02)
    raise AssertionError(f"not done after {n} ticks in {timeout}s")
