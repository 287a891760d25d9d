"""The small documents beside the outbox: silences and heartbeats (``Storage.kv_*``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from migratrack.alerts.router import Silence
from migratrack.core.states import AlertLevel
from migratrack.errors import InvalidInput, NotFound
from migratrack.storage.base import Storage

SILENCE = "silence"
HEARTBEAT = "heartbeat"


def add_silence(storage: Storage, *, now: datetime, ends_at: datetime | None = None,
                duration: timedelta | None = None, created_by: str, migration_id: str | None = None,
                phase: str | None = None, max_level: AlertLevel | str = AlertLevel.CRITICAL,
                contains: str | None = None, comment: str = "") -> Silence:
    """Mute matching alerts until ``ends_at`` (or for ``duration``)."""
    if ends_at is None:
        if duration is None:
            raise InvalidInput("a silence needs an end: give ends_at or a duration such as 2h")
        ends_at = now + duration
    if ends_at.tzinfo is None:
        raise InvalidInput(f"a silence's end needs its time zone (add +00:00 or Z); got {ends_at.isoformat()}")
    if ends_at <= now:
        raise InvalidInput(f"a silence must end in the future; {ends_at.isoformat()} has passed")
    try:
        level = AlertLevel(max_level)
    except ValueError:
        raise InvalidInput(f"max_level must be one of {', '.join(v.value for v in AlertLevel)}; "
                           f"got {max_level!r}") from None
    s = Silence(id=uuid.uuid4().hex[:12], ends_at=ends_at, created_at=now, created_by=created_by,
                migration_id=migration_id, phase=phase, max_level=level, contains=contains or None,
                comment=comment)
    storage.kv_put(SILENCE, s.id, s.to_dict(), expected=0)
    return s


def silences(storage: Storage, *, now: datetime | None = None) -> list[Silence]:
    """The silences (only those still in force when ``now`` is given), soonest end first."""
    found = [Silence.from_dict(doc.value) for _, doc in storage.kv_list(SILENCE)]
    if now is not None:
        found = [s for s in found if s.ends_at > now]
    return sorted(found, key=lambda s: s.ends_at)


def remove_silence(storage: Storage, silence_id: str) -> None:
    if not storage.kv_delete(SILENCE, silence_id):
        raise NotFound(f"no silence {silence_id!r}; `migratrack alerts silences` lists them")


def beat(storage: Storage, migration_id: str, *, at: datetime, actor: str) -> None:
    """A worker's sign of life (one small write, the latest wins)."""
    storage.kv_put(HEARTBEAT, migration_id, {"at": at.isoformat(), "by": actor})


def last_beat(storage: Storage, migration_id: str) -> datetime | None:
    doc = storage.kv_get(HEARTBEAT, migration_id)
    return None if doc is None else datetime.fromisoformat(doc.value["at"])


def set_deadline(service: Any, migration_id: str, deadline: datetime | None, *, actor: str) -> None:
    """Set (or clear, with None) the migration's deadline: the end of its maintenance window,
    which the deadline rule compares the estimate with. Recorded in the event log."""
    def apply(r: Any) -> None:
        meta = r.state.metadata
        if deadline is None:
            if meta.pop("deadline", None) is None:
                return
        else:
            meta["deadline"] = deadline.isoformat()
        r.change.header = True
        r.record(None, "migration.deadline", deadline=deadline.isoformat() if deadline else None)

    service.run(migration_id, actor, apply)
