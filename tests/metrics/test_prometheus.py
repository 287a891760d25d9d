"""The /metrics text: written by the collector itself for the formats Prometheus asks for, and byte
for byte what prometheus-client's own encoders write for the same scrape."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from migratrack.core.commands import CompletePhase, StartPhase
from migratrack.metrics.cost import Prices
from migratrack.metrics.prometheus import MigrationCollector, RequestStats, _fast_format
from migratrack.service import MigrationService, ProgressUpdate
from migratrack.storage import Storage

#: what Prometheus 2.x/3.x sends, then the other negotiations choose_encoder knows
ACCEPTS = [
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "",
    "text/plain; version=0.0.4",
    "text/plain; version=1.0.0; escaping=allow-utf-8",
    "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
    "application/openmetrics-text; version=1.0.0; escaping=dots",
    "application/openmetrics-text; version=2.0.0",
]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def without_duration(body: bytes) -> str:
    return re.sub(r"(?m)^migratrack_+scrape_+duration_+seconds .*$", "", body.decode())


@pytest.fixture
def collector(local_storage: Storage) -> MigrationCollector:
    clock = Clock()
    svc = MigrationService(local_storage, clock)
    svc.prices = Prices(per_gb=2.5, fixed=10)
    plan = [{"id": "a\"b\\c", "estimated_duration": 30, "sub_tasks": ["s1", "s2"]},
            {"id": "zwölf", "dependencies": ['a"b\\c'], "estimated_duration": 90}]
    svc.initialize("odd\"id\\x", plan, name='Quoted "name" \\ and\nnewline é', actor="t")
    svc.execute('odd"id\\x', StartPhase('a"b\\c'), actor="t")
    clock.now += timedelta(seconds=20)
    svc.apply_updates('odd"id\\x', [ProgressUpdate('a"b\\c', progress=33.3333)],
                      {"total_data_migrated": 123_456_789, "successful_operations": 9, "failed_operations": 1},
                      actor="t")
    svc.update_metrics('odd"id\\x', {"resource_utilization": {"cpu": 12.5, "memory": 3.25},
                                     "cost_metrics": {"estimated_cost": 99}}, actor="t")
    svc.create_alert('odd"id\\x', "critical", "disk", actor="t")
    svc.initialize("done", [{"id": "only", "estimated_duration": 5}], actor="t")
    svc.execute("done", StartPhase("only"), actor="t")
    clock.now += timedelta(seconds=7)
    svc.execute("done", CompletePhase("only"), actor="t")
    svc.initialize("idle", [{"id": "p"}], actor="t")
    requests = RequestStats()
    requests.observe("GET", "/metrics", 200, 0.003)
    return MigrationCollector(svc, requests=requests)


@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_text_is_what_prometheus_client_writes(collector: MigrationCollector, accept: str) -> None:
    encoder, _ = choose_encoder(accept)
    for _ in range(2):  # the first scrape reads everything, the second reuses what it kept
        ours = collector.expose(encoder)
        assert without_duration(ours) == without_duration(encoder(collector))
    assert ours.decode().count("\n") > 100  # the migrations are in it


def test_the_formats_prometheus_asks_for_take_the_fast_path() -> None:
    assert _fast_format(choose_encoder(ACCEPTS[0])[0]) is not None
    assert _fast_format(choose_encoder("")[0]) is not None
    assert _fast_format(choose_encoder("application/openmetrics-text; version=1.0.0; escaping=dots")[0]) is None


def test_a_parser_reads_back_the_values(collector: MigrationCollector) -> None:
    families = {f.name: f for f in text_string_to_metric_families(collector.expose().decode())}
    info = families["migratrack_migration_info"].samples
    assert {s.labels["migration"]: s.labels["name"] for s in info}['odd"id\\x'] == 'Quoted "name" \\ and\nnewline é'
    data = {s.labels["migration"]: s.value for s in families["migratrack_data_migrated_bytes"].samples}
    assert data['odd"id\\x'] == 123_456_789
    status = {(s.labels["migration"], s.labels["status"]): s.value
              for s in families["migratrack_migration_status"].samples}
    assert status[("done", "completed")] == 1 and status[("idle", "pending")] == 1
    counts = {s.labels["status"]: s.value for s in families["migratrack_migrations"].samples}
    assert counts["running"] == 1 and counts["completed"] == 1 and counts["pending"] == 1


def test_generate_latest_on_the_registry_still_works(collector: MigrationCollector) -> None:
    from migratrack.metrics.prometheus import registry_for

    text = generate_latest(registry_for(collector.service, collector=collector)).decode()
    assert without_duration(text.encode()) == without_duration(collector.expose())


def test_one_migrations_failing_figure_does_not_fail_the_scrape(collector: MigrationCollector,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    import migratrack.metrics.prometheus as prom

    real = prom.estimate

    def estimate(state, now):  # type: ignore[no-untyped-def]
        if state.id == "done":
            raise OverflowError("date value out of range")
        return real(state, now)

    monkeypatch.setattr(prom, "estimate", estimate)
    body = generate_latest(collector).decode()
    remaining = {s.labels["migration"] for f in text_string_to_metric_families(body)
                 for s in f.samples if f.name == "migratrack_estimated_remaining_seconds"}
    progress = {s.labels["migration"] for f in text_string_to_metric_families(body)
                for s in f.samples if f.name == "migratrack_migration_progress_ratio"}
    assert "done" in progress and "done" not in remaining and 'odd"id\\x' in remaining
    assert any("left out" in r.getMessage() and "done" in r.getMessage() for r in caplog.records)
