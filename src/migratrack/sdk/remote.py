"""RemoteBackend: the tracker's transport to a migratrack server over HTTP.

``MigrationProgressTracker("id", url="http://host:8000", token=...)`` (or ``MIGRATRACK_URL`` and
``MIGRATRACK_TOKEN``) uses it; it offers the same methods as :class:`MigrationService`.

A server outage never raises into the migration from progress, metrics or alert calls: they
go to a bounded in-memory buffer and are sent, in order, by a background thread as soon as the
server answers again (at exit, the buffer is drained for up to ``deadline`` seconds).
Transitions (start, complete, fail…) and reads first wait for the buffer to drain, then retry
with exponential back-off, and raise :class:`~migratrack.errors.StorageUnavailable` only once
``deadline`` seconds have passed (``MIGRATRACK_RETRY_DEADLINE``, default 300). With
``strict=True`` nothing is buffered or retried: the first failure raises.

Writes carry an ``Idempotency-Key``, so a write retried after a lost reply is applied once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from migratrack import errors as _errors
from migratrack.core.commands import Command
from migratrack.core.delta import ProgressDelta
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
from migratrack.core.states import VERB_TARGET, AlertLevel, Control
from migratrack.core.views import Dashboard, Overview
from migratrack.errors import (
    ConfigurationError,
    InvalidInput,
    MigratrackError,
    NotFound,
    RuleViolation,
    StorageUnavailable,
)
from migratrack.sdk import lifecycle
from migratrack.service import ProgressUpdate
from migratrack.settings import Settings

log = logging.getLogger("migratrack")

DEFAULT_BUFFER = 10_000
#: while the server is away, control() asks it at most this often (else answers the last state)
PROBE_SECONDS = 2.0
ACTOR_HEADER = "X-Migratrack-Actor"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class _Transient(Exception):
    """The server could not be reached, or answered that it cannot serve now (5xx, 429)."""


@dataclass(slots=True)
class _Item:
    """A buffered write."""

    method: str
    path: str
    body: dict[str, Any]
    actor: str
    kind: str  # "batch", "metrics", "alert"
    mid: str
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    failures: int = 0


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


def _error(response: httpx.Response) -> MigratrackError:
    """The exception the server's error reply stands for (the same class as in-process)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or response.reason_phrase or "error")
    name = str(body.get("error") or "")
    status = response.status_code
    if status in (401, 403):
        hint = ("set MIGRATRACK_TOKEN or pass token=" if status == 401
                else "use a token with the needed role (migratrack token create --role ...)")
        return ConfigurationError(f"the migratrack server refused the request ({status}): {detail}; {hint}")
    cls = getattr(_errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, MigratrackError)):
        cls = {404: NotFound, 409: RuleViolation, 413: InvalidInput, 422: InvalidInput}.get(status, MigratrackError)
    exc: MigratrackError = cls.__new__(cls)
    Exception.__init__(exc, detail)
    for k, v in (body.get("info") or {}).items():
        with contextlib.suppress(AttributeError):
            setattr(exc, k, v)
    return exc


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
    ) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"the server URL must start with http:// or https://, got {url!r}")
        if deadline is None:
            deadline = Settings.from_env().retry_deadline
        if buffer_size < 1:
            raise ConfigurationError("buffer_size must be at least 1")
        self.url = url.rstrip("/")
        self.strict = strict
        self.deadline = float(deadline)
        self.buffer_size = buffer_size
        self._backoff = backoff
        headers = {"User-Agent": "migratrack-sdk"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
        )
        self._outbox: deque[_Item] = deque()
        self._cv = threading.Condition()
        self._drainer: threading.Thread | None = None
        self._down_since: float | None = None
        self._controls: dict[str, Control] = {}
        self._probed = 0.0
        self._closed = False
        self.dropped = 0
        _live.add(self)
        # the tracker does not close its backend: release the connections when it is dropped
        self._finalizer = weakref.finalize(self, self._http.close)
        # weakref's own exit hook would close the connections before _drain_at_exit sends the buffer
        self._finalizer.atexit = False

    # -- transport ---------------------------------------------------------------------------

    def _attempt(self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None,
                 actor: str | None = None, key: str | None = None) -> httpx.Response:
        headers = {}
        if actor:
            headers[ACTOR_HEADER] = actor
        if key:
            headers[IDEMPOTENCY_HEADER] = key
        try:
            r = self._http.request(method, path, json=body, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code in (429, 502, 503, 504):
            raise _Transient(f"HTTP {r.status_code}")
        if r.status_code >= 500:
            raise _Transient(f"HTTP {r.status_code}: {r.text[:200]}")
        return r

    def _sleep(self, delay: float) -> None:
        with self._cv:
            self._cv.wait(delay)

    def _reliable(self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None,
                  actor: str | None = None, verb: str | None = None) -> Any:
        """Send after the buffer drained; retry transient failures until the deadline."""
        end = time.monotonic() + self.deadline
        if not self.strict:
            self._wait_drained(end)
        key = uuid.uuid4().hex if method != "GET" else None
        delay = self._backoff[0]
        attempt = 0
        while True:
            attempt += 1
            try:
                r = self._attempt(method, path, body=body, params=params, actor=actor, key=key)
                break
            except _Transient as exc:
                if self.strict:
                    raise StorageUnavailable(f"migratrack server {self.url} unavailable: {exc}") from None
                if time.monotonic() + delay > end:
                    raise StorageUnavailable(
                        f"migratrack server {self.url} unavailable for {self.deadline:.0f} s: {exc}") from None
                self._note_down(exc)
                time.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
        self._note_up()
        if r.status_code >= 400:
            exc2 = _error(r)
            if attempt > 1 and verb and r.status_code == 409 and self._already(exc2, verb):
                return {}  # our earlier attempt went through before its reply was lost
            raise exc2
        return r.json() if r.content else {}

    @staticmethod
    def _already(exc: MigratrackError, verb: str) -> bool:
        target = VERB_TARGET.get(verb)
        return target is not None and getattr(exc, "current", None) == target.value

    def _note_down(self, exc: object) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("migratrack: server %s unreachable (%s); buffering progress and retrying", self.url, exc)

    def _note_up(self) -> None:
        if self._down_since is not None:
            log.warning("migratrack: server %s reachable again after %.1f s", self.url,
                        time.monotonic() - self._down_since)
            self._down_since = None

    # -- the buffer --------------------------------------------------------------------------

    def _buffered(self, item: _Item) -> dict[str, Any] | None:
        """Send now if nothing is queued; on an outage (or while one lasts) queue it. Returns the
        reply's JSON, or None when queued."""
        if self.strict:
            try:
                r = self._attempt(item.method, item.path, body=item.body, actor=item.actor, key=item.key)
            except _Transient as exc:
                raise StorageUnavailable(f"migratrack server {self.url} unavailable: {exc}") from None
            if r.status_code >= 400:
                raise _error(r)
            return dict(r.json())
        with self._cv:
            # while the server is known to be away, queue at once: the drainer probes it, and the
            # migration never waits on a connect timeout
            if self._outbox or self._down_since is not None:
                self._enqueue(item)
                return None
        try:
            r = self._attempt(item.method, item.path, body=item.body, actor=item.actor, key=item.key)
        except _Transient as exc:
            self._note_down(exc)
            with self._cv:
                self._enqueue(item)
            return None
        self._note_up()
        if r.status_code >= 400:
            raise _error(r)
        return dict(r.json())

    def _enqueue(self, item: _Item) -> None:  # caller holds self._cv
        if len(self._outbox) >= self.buffer_size:
            self._compact()
        self._outbox.append(item)
        if self._drainer is None or not self._drainer.is_alive():
            self._drainer = threading.Thread(target=self._drain, name="migratrack-remote-drain", daemon=True)
            self._drainer.start()

    def _compact(self) -> None:  # caller holds self._cv
        """The buffer is full: fold every queued progress batch of a migration into one (highest
        progress and done count, summed increments); if still full, drop the oldest write."""
        items = list(self._outbox)
        keep: list[_Item] = items[:1]  # the head may be on the wire right now: never merge into it
        merged: dict[str, _Item] = {}
        for item in items[1:]:
            if item.kind != "batch":
                keep.append(item)
                continue
            into = merged.get(item.mid)
            if into is None:
                merged[item.mid] = item
                keep.append(item)
                continue
            _merge_batch(into.body, item.body)
        self._outbox = deque(keep)
        while len(self._outbox) >= self.buffer_size:
            lost = self._outbox.popleft()
            self.dropped += 1
            log.error("migratrack: buffer full (%d writes); dropped a %s write to %s", self.buffer_size, lost.kind,
                      lost.path)

    def _drain(self) -> None:
        delay = self._backoff[0]
        while True:
            with self._cv:
                if not self._outbox or self._closed:
                    self._cv.notify_all()
                    return
                item = self._outbox[0]
            try:
                r = self._attempt(item.method, item.path, body=item.body, actor=item.actor, key=item.key)
            except Exception as exc:  # _Transient; RuntimeError when closed under our feet; anything else
                if self._closed:
                    return
                if not isinstance(exc, _Transient):
                    log.warning("migratrack: unexpected error sending a buffered write: %r", exc)
                self._note_down(exc)
                self._sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            self._note_up()
            delay = self._backoff[0]
            if r.status_code >= 400:
                log.warning("migratrack: the server refused a buffered %s write to %s: %s", item.kind, item.path,
                            _error(r))
            elif item.kind in ("batch", "metrics"):
                self._remember(item.mid, r)
            with self._cv:
                if self._outbox and self._outbox[0] is item:
                    self._outbox.popleft()
                self._cv.notify_all()

    def _wait_drained(self, end: float) -> None:
        with self._cv:
            if self._outbox and (self._drainer is None or not self._drainer.is_alive()):
                self._drainer = threading.Thread(target=self._drain, name="migratrack-remote-drain", daemon=True)
                self._drainer.start()
            while self._outbox:
                left = end - time.monotonic()
                if left <= 0:
                    raise StorageUnavailable(
                        f"migratrack server {self.url} unavailable for {self.deadline:.0f} s; "
                        f"{len(self._outbox)} buffered writes not yet sent")
                self._cv.wait(min(left, 0.5))

    @property
    def pending(self) -> int:
        """Writes buffered and not yet accepted by the server."""
        with self._cv:
            return len(self._outbox)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every buffered write was sent (or ``timeout`` passed); True if none is left."""
        end = time.monotonic() + (self.deadline if timeout is None else timeout)
        try:
            self._wait_drained(end)
        except StorageUnavailable:
            return False
        return True

    def close(self, timeout: float | None = None) -> None:
        """Send what is buffered (waiting up to ``timeout``, default the deadline), then close."""
        if self._closed:
            return
        if not self.flush(timeout):
            log.error("migratrack: %d progress/metrics/alert writes could not be sent to %s", self.pending, self.url)
        self._closed = True
        with self._cv:
            self._cv.notify_all()
        self._finalizer()
        _live.discard(self)

    def _remember(self, mid: str, r: httpx.Response) -> Control | None:
        try:
            control = Control(r.json()["control"])
        except (ValueError, KeyError, TypeError):
            return None
        self._controls[mid] = control
        return control

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

    def execute(self, mid: str, command: Command, *, actor: str) -> object:
        path = command.path().format(**{k: _q(v) for k, v in command.address.items()})
        return self._reliable("POST", f"/api/migrations/{_q(mid)}/{path}", body=command.arguments or None,
                              actor=actor, verb=command.verb)

    def create_alert(
        self, mid: str, level: str | AlertLevel, message: str, phase: str | None = None, *, actor: str
    ) -> Alert:
        """The stored alert; during an outage, a provisional one (id ``pending-…``) while it waits."""
        body: dict[str, Any] = {"level": str(level), "message": message}
        if phase is not None:
            body["phase"] = phase
        item = _Item("POST", f"/api/migrations/{_q(mid)}/alerts", body, actor, "alert", mid)
        reply = self._buffered(item)
        if reply is not None:
            return Alert.from_dict(reply)
        return Alert(id=f"pending-{item.key[:12]}", level=AlertLevel(str(level)), message=message,
                     created_at=datetime.now(UTC), phase=phase, actor=actor)

    def acknowledge_alert(self, mid: str, alert_id: str, by: str, *, actor: str) -> Alert:
        reply = self._reliable("POST", f"/api/migrations/{_q(mid)}/alerts/{_q(alert_id)}/ack", body={"by": by},
                               actor=actor)
        return Alert.from_dict(reply)

    def update_metrics(
        self, mid: str, values: Mapping[str, Any] | None = None, increments: Mapping[str, Any] | None = None,
        *, actor: str,
    ) -> None:
        body = {"values": dict(values or {}), "increment": dict(increments or {})}
        item = _Item("PATCH", f"/api/migrations/{_q(mid)}/metrics", body, actor, "metrics", mid)
        reply = self._buffered(item)
        if reply is not None and "control" in reply:
            self._controls[mid] = Control(reply["control"])

    def apply_updates(
        self, mid: str, updates: Iterable[ProgressUpdate], increments: Mapping[str, int] | None = None,
        *, actor: str,
    ) -> Control | None:
        body: dict[str, Any] = {"updates": [u.to_dict() for u in updates], "increments": dict(increments or {})}
        item = _Item("POST", f"/api/migrations/{_q(mid)}/batch", body, actor, "batch", mid)
        reply = self._buffered(item)
        if reply is not None and "control" in reply:
            control = Control(reply["control"])
            self._controls[mid] = control
            return control
        return self._controls.get(mid)

    def overview(self, mid: str) -> Overview:
        return Overview.model_validate(self._reliable("GET", f"/api/migrations/{_q(mid)}"))

    def dashboard(self, mid: str, *, alerts: int = 20) -> Dashboard:
        return Dashboard.model_validate(self._reliable("GET", f"/api/migrations/{_q(mid)}/dashboard",
                                                       params={"alerts": alerts}))

    def estimate(self, mid: str) -> Estimate:
        d = self._reliable("GET", f"/api/migrations/{_q(mid)}/estimate")
        return Estimate(completion=_dt(d["completion"]), earliest=_dt(d["earliest"]), latest=_dt(d["latest"]),
                        remaining_seconds=d["remaining_seconds"], critical_path=tuple(d["critical_path"]),
                        calibration=float(d["calibration"]))

    def control(self, mid: str) -> Control:
        """The control state; during an outage, the last one the server told (never blocks long)."""
        if not self.strict and (self._outbox or (self._down_since is not None
                                                 and time.monotonic() - self._probed < PROBE_SECONDS)):
            return self._controls.get(mid, Control.RUNNING)
        self._probed = time.monotonic()
        try:
            r = self._attempt("GET", f"/api/migrations/{_q(mid)}/control")
        except _Transient as exc:
            if self.strict:
                raise StorageUnavailable(f"migratrack server {self.url} unavailable: {exc}") from None
            self._note_down(exc)
            return self._controls.get(mid, Control.RUNNING)
        self._note_up()
        if r.status_code >= 400:
            raise _error(r)
        return self._remember(mid, r) or Control.RUNNING

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

    def __repr__(self) -> str:
        return f"<RemoteBackend {self.url}>"


def _merge_batch(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    updates: list[dict[str, Any]] = into["updates"]
    at = {(u["phase"], u.get("sub_task")): i for i, u in enumerate(updates)}
    for u in other["updates"]:
        k = (u["phase"], u.get("sub_task"))
        i = at.get(k)
        if i is None:
            at[k] = len(updates)
            updates.append(dict(u))
        else:  # other was queued after into
            updates[i] = ProgressDelta.from_dict(updates[i]).merge(ProgressDelta.from_dict(u)).to_dict()
    inc = into.setdefault("increments", {})
    for name, v in (other.get("increments") or {}).items():
        inc[name] = inc.get(name, 0) + v


_live: weakref.WeakSet[RemoteBackend] = weakref.WeakSet()


@lifecycle.at_exit(lifecycle.TRANSPORTS)
def _drain_at_exit() -> None:
    # after the trackers were closed: their final flush may have landed in the buffer
    for backend in list(_live):
        if backend.pending:
            log.warning("migratrack: sending %d buffered writes to %s before exiting (waiting up to %.0f s)",
                        backend.pending, backend.url, backend.deadline)
            backend.close()
