"""Migration speed (bytes/s): reported, from a sliding window over the data counter, or the average.

Pure: the samples come from the migration's event log (``metrics.updated`` events that add to or
set ``total_data_migrated``), read by the caller; ``now`` is an argument.

The rules, in order:

1. a finished (or cancelled) migration shows its average: data migrated / active seconds. A
   script's last reported speed, or a window over the quiet time after the last update, would
   understate it;
2. a speed the script reports (the ``migration_speed`` gauge) is shown as reported;
3. else the data added in the last ``window`` seconds over the active (unpaused) part of that
   window: smoothed over the window, and falling towards zero while nothing arrives;
4. else (no samples) the average so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from migratrack.core.models import Event, MigrationState
from migratrack.core.rules import active_seconds

#: the sliding window, seconds
WINDOW_SECONDS = 60.0
#: the shortest span a rate is taken over
MIN_SPAN_SECONDS = 1.0
#: how many of the newest events a caller should read for the window
SAMPLE_EVENTS = 256


@dataclass(frozen=True, slots=True)
class DataSample:
    """``added`` bytes were counted at ``ts`` (an increment; a set is the difference it made)."""

    ts: datetime
    added: int


def data_samples(events: Iterable[Event]) -> list[DataSample]:
    """The data-counter changes among ``events`` (oldest first), as increments."""
    out: list[DataSample] = []
    for e in events:
        if e.type != "metrics.updated":
            continue
        inc = e.payload.get("increment") or {}
        added = inc.get("total_data_migrated")
        if isinstance(added, int) and added > 0:
            out.append(DataSample(e.ts, added))
    return out


def average_speed(state: MigrationState, now: datetime) -> float | None:
    """Data migrated over the active seconds from the start to the end (or now)."""
    total = state.metrics.total_data_migrated
    if not total or state.started_at is None:
        return None
    end = state.finished_at or state.cancelled_at or now
    active = active_seconds(state, state.started_at, end)
    return total / active if active > 0 else None


def window_speed(state: MigrationState, samples: Sequence[DataSample], now: datetime,
                 window: float = WINDOW_SECONDS, *, since: datetime | None = None) -> float | None:
    """Bytes/s over the last ``window`` seconds (less paused time). ``since`` is the time of the
    oldest event read when the caller read only the newest part of the log: the window starts
    no earlier (what came before is unknown)."""
    start = now - timedelta(seconds=window)
    if state.started_at is not None and state.started_at > start:
        start = state.started_at
    if since is not None and since > start:
        start = since
    span = active_seconds(state, start, now)
    if span <= 0:
        return None
    # a first report a few milliseconds after the start says nothing yet about a rate
    return sum(s.added for s in samples if start < s.ts <= now) / max(span, MIN_SPAN_SECONDS)


def needs_samples(state: MigrationState) -> bool:
    """Whether :func:`migration_speed` would read samples: a caller skips reading the log if not."""
    finished = state.finished_at is not None or state.cancelled_at is not None
    reported = isinstance(state.metrics.gauges.get("migration_speed"), int | float)
    return not finished and not reported and state.metrics.total_data_migrated > 0


def migration_speed(state: MigrationState, now: datetime, samples: Sequence[DataSample] | None = None,
                    *, since: datetime | None = None) -> float | None:
    """The speed to show (bytes/s) by the rules in this module's docstring; None when unknown.
    ``samples`` is None when the caller did not read the log (then the average stands in)."""
    reported = state.metrics.gauges.get("migration_speed")
    reported = float(reported) if isinstance(reported, int | float) else None
    if state.finished_at is not None or state.cancelled_at is not None:
        average = average_speed(state, now)
        return average if average is not None else reported
    if reported is not None:
        return reported
    if samples is not None and state.metrics.total_data_migrated > 0:
        speed = window_speed(state, samples, now, since=since)
        if speed is not None:
            return speed
    return average_speed(state, now)
