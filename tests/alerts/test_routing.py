"""Routing: grouping of bursts, de-duplication, silences, inhibition, escalation, levels."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

from migratrack.alerts import records
from migratrack.alerts.dispatcher import Dispatcher
from migratrack.alerts.model import DeliveryStatus
from migratrack.alerts.runner import DispatcherThread
from migratrack.core.commands import FailPhase, StartPhase
from migratrack.service import MigrationService
from migratrack.storage import open_storage

from .helpers import config, run_until
from .receiver import Receiver


def hook(receiver: Receiver, **kw: object) -> dict[str, object]:
    return {"type": "webhook", "url": receiver.url + "/hook", "min_level": "info", **kw}


def test_a_burst_of_1000_alerts_is_a_handful_of_messages_and_none_is_lost(receiver: Receiver,
                                                                          tmp_path: Path) -> None:
    store = open_storage(f"sqlite:///{tmp_path}/b.db")
    svc = MigrationService(store)
    svc.initialize("burst", [{"id": "copy"}], actor="t")
    d = Dispatcher(store, config({"hook": hook(receiver)}, group_wait="0.5s", group_interval="1s", tick="0.05s"))
    runner = DispatcherThread(d).start()
    try:
        start = time.monotonic()
        for k in range(10):  # ten writers' worth of alerts, a hundred each, within a second
            svc.run("burst", "t", lambda r, k=k: [r.create_alert("warning", f"row {k}-{i} rejected", "copy")
                                                  for i in range(100)])
        created_in = time.monotonic() - start
        assert created_in < 1.5
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if sum(r.json["count"] for r in receiver.accepted) >= 1000:
                break
            time.sleep(0.05)
    finally:
        runner.stop()
    messages = [r.json for r in receiver.accepted]
    assert sum(m["count"] for m in messages) == 1000
    assert 1 <= len(messages) <= 3, len(messages)
    assert len(store.alerts("burst", limit=5000)) == 1000  # none lost from the alert list
    alert_ids = {a.id for a in store.alerts("burst", limit=5000)}
    carried = {i for x in d.outbox.recent() for i in x.alert_ids}
    assert carried == alert_ids  # every alert is in exactly one message
    assert sum(len(x.alert_ids) for x in d.outbox.recent()) == 1000
    store.close()


def test_a_repeated_condition_is_sent_once_within_the_repeat_interval(receiver: Receiver) -> None:
    store = open_storage("memory://")
    svc = MigrationService(store)
    svc.initialize("m", [{"id": "copy"}], actor="t")
    d = Dispatcher(store, config({"hook": hook(receiver)}, repeat_interval="1h"))
    svc.create_alert("m", "error", "checksum mismatch", "copy", actor="t")
    run_until(d, lambda: len(receiver.accepted) == 1)
    svc.create_alert("m", "error", "checksum mismatch", "copy", actor="t")
    svc.create_alert("m", "error", "another problem", "copy", actor="t")
    run_until(d, lambda: len(receiver.accepted) == 2)
    for _ in range(3):
        d.tick()
    assert len(receiver.accepted) == 2
    assert receiver.accepted[1].json["alerts"][0]["message"] == "another problem"
    suppressed = d.outbox.recent(status=DeliveryStatus.SUPPRESSED)
    assert len(suppressed) == 1 and suppressed[0].reason is not None and "duplicate" in suppressed[0].reason


def test_levels_phases_and_silences_choose_what_goes_where(receiver: Receiver) -> None:
    store = open_storage("memory://")
    svc = MigrationService(store)
    svc.initialize("m", [{"id": "copy"}, {"id": "index"}], actor="t")
    d = Dispatcher(store, config({
        "pages": hook(receiver, min_level="error"),
        "copy-team": hook(receiver, phases=["copy"], url=receiver.url + "/copy"),
    }))
    now = d.now()
    s = records.add_silence(store, now=now, duration=timedelta(hours=1), created_by="ops", migration_id="m",
                            contains="noisy")
    svc.create_alert("m", "warning", "slow batch", "copy", actor="t")        # copy-team only
    svc.create_alert("m", "error", "index build failed", "index", actor="t")  # pages only
    svc.create_alert("m", "critical", "noisy disk alarm", "copy", actor="t")  # silenced everywhere
    run_until(d, lambda: len(receiver.accepted) >= 2)
    for _ in range(3):
        d.tick()
    got = {(r.path, a["message"]) for r in receiver.accepted for a in r.json["alerts"]}
    assert got == {("/copy", "slow batch"), ("/hook", "index build failed")}
    reasons = {x.channel: x.reason for x in d.outbox.recent(status=DeliveryStatus.SUPPRESSED)}
    assert set(reasons) == {"pages", "copy-team"} and all(f"silenced by {s.id}" in str(r) for r in reasons.values())
    records.remove_silence(store, s.id)
    assert records.silences(store) == []


def test_a_failed_phase_inhibits_the_stall_alerts_of_phases_waiting_on_it(receiver: Receiver) -> None:
    store = open_storage("memory://")
    svc = MigrationService(store)
    svc.initialize("m", [{"id": "copy"}, {"id": "verify", "dependencies": ["copy"]}], actor="t")
    svc.execute("m", StartPhase("copy"), actor="t")
    svc.execute("m", FailPhase("copy", "disk gone"), actor="t")
    svc.create_alert("m", "error", "phase 'verify' stalled", "verify", actor="t", source="rule:stall")
    d = Dispatcher(store, config({"hook": hook(receiver)}))
    run_until(d, lambda: len(receiver.accepted) >= 1)
    for _ in range(3):
        d.tick()
    messages = [a["message"] for r in receiver.accepted for a in r.json["alerts"]]
    assert any("failed: disk gone" in m for m in messages)
    assert not any("stalled" in m for m in messages)
    (inhibited,) = d.outbox.recent(status=DeliveryStatus.SUPPRESSED)
    assert inhibited.reason == "inhibited: phase copy failed"


def test_an_unacknowledged_critical_escalates_once_and_an_acknowledged_one_does_not(receiver: Receiver) -> None:
    store = open_storage("memory://")
    svc = MigrationService(store)
    svc.initialize("m", [{"id": "copy"}], actor="t")
    d = Dispatcher(store, config({"chat": hook(receiver), "oncall": hook(receiver, url=receiver.url + "/pager",
                                                                              min_level="critical")},
                                 escalation=[{"after": "0.3s", "channel": "oncall"}]))
    d.config = d.config.model_copy(update={"channels": {"chat": d.config.channels["chat"]}})  # oncall: escalation only
    a1 = svc.create_alert("m", "critical", "primary down", actor="t")
    a2 = svc.create_alert("m", "critical", "replica down", actor="t")
    svc.acknowledge_alert("m", a2.id, "ops", actor="ops")
    run_until(d, lambda: any(r.path == "/pager" for r in receiver.accepted), timeout=5)
    time.sleep(0.4)
    for _ in range(3):
        d.tick()
    pages = [r.json for r in receiver.accepted if r.path == "/pager"]
    assert len(pages) == 1 and pages[0]["kind"] == "escalation"
    assert pages[0]["alerts"][0]["id"] == a1.id


def test_two_dispatchers_one_lease_nothing_twice(receiver: Receiver, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/two.db"
    svc = MigrationService(url)
    for i in range(5):
        svc.initialize(f"m{i}", [{"id": "copy"}], actor="t")
        svc.create_alert(f"m{i}", "error", f"alert {i}", actor="t")
    receiver.delay = 0.05
    dispatchers = [Dispatcher(open_storage(url), config({"hook": hook(receiver)})) for _ in range(2)]
    leaders: list[bool] = []
    stop = threading.Event()

    def loop(d: Dispatcher) -> None:
        while not stop.is_set():
            leaders.append(d.tick().leader)
            time.sleep(0.01)

    threads = [threading.Thread(target=loop, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    receiver.wait_for(5)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert len(receiver.seen) == 5
    assert leaders.count(True) >= 1 and leaders.count(False) >= 1  # one held the lease, the other waited
    for d in dispatchers:
        d.storage.close()
    svc.storage.close()


def test_old_deliveries_are_forgotten_pending_ones_never(receiver: Receiver) -> None:
    store = open_storage("memory://")
    svc = MigrationService(store)
    svc.initialize("m", [{"id": "copy"}], actor="t")
    a = svc.create_alert("m", "error", "boom", actor="t")
    d = Dispatcher(store, config({"hook": hook(receiver)}))
    run_until(d, lambda: len(receiver.accepted) == 1)
    receiver.fail(100)
    svc.create_alert("m", "error", "still failing", actor="t")
    run_until(d, lambda: len(receiver.seen) >= 2)
    later = d.now() + timedelta(days=8)
    assert d.prune(later) == 1
    assert d.outbox.for_alert(a.id) == []
    (left,) = d.outbox.recent()
    assert left.status is DeliveryStatus.PENDING
