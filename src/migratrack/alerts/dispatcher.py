"""The dispatcher: one ``tick()`` follows every migration's event log, evaluates the rules that
need a clock (stall, error-rate window, deadline, escalation), routes new alerts into groups,
turns due groups into deliveries and sends what is due. Only the holder of the store's lease
does any of it, so two dispatchers never act at once.

Each step is idempotent, so a dispatcher killed anywhere starts again where it was: the cursor
of each migration's log moves only after what it read was written to groups; a group's message
has an id made from its alerts, written before the group is emptied; a delivery is claimed
before it is sent (see outbox.py).
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from migratrack.alerts import clocked, records
from migratrack.alerts.channels import Channel, build_channel
from migratrack.alerts.config import AlertsConfig
from migratrack.alerts.groups import Group, pending_groups
from migratrack.alerts.model import Attempt, Delivery, DeliveryStatus, NoticeKind, Notification, delivery_id
from migratrack.alerts.outbox import BY_ALERT, DELIVERY, Lease, Outbox, RetryPolicy
from migratrack.alerts.router import fingerprint, inhibited_by, routes
from migratrack.core.models import Alert, MigrationState
from migratrack.core.states import AlertLevel
from migratrack.errors import MigratrackError, NotFound
from migratrack.settings import default_actor
from migratrack.storage.base import Storage

log = logging.getLogger("migratrack.alerts")

WATCH = "watch"
#: event types that show a phase moving (or starting to): they restart its stall clock
_MOVES = {"phase.progress", "phase.started", "phase.retried", "subtask.progress", "subtask.started",
          "subtask.completed", "subtask.failed", "subtask.skipped"}
ACTOR = clocked.ACTOR
#: how often a dispatcher forgets old deliveries
PRUNE_EVERY = timedelta(minutes=10)


@dataclass
class TickReport:
    leader: bool
    alerts: int = 0
    messages: int = 0
    sent: int = 0
    failed_attempts: int = 0
    errors: list[str] = field(default_factory=list)


class Dispatcher:
    def __init__(
        self,
        storage: Storage,
        config: AlertsConfig,
        *,
        holder: str | None = None,
        clock: Callable[[], datetime] | None = None,
        channels: Mapping[str, Channel] | None = None,
    ) -> None:
        from migratrack.service import MigrationService

        self.storage = storage
        self.config = config
        self.holder = holder or f"{default_actor()}/{uuid.uuid4().hex[:6]}"
        self._clock = clock
        self.service = MigrationService(storage, clock) if clock else MigrationService(storage)
        self.outbox = Outbox(storage)
        self.lease = Lease(storage)
        self._pruned_at: datetime | None = None
        #: the last state read per migration, reused while no event has come since
        self._states: dict[str, MigrationState] = {}
        self.retry = RetryPolicy(config.retry_first.total_seconds(), config.retry_cap.total_seconds(),
                                 config.max_attempts)
        # built now, so a bad channel (an SMTP URL, a missing driver) is an error at start
        self.channels: dict[str, Channel] = dict(channels) if channels is not None else {
            name: build_channel(name, c) for name, c in config.channels.items()}

    # -- time and lease ----------------------------------------------------------------------

    def now(self) -> datetime:
        """One clock for every dispatcher on the store: the store's where it has one."""
        if self._clock is not None:
            return self._clock()
        return self.storage.store_time() or datetime.now(UTC)

    def release(self) -> None:
        try:
            self.lease.release(self.holder)
        except MigratrackError:
            log.warning("migratrack: could not release the dispatcher lease", exc_info=True)

    # -- the loop ----------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """One round. Never raises for a migration's or a channel's trouble (they are logged);
        a store that is down raises its StorageError."""
        now = self.now()
        if not self.lease.acquire(self.holder, now, self.config.lease_ttl):
            return TickReport(leader=False)
        report = TickReport(leader=True)
        ids = self.storage.list_ids()
        for gone in set(self._states) - set(ids):
            del self._states[gone]
        for mid in ids:
            try:
                self._watch(mid, now, report)
            except NotFound:
                continue  # deleted meanwhile
            except MigratrackError as exc:
                report.errors.append(f"{mid}: {exc}")
                log.warning("migratrack: alert rules for %s failed: %s", mid, exc)
        self._flush(now, report)
        self._deliver(report)
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            self.prune(now)
        return report

    def prune(self, now: datetime) -> int:
        """Forget finished deliveries older than ``keep_deliveries`` (with their index entries),
        expired silences, and the documents of migrations no longer in the store; the count of
        deliveries dropped."""
        cutoff = now - self.config.keep_deliveries
        dropped = 0
        for key, doc in self.storage.kv_list(DELIVERY, limit=100_000):
            d = Delivery.from_dict(doc.value)
            if d.status is not DeliveryStatus.PENDING and d.created_at < cutoff:
                for alert_id in d.alert_ids:
                    self.storage.kv_delete(BY_ALERT, f"{alert_id}|{key}")
                self.storage.kv_delete(DELIVERY, key, expected=doc.version)
                dropped += 1
        for s in records.silences(self.storage):
            if s.ends_at < cutoff:
                self.storage.kv_delete(records.SILENCE, s.id)
        known = set(self.storage.list_ids())
        for kind in (WATCH, records.HEARTBEAT):
            for key, _ in self.storage.kv_list(kind, limit=100_000):
                if key not in known:
                    self.storage.kv_delete(kind, key)
        return dropped

    # -- reading a migration -----------------------------------------------------------------

    def _watch(self, mid: str, now: datetime, report: TickReport) -> None:
        doc = self.storage.kv_get(WATCH, mid)
        w: dict[str, Any] = doc.value if doc else {"cursor": 0, "first_seen": now.isoformat(), "progress_at": {},
                                                   "samples": [], "rate": "ok", "stalls": {}}
        before = copy.deepcopy(w)
        first_seen = datetime.fromisoformat(w["first_seen"])
        new_alerts: list[Alert] = []
        while True:
            events = self.storage.events(mid, after=w["cursor"], limit=1000)
            for ev in events:
                w["cursor"] = ev.seq
                phase = ev.payload.get("phase")
                if ev.type == "alert.created":
                    alert = self._alert_of(mid, ev.payload)
                    if alert is not None and alert.created_at >= first_seen - self.config.catch_up:
                        new_alerts.append(alert)
                elif ev.type in _MOVES and isinstance(phase, str):
                    w["progress_at"][phase] = ev.ts.isoformat()
                elif ev.type == "metrics.updated" and isinstance(ev.payload.get("increment"), dict):
                    inc = ev.payload["increment"]
                    ok, failed = int(inc.get("successful_operations", 0)), int(inc.get("failed_operations", 0))
                    if ok or failed:
                        w["samples"].append([ev.ts.isoformat(), ok, failed])
            if len(events) < 1000:
                break
        if w.get("finished") and not new_alerts and doc is not None and before["cursor"] == w["cursor"]:
            clocked.escalate(self, mid, now)
            return  # a finished migration with nothing new: no rule of ours can fire
        cached = self._states.get(mid)
        if cached is not None and cached.seq == w["cursor"] and not new_alerts:
            state = cached  # no event since: the state is as it was (heartbeats live beside it)
        else:
            state = self._states[mid] = self.storage.load(mid, sub_tasks=None)
        w["finished"] = (state.finished_at is not None or state.cancelled_at is not None) and not (
            w["stalls"] or w.get("rate_alert") or w.get("deadline_alert"))
        if new_alerts:
            report.alerts += len(new_alerts)
            self._route(mid, new_alerts, state, now)
        clocked.stall_rule(self, mid, w, state, now)
        clocked.error_rate_rule(self, mid, w, state, now)
        clocked.deadline_rule(self, mid, w, state, now)
        clocked.escalate(self, mid, now)
        # the cursor moves only after what it read is in the groups (re-reading is harmless)
        if doc is None or w != before:
            self.storage.kv_put(WATCH, mid, w)

    def _alert_of(self, mid: str, payload: dict[str, Any]) -> Alert | None:
        try:  # the event carries the alert as it was made: no read per alert in a burst
            return Alert.from_dict(payload)
        except (KeyError, ValueError, TypeError):
            pass
        try:
            return self.storage.get_alert(mid, str(payload["id"]))
        except (NotFound, KeyError):
            return None

    # -- routing -----------------------------------------------------------------------------

    def _route(self, mid: str, alerts: list[Alert], state: MigrationState, now: datetime) -> None:
        silences = records.silences(self.storage, now=now)
        groups: dict[str, Group] = {}
        for alert in alerts:
            fp = fingerprint(mid, alert)
            inhibited = inhibited_by(state, alert) if self.config.inhibit else None
            for channel, refused in routes(self.config, mid, alert).items():
                if refused is not None:
                    continue
                silence = next((s for s in silences if s.matches(mid, alert, now)), None)
                group = groups.get(channel) or groups.setdefault(channel, Group.load(self.storage, channel, mid))
                _, _, repeat = self.config.windows(channel)
                earlier = group.sent_recently(fp, now, repeat)
                reason = (f"silenced by {silence.id} until {silence.ends_at.isoformat()}" if silence
                          else f"inhibited: {inhibited}" if inhibited
                          else f"duplicate of an alert sent at {earlier.isoformat()}" if earlier else None)
                if reason is not None:
                    self._suppressed(channel, mid, alert, fp, reason, now)
                    continue
                wait, interval, _ = self.config.windows(channel)
                group.add(alert.to_dict(), fp, now, wait, interval)
        for group in groups.values():
            group.save(self.storage)

    def _suppressed(self, channel: str, mid: str, alert: Alert, fp: str, reason: str, now: datetime) -> None:
        notice = self.notice(NoticeKind.FIRING, channel, "", mid, [alert.to_dict()], 1, fp)
        did = delivery_id(channel, NoticeKind.FIRING, [alert.id], "suppressed")
        notice.key = did
        self.outbox.enqueue(Delivery(did, channel, NoticeKind.FIRING, mid, [alert.id], notice.to_dict(),
                                     DeliveryStatus.SUPPRESSED, now, None, reason=reason))

    def notice(self, kind: NoticeKind, channel: str, key: str, mid: str, alerts: list[dict[str, Any]],
                count: int, fp: str) -> Notification:
        base = self.config.public_url
        link = f"{base.rstrip('/')}/admin/migration/{quote(mid, safe='')}" if base else None
        return Notification(kind, channel, key, mid, alerts, count, fp, link)

    def _flush(self, now: datetime, report: TickReport) -> None:
        for channel, mid in pending_groups(self.storage):
            group = Group.load(self.storage, channel, mid)
            if not group.due(now):
                continue
            fp = group.fingerprints[0] if len(group.fingerprints) == 1 else f"group:{mid}:{channel}"
            did = delivery_id(channel, NoticeKind.FIRING, group.ids)
            notice = self.notice(NoticeKind.FIRING, channel, did, mid, group.listed, len(group.ids), fp)
            # the message first, then the group emptied: a crash between writes the same id again
            self.enqueue(notice, group.ids, now)
            report.messages += 1
            group.mark_sent(now, self.config.windows(channel)[2])
            group.save(self.storage)

    def enqueue(self, notice: Notification, alert_ids: list[str], now: datetime) -> bool:
        return self.outbox.enqueue(Delivery(notice.key, notice.channel, notice.kind, notice.migration_id, alert_ids,
                                            notice.to_dict(), DeliveryStatus.PENDING, now, now))

    # -- sending -----------------------------------------------------------------------------

    def _deliver(self, report: TickReport) -> None:
        for did in self.outbox.due(self.now()):
            now = self.now()
            if not self.lease.acquire(self.holder, now, self.config.lease_ttl):
                return  # lost the lease (a long stall of this process): the next holder goes on
            self.send_one(did, report)

    def send_one(self, did: str, report: TickReport | None = None) -> Delivery | None:
        """Claim, send and record one due delivery; None if it was not ours to send."""
        now = self.now()
        # long enough for one attempt (the channel's timeout), short enough that a dispatcher
        # killed mid-send leaves the delivery to the next one soon
        def claim_for(d: Delivery) -> timedelta:
            cfg = self.config.channels.get(d.channel)
            return self.config.lease_ttl + timedelta(seconds=2 * (cfg.timeout if cfg else 10.0))

        claimed = self.outbox.claim(did, self.holder, now, claim_for)
        if claimed is None:
            return None
        d, version = claimed
        channel = self.channels.get(d.channel)
        if channel is None:
            attempt = Attempt(now, False, f"channel {d.channel!r} is no longer configured", self.holder)
            self.outbox.finish(d, version, attempt, retry_at=None, give_up=True)
            return d
        try:
            answer = channel.send(d.notice())
        except Exception as exc:  # a channel must answer, not raise; a bug in one must not stop the rest
            log.warning("migratrack: channel %s raised", d.channel, exc_info=True)
            from migratrack.alerts.model import Answer
            answer = Answer(ok=False, retry=True, detail=f"{type(exc).__name__}: {exc}"[:300])
        done = self.now()
        attempt = Attempt(done, answer.ok, answer.detail, self.holder)
        tries = len(d.attempts) + 1
        give_up = not answer.ok and (not answer.retry or tries >= self.retry.max_attempts)
        retry_at = None if answer.ok or give_up else done + self.retry.wait(tries)
        self.outbox.finish(d, version, attempt, retry_at=retry_at, give_up=give_up)
        if report is not None:
            if answer.ok:
                report.sent += 1
            else:
                report.failed_attempts += 1
        if not answer.ok:
            log.warning("migratrack: alert delivery %s to %s failed (attempt %d): %s", d.id, d.channel, tries,
                        answer.detail)
        return d

    # -- what the clocked rules (clocked.py) call --------------------------------------------

    def raise_alert(self, mid: str, level: AlertLevel, message: str, phase: str | None, source: str, op: str) -> Alert:
        # the op id makes a re-run after a crash find the alert its first run made
        return self.service.create_alert(mid, level, message, phase, actor=ACTOR, op_id=op[:200], source=source)

    def resolve(self, mid: str, alert_id: str, now: datetime) -> None:
        """A resolved notice to every channel that took the alert (sent or still trying)."""
        try:
            alert = self.storage.get_alert(mid, alert_id)
        except NotFound:
            return
        fp = fingerprint(mid, alert)
        channels = {d.channel for d in self.outbox.for_alert(alert_id)
                    if d.kind is NoticeKind.FIRING and d.status in (DeliveryStatus.DELIVERED, DeliveryStatus.PENDING)}
        for channel in sorted(channels):
            group = Group.load(self.storage, channel, mid)
            if group.sent.pop(fp, None) is not None:  # resolved: the condition's next firing is news
                group.save(self.storage)
            did = delivery_id(channel, NoticeKind.RESOLVED, [alert_id])
            self.enqueue(self.notice(NoticeKind.RESOLVED, channel, did, mid, [alert.to_dict()], 1, fp),
                         [alert_id], now)


def send_test(dispatcher: Dispatcher, channel: str, *, migration_id: str = "test", actor: str) -> Delivery:
    """``migratrack alerts test --channel NAME``: a test message through the outbox, sent now;
    the delivery with the receiver's answer."""
    if channel not in dispatcher.channels:
        raise NotFound(f"no channel {channel!r}; configured: {', '.join(dispatcher.channels) or 'none'} "
                       "(see docs/alerts.md)")
    now = dispatcher.now()
    alert = Alert(id=f"test-{uuid.uuid4().hex[:12]}", level=AlertLevel.WARNING,
                  message=f"test alert from {actor}: if you read this, channel {channel!r} works",
                  created_at=now, source="test", actor=actor)
    did = delivery_id(channel, NoticeKind.TEST, [alert.id])
    notice = dispatcher.notice(NoticeKind.TEST, channel, did, migration_id, [alert.to_dict()], 1, alert.id)
    dispatcher.enqueue(notice, [alert.id], now)
    dispatcher.send_one(did)
    found = dispatcher.outbox.get(did)
    assert found is not None
    return found
