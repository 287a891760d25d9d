"""Automatic alert rules the dispatcher evaluates (pure): the error rate over a sliding window,
and the estimate passing the migration's deadline. The rules that follow a single command
(phase or sub-task failed, done > total, completed, paused, resumed, cancelled) live in
core/rules.py, where the command is validated."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from migratrack.alerts.config import ErrorRateConfig
from migratrack.core.models import MigrationState
from migratrack.errors import ConfigurationError, InvalidInput
from migratrack.storage.base import parse_duration


class RateLevel(str, Enum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"


def rate_config(state: MigrationState, default: ErrorRateConfig) -> ErrorRateConfig:
    """The thresholds for one migration: its plan's metadata (``error_rate_threshold``,
    ``error_rate_critical``, ``error_rate_window``, ``error_rate_min_operations``) over the
    configured defaults."""
    meta = state.metadata
    values: dict[str, Any] = {}
    for key, field in (("error_rate_threshold", "warning"), ("error_rate_critical", "critical"),
                       ("error_rate_min_operations", "min_operations")):
        if isinstance(meta.get(key), int | float) and not isinstance(meta.get(key), bool):
            values[field] = meta[key]
    if meta.get("error_rate_window") is not None:
        with contextlib.suppress(ConfigurationError):
            values["window"] = parse_duration(meta["error_rate_window"])
    return default.model_copy(update=values) if values else default


def window_rate(samples: list[list[Any]], now: datetime, window: timedelta) -> tuple[float | None, int]:
    """The failed share (percent) of the operations counted within ``window`` before ``now``, and
    how many operations that is. ``samples``: [iso time, successful, failed] increments."""
    cutoff = now - window
    ok = failed = 0
    for at, s, f in samples:
        if datetime.fromisoformat(at) >= cutoff:
            ok += int(s)
            failed += int(f)
    total = ok + failed
    return (failed * 100.0 / total if total else None), total


def next_rate_level(current: RateLevel, rate: float | None, operations: int, c: ErrorRateConfig) -> RateLevel:
    """Today's hysteresis, with a second threshold: a level is entered above its threshold and
    left only at half of it; fewer than ``min_operations`` in the window change nothing."""
    if rate is None or operations < c.min_operations:
        return current
    if rate > c.critical:
        return RateLevel.CRITICAL
    if current is RateLevel.CRITICAL and rate > c.critical / 2:
        return RateLevel.CRITICAL
    if rate > c.warning:
        return RateLevel.WARNING
    if current is not RateLevel.OK and rate > c.warning / 2:
        return RateLevel.WARNING
    return RateLevel.OK


def deadline_of(state: MigrationState) -> datetime | None:
    """The migration's deadline (``deadline`` in its metadata: an ISO time with a zone)."""
    value = state.metadata.get("deadline")
    if not value:
        return None
    try:
        return check_deadline(value)
    except InvalidInput:
        return None


def check_deadline(value: Any) -> datetime:
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"a deadline is an ISO 8601 time with its zone, e.g. 2026-12-01T06:00:00+00:00; "
                           f"got {value!r}") from None
    if at.tzinfo is None:
        raise InvalidInput(f"a deadline needs its time zone (add +00:00 or Z); got {value!r}")
    return at
