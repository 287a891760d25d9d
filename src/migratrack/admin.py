"""What an administrator does besides a migration's own commands: see where an alert went,
silence alerts, set a deadline, test an alert channel, manage API tokens, purge finished
migrations.

One protocol (:class:`Admin`), two sides: :class:`StoreAdmin` works on a store;
:class:`~migratrack.sdk.remote.RemoteBackend` does the same through a server, whose routes run
the store side on the server's store. The CLI's ``alerts``, ``token`` and ``purge`` commands
use it, so each works on a store (``--storage``) or through a server (``--url``) alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from migratrack.core.models import Alert
from migratrack.errors import ConfigurationError, InvalidInput
from migratrack.settings import Settings
from migratrack.storage.base import TokenRecord, parse_duration

if TYPE_CHECKING:
    from migratrack.alerts.model import Delivery
    from migratrack.alerts.router import Silence
    from migratrack.service import MigrationService

#: the same logger the token changes are written to (web/auth.py)
audit_log = logging.getLogger("migratrack.audit")


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One message to one channel, as a reader sees it: its status and every attempt."""

    id: str
    channel: str
    kind: str
    status: str
    reason: str | None = None
    next_attempt_at: datetime | None = None
    #: each attempt: ``at`` (ISO time), ``ok``, ``detail`` (the receiver's answer), ``by``
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"

    @property
    def answer(self) -> str:
        """The receiver's last answer."""
        return str(self.attempts[-1]["detail"]) if self.attempts else "no attempt"

    @classmethod
    def of(cls, d: Delivery) -> DeliveryView:
        return cls(id=d.id, channel=d.channel, kind=d.kind.value, status=d.status.value, reason=d.reason,
                   next_attempt_at=d.next_attempt_at, attempts=list(d.attempts))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DeliveryView:
        nxt = d.get("next_attempt_at")
        return cls(id=d["id"], channel=d["channel"], kind=d["kind"], status=d["status"], reason=d.get("reason"),
                   next_attempt_at=datetime.fromisoformat(nxt) if nxt else None,
                   attempts=[dict(a) for a in d.get("attempts") or []])


@dataclass(frozen=True, slots=True)
class Purged:
    """What a purge dropped (or, with ``dry_run``, would drop)."""

    cutoff: datetime
    migration_ids: list[str]
    dry_run: bool


class Admin(Protocol):
    def alert(self, mid: str, alert_id: str) -> Alert: ...

    def deliveries(self, mid: str, alert_id: str) -> list[DeliveryView]:
        """Where one alert went: each channel's delivery."""
        ...

    def silences(self) -> list[Silence]:
        """The silences in force, soonest end first."""
        ...

    def add_silence(self, *, duration: str | None, ends_at: datetime | None, migration_id: str | None,
                    phase: str | None, max_level: str, contains: str | None, comment: str, actor: str) -> Silence: ...

    def remove_silence(self, silence_id: str, *, actor: str) -> None: ...

    def set_deadline(self, mid: str, deadline: datetime | None, *, actor: str) -> None: ...

    def test_channel(self, channel: str, *, actor: str) -> DeliveryView:
        """Send a test alert through ``channel`` now; the delivery with the receiver's answer."""
        ...

    def tokens(self) -> list[TokenRecord]:
        """Every API token's record (never a token itself)."""
        ...

    def create_token(self, name: str, role: str, *, migrations: list[str] | None) -> tuple[str, TokenRecord]:
        """A new token (shown once) and its record."""
        ...

    def revoke_token(self, id_or_name: str) -> TokenRecord: ...

    def purge(self, older_than: str, *, dry_run: bool, actor: str) -> Purged:
        """Drop the finished migrations that ended longer ago than ``older_than`` (30d, 12h)."""
        ...


def duration_of(text: str, what: str) -> Any:
    """``text`` (30m, 2h, 1d) as a timedelta; a bad one is the caller's mistake (InvalidInput)."""
    try:
        return parse_duration(text)
    except ConfigurationError as exc:
        raise InvalidInput(f"{what}: {exc}") from None
    except OverflowError:
        raise InvalidInput(f"{what}: {text!r} is longer than a duration can be") from None


