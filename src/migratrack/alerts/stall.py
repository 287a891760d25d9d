"""Stall detection, told apart three ways (pure; times come in as arguments).

* **no heartbeat**: no worker reported anything for ``stall_after`` (trackers send a cheap
  heartbeat while alive, even when a loop makes no progress): the workers are gone;
* **no progress**: heartbeats arrive, but the phase's progress has not moved for ``stall_after``:
  a worker is alive but stuck;
* **paused**, or waiting for approval: deliberately still, never a stall.

A phase is watched only while it is in progress and the migration runs; the clock restarts
when it starts and when the migration resumes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

from migratrack.core.models import MigrationState, PhaseState
from migratrack.core.states import Control, Status
from migratrack.errors import ConfigurationError
from migratrack.storage.base import parse_duration


class Stall(str, Enum):
    NO_HEARTBEAT = "no heartbeat"
    NO_PROGRESS = "no progress"


def stall_after(state: MigrationState, phase: PhaseState, default: timedelta) -> timedelta:
    """The phase's ``stall_after`` (its plan metadata), else the migration's, else ``default``."""
    for meta in (phase.metadata, state.metadata):
        value = meta.get("stall_after")
        if value is not None:
            try:
                return parse_duration(value)
            except ConfigurationError:
                continue  # validated where it is set; a bad stored value falls back to the default
    return default


def stalls(
    state: MigrationState,
    *,
    now: datetime,
    progress_at: dict[str, datetime],
    heartbeat_at: datetime | None,
    default: timedelta,
) -> dict[str, tuple[Stall, timedelta]]:
    """The stalled phases: phase id -> (which kind, for how long). ``progress_at``: when each
    phase last moved (or started, or the migration resumed); ``heartbeat_at``: the last sign of
    life of any worker of the migration."""
    if state.control is not Control.RUNNING or state.finished_at is not None:
        return {}
    found: dict[str, tuple[Stall, timedelta]] = {}
    for phase in state.phases.values():
        if phase.status is not Status.IN_PROGRESS:
            continue
        limit = stall_after(state, phase, default)
        marks = [t for t in (progress_at.get(phase.id), phase.started_at, _resumed(state)) if t is not None]
        if not marks:
            continue
        moved = max(marks)
        alive = max(moved, heartbeat_at) if heartbeat_at is not None else moved
        if now - alive >= limit:
            found[phase.id] = (Stall.NO_HEARTBEAT, now - alive)
        elif now - moved >= limit:
            found[phase.id] = (Stall.NO_PROGRESS, now - moved)
    return found


def _resumed(state: MigrationState) -> datetime | None:
    ended = [p.ended_at for p in state.pauses if p.ended_at is not None]
    return max(ended) if ended else None


def describe(kind: Stall, phase: str, idle: timedelta) -> str:
    minutes = idle.total_seconds() / 60
    span = f"{idle.total_seconds():.0f}s" if minutes < 2 else f"{minutes:.0f} min"
    if kind is Stall.NO_HEARTBEAT:
        return f"phase {phase!r} stalled: no heartbeat from any worker for {span} (workers gone?)"
    return f"phase {phase!r} stalled: workers alive but no progress for {span}"
