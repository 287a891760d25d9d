"""The CloudWatch publisher against moto's server: points read back with get_metric_data, and an
outage of the endpoint that loses no data point."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from migratrack.core.commands import FailPhase, Pause, Resume, StartPhase
from migratrack.metrics.cloudwatch import MAX_PER_CALL, CloudWatchPublisher, cloudwatch_client, run_publisher
from migratrack.service import MigrationService
from migratrack.settings import Settings
from migratrack.storage import open_storage

from .moto import REGION

NS = "Migratrack/Test"


def read(cw: Any, name: str, stat: str, **dims: str) -> list[float]:
    end = datetime.now(UTC) + timedelta(minutes=5)
    r = cw.get_metric_data(
        MetricDataQueries=[{"Id": "q", "MetricStat": {
            "Metric": {"Namespace": NS, "MetricName": name,
                       "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()]},
            "Period": 60, "Stat": stat}}],
        StartTime=end - timedelta(hours=1), EndTime=end)
    return list(r["MetricDataResults"][0]["Values"])


def migration() -> MigrationService:
    svc = MigrationService(open_storage("memory://"))
    svc.initialize("m1", [{"id": "schema"}, {"id": "copy", "dependencies": ["schema"]}], actor="t")
    svc.execute("m1", StartPhase("schema"), actor="t")
    return svc


def test_points_read_back(aws: str) -> None:
    svc = migration()
    cw = cloudwatch_client(Settings(), endpoint_url=aws)
    pub = CloudWatchPublisher(svc, cw, namespace=NS)
    assert pub.run_once()
    svc.update_phase_progress("m1", "schema", 60, actor="t")
    svc.update_metrics("m1", increments={"successful_operations": 80, "failed_operations": 20,
                                         "total_data_migrated": 4096}, actor="t")
    svc.execute("m1", Pause(), actor="ops")
    svc.execute("m1", Resume(), actor="ops")
    svc.execute("m1", FailPhase("schema", "disk full"), actor="t")
    assert pub.run_once() and not pub.buffer

    assert max(read(cw, "PhaseProgress", "Maximum", MigrationId="m1", Phase="schema")) == 60
    assert max(read(cw, "ErrorRate", "Maximum", MigrationId="m1")) == 20
    assert max(read(cw, "ErrorRate", "Maximum")) == 20  # the alarm's series, without dimensions
    assert max(read(cw, "TotalDataMigrated", "Maximum", MigrationId="m1")) == 4096
    assert sum(read(cw, "PhaseEvents", "Sum", MigrationId="m1", Phase="schema", Event="failed")) == 1
    assert sum(read(cw, "PhaseFailures", "Sum")) == 1
    assert sum(read(cw, "ControlEvents", "Sum", MigrationId="m1", Action="paused")) == 1
    assert sum(read(cw, "ControlEvents", "Sum", MigrationId="m1", Action="resumed")) == 1
    assert sum(read(cw, "ProgressUpdates", "Sum")) == 1
    assert sum(read(cw, "AlertsRaised", "Sum", MigrationId="m1", Level="error")) >= 1


class Recorder:
    """A client that records calls (for the batch size and the rate limit)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def put_metric_data(self, Namespace: str, MetricData: list[Any]) -> None:
        self.calls.append(len(MetricData))


