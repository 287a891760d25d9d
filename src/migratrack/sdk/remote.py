"""RemoteBackend: the Backend protocol over HTTP — the request each method makes and the JSON
it sends and reads back — composed from the transport (``sdk/transport.py``) and the outbox
(``sdk/outbox.py``).

``MigrationProgressTracker("id", url="http://host:8000", token=...)`` (or ``MIGRATRACK_URL`` and
``MIGRATRACK_TOKEN``) uses it; it offers the same methods as :class:`MigrationService`.

A server outage never raises into the migration from progress, metrics or alert calls: they
go to the outbox, a bounded in-memory buffer sent, in order, by a background thread as soon as
the server answers again (at exit, the buffer is drained for up to ``deadline`` seconds).
Transitions (start, complete, fail…) and reads first wait for the buffer to drain, then retry
with exponential back-off, and raise :class:`~migratrack.errors.StorageUnavailable` only once
``deadline`` seconds have passed (``MIGRATRACK_RETRY_DEADLINE``, default 300). With
``strict=True`` nothing is buffered or retried: the first failure raises.

Writes carry an ``Idempotency-Key`` — the tracker's operation id for the write, else one made
here — kept over every retry, so a write retried after a lost reply is applied once. What could
not be sent by the deadline at close (or did not fit the buffer) is written to the spool
(``MIGRATRACK_SPOOL_DIR``) for the next tracker of the migration to replay.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import weakref
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from migratrack.admin import DeliveryView, Purged
from migratrack.core.commands import Command
from migratrack.core.eta import Estimate
from migratrack.core.models import (
    Alert,
    Event,
    Metrics,
    MigrationState,
    Phase,
    PhaseState,
)
from migratrack.core.plan import check_plan
from migratrack.core.states import AlertLevel, Control
from migratrack.core.summary import SubTaskPage, Summary
from migratrack.core.views import Dashboard, Overview
from migratrack.errors import ConfigurationError
from migratrack.sdk import lifecycle
from migratrack.sdk.outbox import DEFAULT_BUFFER, Item, Outbox
from migratrack.sdk.retry import new_op_id
from migratrack.sdk.spool import Spool
from migratrack.sdk.transport import Transient, Transport, error_for
from migratrack.service import ProgressUpdate
from migratrack.settings import Settings
from migratrack.storage.base import TokenRecord

if TYPE_CHECKING:
    from migratrack.alerts.router import Silence

log = logging.getLogger("migratrack")

#: while the server is away, control() asks it at most this often (else answers the last state)
PROBE_SECONDS = 2.0


def _q(value: str) -> str:
    return quote(value, safe="")


def _dt(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _phases_json(
    migration_id: str, phases: Iterable[Phase | Mapping[str, Any]], name: str | None
) -> list[dict[str, Any]]:
    """The phases as the server's plan model reads them. Validated here by the same model first,
    so that a bad plan raises InvalidPlan listing every problem, as it does in-process."""
    plan = check_plan(migration_id, phases, name)
    return [p.model_dump(mode="json", exclude_none=True) for p in plan.phases]


def _state(d: Mapping[str, Any]) -> MigrationState:
    state = MigrationState.from_header(d)
    state.seq = int(d.get("seq", 0))
    state.metrics = Metrics.from_dict(d.get("metrics") or {})
    state.phases = {p["id"]: PhaseState.from_dict(p) for p in d.get("phases", [])}
    return state


def _remember(controls: dict[str, Control], mid: str, r: httpx.Response) -> Control | None:
    """Note the control state a reply carries."""
    try:
        control = Control(r.json()["control"])
    except (ValueError, KeyError, TypeError):
        return None
    controls[mid] = control
    return control


def _remember_sent(controls: dict[str, Control], item: Item, r: httpx.Response) -> None:
    if item.kind in ("batch", "metrics"):
        _remember(controls, item.mid, r)


class RemoteBackend:
    """The :class:`~migratrack.sdk.backend.Backend` protocol over HTTP, resilient to outages."""

    def __init__(
        self,
        url: str | None,
        *,
        token: str | None = None,
        strict: bool = False,
        deadline: float | None = None,
        timeout: float = 10.0,
        buffer_size: int = DEFAULT_BUFFER,
        backoff: tuple[float, float] = (0.05, 2.0),
        transport: httpx.BaseTransport | None = None,
        spool_dir: str | Path | None = None,
    ) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"the server URL must start with http:// or https://, got {url!r}")
        if deadline is None or spool_dir is None:
            settings = Settings.from_env()
            deadline = settings.retry_deadline if deadline is None else deadline
            spool_dir = settings.spool_path() if spool_dir is None else spool_dir
        if buffer_size < 1:
            raise ConfigurationError("buffer_size must be at least 1")
        self._transport = Transport(url.rstrip("/"), token=token, strict=strict, deadline=float(deadline),
                                    timeout=timeout, backoff=backoff, transport=transport)
        self._controls: dict[str, Control] = {}
        # the outbox reports to the dict, not to self: the backend stays free of reference cycles
        self._outbox = Outbox(self._transport, size=buffer_size, owner=self,
                              on_sent=functools.partial(_remember_sent, self._controls),
                              spool=Spool(Path(spool_dir), self._transport.url))
        self._probed = 0.0
        _live.add(self)
        # the tracker does not close its backend: release the connections when it is dropped
        self._finalizer = weakref.finalize(self, self._transport.http.close)
        # weakref's own exit hook would close the connections before _drain_at_exit sends the buffer
        self._finalizer.atexit = False

    @property
    def url(self) -> str:
        return self._transport.url

    @property
    def strict(self) -> bool:
        return self._transport.strict

    @property
    def deadline(self) -> float:
        return self._transport.deadline

    @property
    def buffer_size(self) -> int:
        return self._outbox.size

    @property
    def dropped(self) -> int:
        """Writes dropped because the buffer was full."""
        return self._outbox.dropped

    @property
    def pending(self) -> int:
        """Writes buffered and not yet accepted by the server."""
        return self._outbox.pending

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every buffered write was sent (or ``timeout`` passed); True if none is left."""
        return self._outbox.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Send what is buffered (waiting up to ``timeout``, default the deadline), then close."""
        if self._outbox.closed:
            return
        self._outbox.close(timeout)
        self._finalizer()
        _live.discard(self)

    def _reliable(self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None,
                  actor: str | None = None, verb: str | None = None, key: str | None = None) -> Any:
        """Send after the buffer drained; retry transient failures until the deadline, a write
        under one Idempotency-Key (``key``, else a new one) over all its attempts."""
        end = time.monotonic() + self.deadline
        if not self.strict:
            self._outbox.wait_drained(end)
        return self._transport.reliable(method, path, end=end, body=body, params=params, actor=actor, verb=verb,
                                        key=key)

    # -- the Backend protocol ------------------------------------------------------------------

    def initialize(
        self, migration_id: str, phases: Iterable[Phase | Mapping[str, Any]], *, name: str | None = None,
        replace: bool = False, actor: str, metadata: Mapping[str, Any] | None = None,
    ) -> tuple[MigrationState, bool]:
        body: dict[str, Any] = {"id": migration_id, "phases": _phases_json(migration_id, phases, name),
                                "metadata": dict(metadata or {}), "replace": replace}
        if name is not None:
            body["name"] = name
        reply = self._reliable("POST", "/api/migrations", body=body, actor=actor)
        if not reply:  # created by our earlier attempt whose reply was lost
            return _state(self._reliable("GET", f"/api/migrations/{_q(migration_id)}/state")), True
        return _state(reply["state"]), bool(reply["created"])

    def execute(self, mid: str, command: Command, *, actor: str, op_id: str | None = None) -> object:
        path = command.path().format(**{k: _q(v) for k, v in command.address.items()})
        return self._reliable("POST", f"/api/migrations/{_q(mid)}/{path}", body=command.arguments or None,
                              actor=actor, verb=command.verb, key=op_id)

    def create_alert(
        self, mid: str, level: str | AlertLevel, message: str, phase: str | None = None, *, actor: str,
        op_id: str | None = None,
    ) -> Alert:
        """The stored alert; during an outage, a provisional one (id ``pending-…``) while it waits."""
        body: dict[str, Any] = {"level": str(level), "message": message}
        if phase is not None:
            body["phase"] = phase
        item = Item("POST", f"/api/migrations/{_q(mid)}/alerts", body, actor, "alert", mid, op_id or new_op_id())
        reply = self._outbox.send(item)
        if reply is not None:
            return Alert.from_dict(reply)
        return Alert(id=f"pending-{item.key[:12]}", level=AlertLevel(str(level)), message=message,
                     created_at=datetime.now(UTC), phase=phase, actor=actor)

    def heartbeat(self, mid: str, *, actor: str) -> None:
        """One try, not queued: a heartbeat lost in an outage is replaced by the next one."""
        with contextlib.suppress(Transient):
            self._transport.attempt("POST", f"/api/migrations/{_q(mid)}/heartbeat", actor=actor)

    def acknowledge_alert(self, mid: str, alert_id: str, by: str, *, actor: str) -> Alert:
        reply = self._reliable("POST", f"/api/migrations/{_q(mid)}/alerts/{_q(alert_id)}/ack", body={"by": by},
                               actor=actor)
        return Alert.from_dict(reply)

    def update_metrics(
        self, mid: str, values: Mapping[str, Any] | None = None, increments: Mapping[str, Any] | None = None,
        *, actor: str, op_id: str | None = None,
    ) -> None:
        body = {"values": dict(values or {}), "increment": dict(increments or {})}
        item = Item("PATCH", f"/api/migrations/{_q(mid)}/metrics", body, actor, "metrics", mid, op_id or new_op_id())
        reply = self._outbox.send(item)
        if reply is not None and "control" in reply:
            self._controls[mid] = Control(reply["control"])

    def apply_updates(
        self, mid: str, updates: Iterable[ProgressUpdate], increments: Mapping[str, int] | None = None,
        *, actor: str, op_id: str | None = None,
    ) -> Control | None:
        body: dict[str, Any] = {"updates": [u.to_dict() for u in updates], "increments": dict(increments or {})}
        item = Item("POST", f"/api/migrations/{_q(mid)}/batch", body, actor, "batch", mid, op_id or new_op_id())
        reply = self._outbox.send(item)
        if reply is not None and "control" in reply:
            control = Control(reply["control"])
            self._controls[mid] = control
            return control
        return self._controls.get(mid)

    def list_ids(self) -> list[str]:
        """The ids of the server's migrations."""
        return [str(m["migration_id"]) for m in self._reliable("GET", "/api/migrations")]

    def overview(self, mid: str) -> Overview:
        return Overview.model_validate(self._reliable("GET", f"/api/migrations/{_q(mid)}"))

    def dashboard(self, mid: str, *, alerts: int = 20) -> Dashboard:
        return Dashboard.model_validate(self._reliable("GET", f"/api/migrations/{_q(mid)}/dashboard",
                                                       params={"alerts": alerts}))

    def summary(self, mid: str) -> Summary:
        return Summary.model_validate(self._reliable("GET", f"/api/migrations/{_q(mid)}/summary"))

    def sub_tasks(self, mid: str, phase_id: str, *, status: str | None = None, after: str | None = None,
                  limit: int = 100) -> SubTaskPage:
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = status
        if after is not None:
            params["after"] = after
        return SubTaskPage.model_validate(self._reliable(
            "GET", f"/api/migrations/{_q(mid)}/phases/{_q(phase_id)}/sub-tasks", params=params))

    def estimate(self, mid: str) -> Estimate:
        d = self._reliable("GET", f"/api/migrations/{_q(mid)}/estimate")
        return Estimate(completion=_dt(d["completion"]), earliest=_dt(d["earliest"]), latest=_dt(d["latest"]),
                        remaining_seconds=d["remaining_seconds"], critical_path=tuple(d["critical_path"]),
                        calibration=float(d["calibration"]),
                        **{k: d.get(k) for k in ("driver", "method", "reason", "confidence", "unknown_reason")})

    def control(self, mid: str) -> Control:
        """The control state; during an outage, the last one the server told (never blocks long)."""
        t = self._transport
        if not t.strict and (self._outbox.queued or (t.down_since is not None
                                                     and time.monotonic() - self._probed < PROBE_SECONDS)):
            return self._controls.get(mid, Control.RUNNING)
        self._probed = time.monotonic()
        try:
            r = t.attempt("GET", f"/api/migrations/{_q(mid)}/control")
        except Transient as exc:
            if t.strict:
                raise t.unavailable(exc) from None
            t.note_down(exc)
            return self._controls.get(mid, Control.RUNNING)
        t.note_up()
        if r.status_code >= 400:
            raise error_for(r)
        return _remember(self._controls, mid, r) or Control.RUNNING

    def events(self, mid: str, after: int = 0, limit: int = 1000) -> list[Event]:
        out: list[Event] = []
        while len(out) < limit:
            page = self._reliable("GET", f"/api/migrations/{_q(mid)}/audit",
                                  params={"after": after, "limit": min(1000, limit - len(out))})
            for e in page["events"]:
                ts = _dt(e["ts"])
                assert ts is not None
                out.append(Event(migration_id=e["migration_id"], seq=e["seq"], type=e["type"], ts=ts,
                                 actor=e["actor"], payload=e["payload"]))
            if page["next_after"] is None:
                break
            after = page["next_after"]
        return out

    def alerts(self, mid: str, *, limit: int = 50, unacknowledged_only: bool = False) -> list[Alert]:
        reply = self._reliable("GET", f"/api/migrations/{_q(mid)}/alerts",
                               params={"limit": limit, "unacknowledged": unacknowledged_only})
        return [Alert.from_dict(a) for a in reply]

    # -- administration (migratrack.admin.Admin): the CLI's alerts, token and purge commands -----

    def alert(self, mid: str, alert_id: str) -> Alert:
        return Alert.from_dict(self._reliable("GET", f"/api/migrations/{_q(mid)}/alerts/{_q(alert_id)}"))

    def deliveries(self, mid: str, alert_id: str) -> list[DeliveryView]:
        reply = self._reliable("GET", f"/api/migrations/{_q(mid)}/alerts/{_q(alert_id)}/deliveries")
        return [DeliveryView.from_json(d) for d in reply]

    def silences(self) -> list[Silence]:
        from migratrack.alerts.router import Silence

        return [Silence.from_dict(s) for s in self._reliable("GET", "/api/alerts/silences")]

    def add_silence(self, *, duration: str | None, ends_at: datetime | None, migration_id: str | None,
                    phase: str | None, max_level: str, contains: str | None, comment: str, actor: str) -> Silence:
        from migratrack.alerts.router import Silence

        body = {"duration": duration, "ends_at": ends_at.isoformat() if ends_at else None,
                "migration_id": migration_id, "phase": phase, "max_level": max_level, "contains": contains,
                "comment": comment}
        return Silence.from_dict(self._reliable("POST", "/api/alerts/silences", body=body, actor=actor))

    def remove_silence(self, silence_id: str, *, actor: str) -> None:
        self._reliable("DELETE", f"/api/alerts/silences/{_q(silence_id)}", actor=actor)

    def set_deadline(self, mid: str, deadline: datetime | None, *, actor: str) -> None:
        self._reliable("PUT", f"/api/migrations/{_q(mid)}/deadline",
                       body={"deadline": deadline.isoformat() if deadline else None}, actor=actor)

    def test_channel(self, channel: str, *, actor: str) -> DeliveryView:
        """Sent by the server, through the channel of its own alert routing configuration."""
        return DeliveryView.from_json(self._reliable("POST", f"/api/alerts/channels/{_q(channel)}/test", actor=actor))

    def tokens(self) -> list[TokenRecord]:
        return [_token(t) for t in self._reliable("GET", "/api/tokens")]

    def create_token(self, name: str, role: str, *, migrations: list[str] | None) -> tuple[str, TokenRecord]:
        reply = self._reliable("POST", "/api/tokens", body={"name": name, "role": role, "migrations": migrations})
        return str(reply["token"]), _token(reply)

    def revoke_token(self, id_or_name: str) -> TokenRecord:
        return _token(self._reliable("DELETE", f"/api/tokens/{_q(id_or_name)}"))

    def purge(self, older_than: str, *, dry_run: bool, actor: str) -> Purged:
        reply = self._reliable("POST", "/api/purge", body={"older_than": older_than, "dry_run": dry_run}, actor=actor)
        return Purged(cutoff=datetime.fromisoformat(reply["cutoff"]), migration_ids=list(reply["migration_ids"]),
                      dry_run=bool(reply["dry_run"]))

    def __repr__(self) -> str:
        return f"<RemoteBackend {self.url}>"


def _token(d: Mapping[str, Any]) -> TokenRecord:
    """A token's record as the server shows it: never its hash (left empty here)."""
    return TokenRecord.from_dict({**d, "token_hash": ""})


_live: weakref.WeakSet[RemoteBackend] = weakref.WeakSet()


@lifecycle.at_exit(lifecycle.TRANSPORTS)
def _drain_at_exit() -> None:
    # after the trackers were closed: their final flush may have landed in the buffer
    for backend in list(_live):
        if backend.pending:
            log.warning("migratrack: sending %d buffered writes to %s before exiting (waiting up to %.0f s)",
                        backend.pending, backend.url, backend.deadline)
            backend.close()
