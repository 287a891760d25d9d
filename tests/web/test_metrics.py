"""/metrics: the Prometheus exposition, read by prometheus-client's own parser and checked against the dashboard."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from migratrack.errors import ConfigurationError
from migratrack.metrics.cost import Prices
from migratrack.web.metrics import parse_scrapers


def scrape(c: httpx.Client) -> dict[str, list[Sample]]:
    r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    found = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_values_match_the_dashboard(app: FastAPI, admin: httpx.Client, client: Callable[[str | None], httpx.Client],
                                    migration: str) -> None:
    app.state.service.prices = Prices(per_gb=2.5, fixed=10)
    base = f"/api/migrations/{migration}"
    admin.post(f"{base}/phases/schema/start")
    admin.post(f"{base}/phases/schema/complete")
    admin.post(f"{base}/phases/copy/start")
    admin.post(f"{base}/phases/copy/subtasks/orders/start")
    admin.post(f"{base}/phases/copy/subtasks/orders/progress", json={"progress": 50})
    admin.post(f"{base}/phases/copy/subtasks/users/start")
    admin.post(f"{base}/phases/copy/subtasks/users/fail", json={"error": "disk full"})
    admin.patch(f"{base}/metrics", json={"increment": {"successful_operations": 90, "failed_operations": 10,
                                                       "total_data_migrated": 5_000_000},
                                         "values": {"resource_utilization": {"cpu": 55, "memory": 40}}})
    admin.post(f"{base}/alerts", json={"level": "warning", "message": "replica lag", "phase": "copy"})
    admin.post(f"{base}/alerts", json={"level": "critical", "message": "disk", "phase": "copy"})

    m = scrape(client("viewer"))
    dash = admin.get(f"{base}/dashboard").json()
    assert value(m, "migratrack_migration_progress_ratio", migration="m1") == pytest.approx(
        dash["overview"]["overall_progress"] / 100)
    for phase in dash["phases"]:
        assert value(m, "migratrack_phase_progress_ratio", migration="m1", phase=phase["id"]) == pytest.approx(
            phase["progress"] / 100)
        for status in ("pending", "in_progress", "completed", "failed", "skipped"):
            expected = 1.0 if phase["status"] == status else 0.0
            assert value(m, "migratrack_phase_status", migration="m1", phase=phase["id"], status=status) == expected
    assert value(m, "migratrack_migration_status", migration="m1", status=dash["overview"]["status"]) == 1
    metrics = dash["metrics"]
    assert value(m, "migratrack_error_ratio", migration="m1") == pytest.approx(metrics["error_rate"] / 100)
    assert value(m, "migratrack_operations_total", migration="m1", result="successful") == 90
    assert value(m, "migratrack_operations_total", migration="m1", result="failed") == 10
    assert value(m, "migratrack_data_migrated_bytes_total", migration="m1") == 5_000_000
    assert value(m, "migratrack_speed_bytes_per_second", migration="m1") > 0
    assert value(m, "migratrack_resource_utilization", migration="m1", resource="cpu") == 55
    remaining = dash["overview"]["estimate"]["remaining_seconds"]
    assert value(m, "migratrack_estimated_remaining_seconds", migration="m1") == pytest.approx(remaining, rel=0.05)
    alerts = dash["overview"]["alert_counts"]
    # the error-rate rule raised one of its own: whatever the dashboard counts, the scrape counts
    for level in ("info", "warning", "error", "critical"):
        assert value(m, "migratrack_alerts_total", migration="m1", level=level) == alerts[level]
    assert alerts["critical"] >= 1 and alerts["warning"] >= 1
    cost = metrics["cost_metrics"]
    assert cost["actual_cost"] == pytest.approx(10 + 2.5 * 0.005)
    assert value(m, "migratrack_cost", migration="m1", kind="actual") == pytest.approx(cost["actual_cost"])
    assert value(m, "migratrack_cost_per_gigabyte", migration="m1") == pytest.approx(cost["cost_per_gb"])
    assert value(m, "migratrack_migrations", status="running") == 1
    assert value(m, "migratrack_store_up") == 1


def test_sub_tasks_are_never_labels_and_routes_are_templates(admin: httpx.Client, client: Callable[[str | None],
                                                             httpx.Client], migration: str) -> None:
    base = f"/api/migrations/{migration}"
    admin.post(f"{base}/phases/schema/start")
    for pct in (10, 20, 30):
        admin.post(f"{base}/phases/schema/progress", json={"progress": pct})
    admin.get("/api/migrations/nope")  # a 404 on a real route
    admin.get("/no/such/page")  # no route at all
    m = scrape(client("viewer"))
    labels = {v for samples in m.values() for s in samples for v in s.labels.values()}
    assert not labels & {"orders", "users"}  # the sub-tasks of 'copy'
    assert "copy" in labels
    route = "/api/migrations/{mid}/phases/{phase}/progress"
    assert value(m, "migratrack_http_requests_total", method="POST", route=route, status="200") == 3
    assert value(m, "migratrack_http_request_duration_seconds_count", method="POST", route=route) == 3
    assert value(m, "migratrack_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(m, "migratrack_http_requests_total", method="GET", route="/api/migrations/{mid}",
                 status="404") == 1


def test_a_viewer_token_or_a_scraper_address(app: FastAPI, client: Callable[[str | None], httpx.Client]) -> None:
    assert client(None).get("/metrics").status_code == 401
    assert client("viewer").get("/metrics").status_code == 200
    app.state.metrics_scrapers = parse_scrapers("10.0.0.0/8")
    assert client(None).get("/metrics").status_code == 401
    app.state.metrics_scrapers = parse_scrapers("10.0.0.5, 127.0.0.1")
    assert client(None).get("/metrics").status_code == 200
    with pytest.raises(ConfigurationError, match=r"'10\.0\.0\.300' is not an IP address"):
        parse_scrapers("10.0.0.300")


def test_openmetrics_when_asked(client: Callable[[str | None], httpx.Client], migration: str) -> None:
    r = client("viewer").get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


def test_promtool_finds_nothing_to_fix(admin: httpx.Client, client: Callable[[str | None], httpx.Client],
                                       migration: str) -> None:
    assert shutil.which("promtool"), "promtool is missing: scripts/services.sh installs it (Debian's prometheus)"
    admin.post(f"/api/migrations/{migration}/phases/schema/start")
    text = client("viewer").get("/metrics").text
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == "", done.stdout + done.stderr


def test_a_store_that_does_not_answer_is_a_gauge_not_an_error(app: FastAPI, client: Callable[[str | None],
                                                              httpx.Client], monkeypatch: pytest.MonkeyPatch) -> None:
    from migratrack.errors import StorageUnavailable

    def down() -> list[str]:
        raise StorageUnavailable("the store does not answer")

    viewer = client("viewer")
    viewer.get("/metrics")  # the token is checked (and cached) while the store answers
    monkeypatch.setattr(app.state.service, "list_ids", down)
    m = scrape(viewer)
    assert value(m, "migratrack_store_up") == 0