def test_batches_of_at_most_1000_rate_limited() -> None:
    svc = MigrationService(open_storage("memory://"))
    svc.initialize("big", [{"id": f"p{i}"} for i in range(1500)], actor="t")
    svc.execute("big", StartPhase("p0"), actor="t")
    slept: list[float] = []
    now = [0.0]
    rec = Recorder()
    pub = CloudWatchPublisher(svc, rec, calls_per_second=2, sleep=lambda s: (slept.append(s), now.__setitem__(
        0, now[0] + s)), monotonic=lambda: now[0])
    pub.collect()
    assert pub.collect() >= 1500  # a running migration: every phase's progress, each cycle
    total = len(pub.buffer)
    assert pub.flush()
    assert max(rec.calls) == MAX_PER_CALL and sum(rec.calls) == total
    assert len(slept) == len(rec.calls) - 1 and all(s == pytest.approx(0.5) for s in slept)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_outage_loses_no_data_point(aws: str) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    svc = migration()
    now = [0.0]
    pub = CloudWatchPublisher(svc, cloudwatch_client(Settings(), endpoint_url=endpoint), namespace=NS,
                              monotonic=lambda: now[0], sleep=lambda s: None)
    try:
        assert pub.run_once()
        server.stop()  # the endpoint goes away
        sent = 0
        for pct in (10, 20, 30):
            svc.update_phase_progress("m1", "schema", pct, actor="t")
            sent += pub.collect()
            assert not pub.flush()  # logged and kept, never raised
            now[0] += 1000  # past the back-off
        assert len(pub.buffer) == sent
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()  # back (moto keeps its data in the process)
        assert pub.flush() and not pub.buffer
        cw = cloudwatch_client(Settings(), endpoint_url=endpoint)
        assert sum(read(cw, "ProgressUpdates", "Sum")) == 3
        assert sum(read(cw, "PhaseProgress", "SampleCount", MigrationId="m1", Phase="schema")) == 4  # 1 + 3 cycles
    finally:
        server.stop()


def test_run_publisher_for_a_daemon(aws: str) -> None:
    svc = migration()
    stop = threading.Event()
    settings = Settings(cloudwatch_namespace=NS, aws_region=REGION, aws_endpoint_url=aws)
    thread = threading.Thread(target=run_publisher, args=(svc, stop), kwargs={"settings": settings, "interval": 0.05})
    thread.start()
    try:
        cw = cloudwatch_client(settings)
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while not read(cw, "OverallProgress", "SampleCount", MigrationId="m1") and datetime.now(UTC) < deadline:
            stop.wait(0.1)
        assert read(cw, "OverallProgress", "SampleCount", MigrationId="m1")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_the_server_publishes_while_it_serves(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from migratrack.web import create_app

    for var, value in {"MIGRATRACK_CLOUDWATCH": "1", "MIGRATRACK_CLOUDWATCH_NAMESPACE": NS,
                       "MIGRATRACK_AWS_ENDPOINT_URL": aws}.items():
        monkeypatch.setenv(var, value)
    svc = migration()
    app = create_app(svc.storage, auth=False)

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            await asyncio.sleep(0.2)

    asyncio.run(serve())
    cw = cloudwatch_client(Settings(), endpoint_url=aws)
    assert read(cw, "OverallProgress", "SampleCount", MigrationId="m1")


class Denied:
    """A client whose credentials lack cloudwatch:PutMetricData, until the policy is fixed."""

    def __init__(self) -> None:
        self.allowed = False
        self.sent = 0

    def put_metric_data(self, Namespace: str, MetricData: list[Any]) -> None:
        if not self.allowed:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized to perform: "
                                                                            "cloudwatch:PutMetricData"}},
                              "PutMetricData")
        self.sent += len(MetricData)


def test_a_missing_permission_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    svc = migration()
    now = [0.0]
    client = Denied()
    pub = CloudWatchPublisher(svc, client, monotonic=lambda: now[0], sleep=lambda s: None)
    assert not pub.run_once()
    assert "AccessDenied" in caplog.text and "points kept" in caplog.text
    kept = len(pub.buffer)
    assert not pub.flush()  # inside the back-off: no call at all
    client.allowed = True
    now[0] += 10
    assert pub.flush() and client.sent == kept


def test_a_store_outage_is_a_skipped_cycle() -> None:
    from migratrack.errors import StorageUnavailable

    class Down(MigrationService):
        def list_ids(self) -> list[str]:
            raise StorageUnavailable("redis://10.0.0.1 does not answer")

    pub = CloudWatchPublisher(Down(open_storage("memory://")), Recorder())
    assert pub.collect() == 0 and pub.flush()
