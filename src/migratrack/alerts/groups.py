"""Grouping of bursts, as in Alertmanager, kept in the store (kind ``group``, key
``<channel>|<migration>``): the first alert of a quiet group waits ``group_wait`` for others;
then the group sends at most once per ``group_interval``; an alert whose fingerprint was sent
within ``repeat_interval`` is a duplicate and is not sent again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from migratrack.storage.base import Storage

GROUP = "group"
#: a message lists this many alerts in full; the rest are counted
MAX_LISTED = 20


@dataclass
class Group:
    channel: str
    migration_id: str
    #: ids of the alerts waiting to be sent, oldest first
    ids: list[str] = field(default_factory=list)
    #: the first MAX_LISTED of them, as Alert.to_dict()
    listed: list[dict[str, Any]] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)
    flush_at: datetime | None = None
    last_sent_at: datetime | None = None
    #: fingerprint -> when last sent (pruned after repeat_interval)
    sent: dict[str, str] = field(default_factory=dict)
    version: int = 0

    @property
    def key(self) -> str:
        return f"{self.channel}|{self.migration_id}"

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "migration_id": self.migration_id, "ids": self.ids, "listed": self.listed,
                "fingerprints": self.fingerprints, "flush_at": _iso(self.flush_at),
                "last_sent_at": _iso(self.last_sent_at), "sent": self.sent}

    @classmethod
    def load(cls, storage: Storage, channel: str, migration_id: str) -> Group:
        doc = storage.kv_get(GROUP, f"{channel}|{migration_id}")
        if doc is None:
            return cls(channel, migration_id)
        d = doc.value
        return cls(channel, migration_id, list(d["ids"]), list(d["listed"]), list(d["fingerprints"]),
                   _dt(d.get("flush_at")), _dt(d.get("last_sent_at")), dict(d.get("sent") or {}), doc.version)

    def save(self, storage: Storage) -> None:
        # the dispatcher holding the lease is the only writer: a plain write
        self.version = storage.kv_put(GROUP, self.key, self.to_dict()) or 0

    def sent_recently(self, fp: str, now: datetime, repeat: timedelta) -> datetime | None:
        at = self.sent.get(fp)
        if at is None:
            return None
        when = datetime.fromisoformat(at)
        return when if now - when < repeat else None

    def add(self, alert: dict[str, Any], fp: str, now: datetime, wait: timedelta, interval: timedelta) -> bool:
        """Queue an alert; False if it is queued already (a re-read after a crash)."""
        if alert["id"] in self.ids:
            return False
        if not self.ids:
            if self.last_sent_at is None or now - self.last_sent_at >= interval:
                self.flush_at = now + wait  # a quiet group: wait for the rest of the burst
            else:
                self.flush_at = self.last_sent_at + interval
        self.ids.append(alert["id"])
        if len(self.listed) < MAX_LISTED:
            self.listed.append(alert)
        if fp not in self.fingerprints:
            self.fingerprints.append(fp)
        return True

    def due(self, now: datetime) -> bool:
        return bool(self.ids) and self.flush_at is not None and self.flush_at <= now

    def mark_sent(self, now: datetime, repeat: timedelta) -> None:
        for fp in self.fingerprints:
            self.sent[fp] = now.isoformat()
        self.sent = {fp: at for fp, at in self.sent.items() if now - datetime.fromisoformat(at) < repeat}
        self.ids, self.listed, self.fingerprints = [], [], []
        self.flush_at, self.last_sent_at = None, now


def pending_groups(storage: Storage) -> list[tuple[str, str]]:
    """(channel, migration) of every group with alerts waiting."""
    return [(d.value["channel"], d.value["migration_id"]) for _, d in storage.kv_list(GROUP, limit=100_000)
            if d.value.get("ids")]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