class StoreAdmin:
    """:class:`Admin` on a store, through its :class:`MigrationService`. The alert channels come
    from ``settings`` (default: the environment) and ``alerts_config`` (a routing file)."""

    def __init__(self, service: MigrationService, *, settings: Settings | None = None,
                 alerts_config: Path | None = None) -> None:
        self.service = service
        self.storage = service.storage
        self.settings = settings
        self.alerts_config = alerts_config

    def alert(self, mid: str, alert_id: str) -> Alert:
        return self.storage.get_alert(mid, alert_id)

    def deliveries(self, mid: str, alert_id: str) -> list[DeliveryView]:
        from migratrack.alerts.outbox import Outbox

        self.storage.get_alert(mid, alert_id)  # unknown: NotFound
        return [DeliveryView.of(d) for d in Outbox(self.storage).for_alert(alert_id)]

    def silences(self) -> list[Silence]:
        from migratrack.alerts import records

        return records.silences(self.storage, now=self.service.now())

    def add_silence(self, *, duration: str | None, ends_at: datetime | None, migration_id: str | None,
                    phase: str | None, max_level: str, contains: str | None, comment: str, actor: str) -> Silence:
        from migratrack.alerts import records

        if (duration is None) == (ends_at is None):
            raise InvalidInput("give one of a duration (e.g. 2h) or an end time (ISO, with its zone)")
        return records.add_silence(self.storage, now=self.service.now(), ends_at=ends_at,
                                   duration=duration_of(duration, "duration") if duration else None,
                                   created_by=actor, migration_id=migration_id, phase=phase, max_level=max_level,
                                   contains=contains, comment=comment)

    def remove_silence(self, silence_id: str, *, actor: str) -> None:
        from migratrack.alerts import records

        records.remove_silence(self.storage, silence_id)

    def set_deadline(self, mid: str, deadline: datetime | None, *, actor: str) -> None:
        from migratrack.alerts import records

        records.set_deadline(self.service, mid, deadline, actor=actor)

    def test_channel(self, channel: str, *, actor: str) -> DeliveryView:
        return DeliveryView.of(self.send_test(channel, actor=actor))

    def send_test(self, channel: str, *, actor: str) -> Delivery:
        """:meth:`test_channel`, answering the outbox's delivery itself."""
        from migratrack.alerts.config import load_config
        from migratrack.alerts.dispatcher import Dispatcher, send_test

        config = load_config(self.settings or Settings.from_env(), self.alerts_config)
        delivery = send_test(Dispatcher(self.storage, config), channel, actor=actor)
        audit_log.info("alert channel tested: %r by %s: %s", channel, actor, delivery.status.value)
        return delivery

    def _tokens(self) -> Any:
        from migratrack.web.auth import TokenManager

        return TokenManager(self.storage)

    def tokens(self) -> list[TokenRecord]:
        records: list[TokenRecord] = self._tokens().records()
        return records

    def create_token(self, name: str, role: str, *, migrations: list[str] | None,
                     by: str | None = None) -> tuple[str, TokenRecord]:
        created: tuple[str, TokenRecord] = self._tokens().create(name, role, by=by, migrations=migrations)
        return created

    def revoke_token(self, id_or_name: str, *, by: str | None = None) -> TokenRecord:
        record: TokenRecord = self._tokens().revoke(id_or_name, by=by)
        return record

    def purge(self, older_than: str, *, dry_run: bool, actor: str) -> Purged:
        age = duration_of(older_than, "older_than")
        try:
            cutoff = datetime.now(UTC) - age
        except OverflowError:
            raise InvalidInput(f"older_than: {older_than!r} reaches before the year 1") from None
        if dry_run:
            ids = [mid for mid in self.storage.list_ids() if self._ended_before(mid, cutoff)]
        else:
            ids = self.storage.purge_finished(cutoff)
            if ids:
                audit_log.info("migrations purged by %s (ended before %s): %s", actor, cutoff.isoformat(),
                               ", ".join(ids))
        return Purged(cutoff=cutoff, migration_ids=ids, dry_run=dry_run)

    def _ended_before(self, mid: str, cutoff: datetime) -> bool:
        state = self.storage.load(mid, sub_tasks=None)
        ended = state.finished_at or state.cancelled_at
        return ended is not None and ended < cutoff
