"""``Storage.versions`` and the /metrics collector that keeps what it computed per version, on every store.

A scrape loads only the migrations whose version moved since the last scrape: whatever is written
(hot-path progress, counters, alerts, gauges, transitions, a delete, a migration created again
under the same id) must show in the next scrape exactly as a collector that reads everything shows it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from migratrack.core.commands import CompletePhase, CompleteSubTask, SkipPhase, SkipSubTask, StartPhase, StartSubTask
from migratrack.core.models import MigrationState
from migratrack.metrics.cost import Prices
from migratrack.metrics.prometheus import MigrationCollector
from migratrack.service import MigrationService, ProgressUpdate
from migratrack.storage import Storage

PLAN = [
    {"id": "schema", "estimated_duration": 10},
    {"id": "copy", "dependencies": ["schema"], "estimated_duration": 60, "sub_tasks": ["orders", "users"]},
    {"id": "verify", "dependencies": ["copy"], "estimated_duration": 5, "sub_tasks": ["rows", "sums"]},
    {"id": "extra", "estimated_duration": 5, "sub_tasks": ["x", "y"]},
]


class Whole(MigrationCollector):
    """The reference: every migration read whole, sub-tasks and all, at every scrape."""

    def load(self, mid: str) -> MigrationState:
        return self.service.state(mid)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def scrape_text(c: MigrationCollector) -> str:
    # the scrape's own duration is the one line that differs between two collectors
    return re.sub(r"(?m)^migratrack_scrape_duration_seconds .*$", "", c.expose().decode())


def line(text: str, prefix: str) -> str:
    found = [ln for ln in text.splitlines() if ln.startswith(prefix)]
    assert len(found) == 1, (prefix, found)
    return found[0]


def test_a_kept_scrape_shows_every_change_as_a_full_read_does(store: Storage) -> None:
    clock = Clock()
    svc = MigrationService(store, clock)
    svc.prices = Prices(per_gb=2.0, fixed=1)
    svc.initialize("m1", PLAN, actor="t")
    svc.initialize("m2", PLAN, actor="t")
    kept = MigrationCollector(svc)

    def check() -> str:
        text = scrape_text(kept)
        assert text == scrape_text(MigrationCollector(svc))
        assert text == scrape_text(Whole(svc))
        return text

    check()
    assert set(store.versions()) == {"m1", "m2"}
    assert store.versions() == store.versions()  # nothing written: nothing moved

    before = store.versions()["m1"]
    svc.execute("m1", StartPhase("schema"), actor="t")
    clock.now += timedelta(seconds=5)
    svc.apply_updates("m1", [ProgressUpdate("schema", progress=40)], actor="t")  # the hot path
    assert store.versions()["m1"] != before and store.versions()["m2"] == store.versions()["m2"]
    text = check()
    assert line(text, 'migratrack_phase_progress_ratio{migration="m1",phase="schema"}').endswith(" 0.4")

    clock.now += timedelta(seconds=5)
    svc.update_metrics("m1", {"resource_utilization": {"cpu": 55}},
                       {"total_data_migrated": 3_000_000, "successful_operations": 7}, actor="t")
    text = check()
    assert line(text, 'migratrack_data_migrated_bytes_total{migration="m1"}').endswith(" 3e+06")
    assert 'migratrack_resource_utilization{migration="m1",resource="cpu"} 55.0' in text

    alert = svc.create_alert("m1", "warning", "lag", actor="t")
    assert 'migratrack_alerts_unacknowledged{migration="m1"} 1.0' in check()
    svc.acknowledge_alert("m1", alert.id, "ops", actor="t")
    assert 'migratrack_alerts_unacknowledged{migration="m1"} 0.0' in check()

    # more events than the speed window reads (256), data arriving: read whole, then only the new ones
    for k in range(150):
        clock.now += timedelta(seconds=1)
        svc.apply_updates("m1", [ProgressUpdate("schema", progress=40 + k * 0.3)], {"total_data_migrated": 1000},
                          actor="t")
    check()
    for k in range(100):  # 200 events: fewer than the window, more than its 60 s
        clock.now += timedelta(seconds=1)
        svc.apply_updates("m1", [ProgressUpdate("schema", progress=85 + k * 0.01)], {"total_data_migrated": 500},
                          actor="t")
    text = check()
    assert line(text, 'migratrack_speed_bytes_per_second{migration="m1"}').endswith(" 500.0")  # the last minute's

    svc.execute("m1", CompletePhase("schema"), actor="t")
    svc.execute("m1", StartPhase("copy"), actor="t")
    check()
    svc.execute("m1", StartSubTask("copy", "orders"), actor="t")
    svc.apply_updates("m1", [ProgressUpdate("copy", "orders", progress=50)], actor="t")
    text = check()  # a running phase: rolled up from its sub-tasks
    assert line(text, 'migratrack_phase_progress_ratio{migration="m1",phase="copy"}').endswith(" 0.25")
    svc.execute("m1", SkipSubTask("verify", "rows", "not needed"), actor="t")  # a pending phase's sub-task
    text = check()
    assert line(text, 'migratrack_phase_progress_ratio{migration="m1",phase="verify"}').endswith(" 0.5")
    svc.execute("m1", SkipSubTask("extra", "x", "not needed"), actor="t")
    svc.execute("m1", SkipPhase("extra", "not needed"), actor="t")
    text = check()  # a skipped phase shows what its sub-tasks did
    assert line(text, 'migratrack_phase_progress_ratio{migration="m1",phase="extra"}').endswith(" 0.5")
    svc.execute("m1", CompleteSubTask("copy", "orders"), actor="t")
    svc.execute("m1", StartSubTask("copy", "users"), actor="t")
    svc.execute("m1", CompleteSubTask("copy", "users"), actor="t")
    svc.execute("m1", CompletePhase("copy"), actor="t")
    check()

    clock.now += timedelta(minutes=10)  # nothing written, time moves: the estimate and speed move with it
    check()

    assert store.delete("m2")
    text = check()
    assert 'migration="m2"' not in text and "m2" not in store.versions()

    svc.initialize("m2", [{"id": "only", "estimated_duration": 5}], actor="t")  # the same id, created again
    text = check()
    assert 'migratrack_phase_progress_ratio{migration="m2",phase="only"} 0.0' in text
    assert 'phase="schema"' not in "\n".join(ln for ln in text.splitlines() if 'migration="m2"' in ln)


def test_events_of_types_is_a_range_of_events_filtered(store: Storage) -> None:
    svc = MigrationService(store, Clock())
    svc.initialize("m", PLAN, actor="t")
    svc.execute("m", StartPhase("schema"), actor="t")
    for k in range(30):
        svc.apply_updates("m", [ProgressUpdate("schema", progress=k + 1)], {"total_data_migrated": k + 1}, actor="t")
    every = store.events("m", 0, 1000)
    last = every[-1].seq
    for after, upto in ((0, last), (5, 17), (40, last + 100), (last, last + 5), (10, 3)):
        want = [e for e in every if after < e.seq <= upto and e.type == "metrics.updated"]
        got = store.events_of_types("m", after, upto, ["metrics.updated"])
        assert [(e.seq, e.ts, e.payload) for e in got] == [(e.seq, e.ts, e.payload) for e in want]
    assert len(store.events_of_types("m", 0, last, ["metrics.updated"])) == 30
    assert store.events_of_types("m", 0, last, []) == []
