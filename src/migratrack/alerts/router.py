"""Which channels an alert goes to, and why not: pure functions of the alert, the configuration,
the silences and the migration's state."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from migratrack.alerts.config import AlertsConfig, ChannelConfig
from migratrack.core.models import Alert, MigrationState
from migratrack.core.states import AlertLevel, Status

#: rule sources whose alerts are one condition each, so repeats share a fingerprint whatever
#: their text says (the rate or the minutes in the message change between repeats)
_CONDITION_FAMILIES = {"rule:error-rate": "error-rate", "rule:error-rate-window": "error-rate",
                       "rule:stall": "stall", "rule:deadline": "deadline", "rule:over-total": "over-total"}


def fingerprint(migration_id: str, alert: Alert | dict[str, Any]) -> str:
    """Stable over repeats of one condition: the migration, phase, level and rule (the message
    too for alerts made by hand and for rules whose message names what failed)."""
    a = alert.to_dict() if isinstance(alert, Alert) else alert
    source = str(a.get("source") or "user")
    family = _CONDITION_FAMILIES.get(source)
    what = family if family else f"{source}\n{a['message']}"
    raw = "\n".join([migration_id, str(a.get("phase") or ""), str(a["level"]), what])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def channel_refuses(config: ChannelConfig, migration_id: str, alert: Alert) -> str | None:
    """Why a channel does not take an alert (None: it takes it)."""
    if alert.level.rank < config.min_level.rank:
        return f"below the channel's level {config.min_level.value}"
    if config.migrations and migration_id not in config.migrations:
        return "another migration than the channel's"
    if config.phases and alert.phase is not None and alert.phase not in config.phases:
        return f"phase {alert.phase} is not among the channel's phases"
    return None


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes matching alerts until ``ends_at``. A field left None matches everything."""

    id: str
    ends_at: datetime
    created_at: datetime
    created_by: str
    migration_id: str | None = None
    phase: str | None = None
    #: alerts at this level or below are muted
    max_level: AlertLevel = AlertLevel.CRITICAL
    #: text the alert's message must contain
    contains: str | None = None
    comment: str = ""

    def matches(self, migration_id: str, alert: Alert, now: datetime) -> bool:
        return (now < self.ends_at
                and self.migration_id in (None, migration_id)
                and self.phase in (None, alert.phase)
                and alert.level.rank <= self.max_level.rank
                and (self.contains is None or self.contains.lower() in alert.message.lower()))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ends_at": self.ends_at.isoformat(), "created_at": self.created_at.isoformat(),
                "created_by": self.created_by, "migration_id": self.migration_id, "phase": self.phase,
                "max_level": self.max_level.value, "contains": self.contains, "comment": self.comment}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Silence:
        return cls(id=d["id"], ends_at=datetime.fromisoformat(d["ends_at"]),
                   created_at=datetime.fromisoformat(d["created_at"]), created_by=d["created_by"],
                   migration_id=d.get("migration_id"), phase=d.get("phase"),
                   max_level=AlertLevel(d.get("max_level", "critical")), contains=d.get("contains"),
                   comment=d.get("comment", ""))


def inhibited_by(state: MigrationState | None, alert: Alert) -> str | None:
    """A failed phase mutes the stall alerts of the phases waiting on it (directly or through
    others), and a migration-wide stall alert while any phase has failed: the failure is the
    news, the stall its consequence."""
    if state is None or alert.source != "rule:stall":
        return None
    failed = [p.id for p in state.phases.values() if p.status is Status.FAILED]
    if not failed:
        return None
    if alert.phase is None:
        return f"phase {failed[0]} failed"
    seen: set[str] = set()
    todo = [alert.phase]
    while todo:
        pid = todo.pop()
        phase = state.phases.get(pid)
        for dep in phase.dependencies if phase else []:
            if dep in failed:
                return f"phase {dep} failed"
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return None


def routes(config: AlertsConfig, migration_id: str, alert: Alert) -> dict[str, str | None]:
    """Every configured channel, with why it does not take the alert (None: it takes it)."""
    return {name: channel_refuses(c, migration_id, alert) for name, c in config.channels.items()}
