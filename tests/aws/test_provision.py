"""`migratrack aws provision`, again (no change), then `teardown`, against moto's server: every resource checked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from migratrack.aws import spec
from migratrack.cli.main import app

from .moto import client

EMAIL = "ops@example.com"


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["aws", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def resources(endpoint: str) -> dict[str, Any]:
    cw, sns, ssm = client("cloudwatch", endpoint), client("sns", endpoint), client("ssm", endpoint)
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    out: dict[str, Any] = {
        "topics": topics,
        "subscriptions": [(s["Protocol"], s["Endpoint"]) for t in topics
                          for s in sns.list_subscriptions_by_topic(TopicArn=t)["Subscriptions"]],
        "alarms": {a["AlarmName"]: a for a in cw.describe_alarms()["MetricAlarms"]},
        "dashboards": [d["DashboardName"] for d in cw.list_dashboards()["DashboardEntries"]],
        "parameters": {p["Name"]: p for p in ssm.describe_parameters()["Parameters"]},
    }
    out["alarm_tags"] = {n: cw.list_tags_for_resource(ResourceARN=a["AlarmArn"])["Tags"]
                         for n, a in out["alarms"].items()}
    return out


def test_provision_again_then_teardown(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATION_ALERT_EMAIL", EMAIL)
    plan = run("provision", "--dry-run", "--endpoint-url", aws)
    assert "dry run: nothing was changed" in plan and plan.count("create") >= 7
    assert resources(aws)["topics"] == []

    first = run("provision", "--endpoint-url", aws, "--stall-minutes", "20")
    assert "nothing to change" not in first
    r = resources(aws)
    assert len(r["topics"]) == 1 and r["topics"][0].endswith(":" + spec.TOPIC_NAME)
    topic = r["topics"][0]
    assert r["subscriptions"] == [("email", EMAIL)]
    assert r["dashboards"] == [spec.DASHBOARD_NAME]
    body = json.loads(client("cloudwatch", aws).get_dashboard(DashboardName=spec.DASHBOARD_NAME)["DashboardBody"])
    assert [w["properties"]["title"] for w in body["widgets"]] == [
        "Migration events", "Phase progress", "Data migration", "Error metrics", "Control events", "Migration logs"]
    param = client("ssm", aws).get_parameter(Name=spec.PARAMETER_NAME)["Parameter"]
    assert param["Value"] == topic
    alarms = r["alarms"]
    assert set(alarms) == {"migratrack-phase-failed", "migratrack-error-rate-high", "migratrack-migration-stalled"}
    rate = alarms["migratrack-error-rate-high"]
    assert (rate["MetricName"], rate["Threshold"], rate["ComparisonOperator"]) == (
        "ErrorRate", 10.0, "GreaterThanThreshold")
    stalled = alarms["migratrack-migration-stalled"]
    assert (stalled["TreatMissingData"], stalled["EvaluationPeriods"], stalled["MetricName"]) == (
        "breaching", 20, "ProgressUpdates")
    assert all(a["AlarmActions"] == [topic] and a["Namespace"] == spec.DEFAULT_NAMESPACE for a in alarms.values())
    assert all({"Key": spec.TAG_KEY, "Value": "true"} in tags for tags in r["alarm_tags"].values())

    second = run("provision", "--endpoint-url", aws, "--stall-minutes", "20")
    assert "nothing to change: everything is as provisioned" in second
    assert "create" not in second and "update" not in second
    assert resources(aws)["subscriptions"] == [("email", EMAIL)]

    changed = run("provision", "--endpoint-url", aws, "--stall-minutes", "45")
    assert "update" in changed and "migratrack-migration-stalled" in changed
    assert resources(aws)["alarms"]["migratrack-migration-stalled"]["EvaluationPeriods"] == 45

    # something migratrack did not create stays
    client("cloudwatch", aws).put_metric_alarm(
        AlarmName="someone-elses", MetricName="X", Namespace="Other", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    client("ssm", aws).put_parameter(Name="/other/param", Value="v", Type="String")
    gone = run("teardown", "--endpoint-url", aws, "--stall-minutes", "45")
    assert gone.count("delete") >= 7
    r = resources(aws)
    assert r["topics"] == [] and r["subscriptions"] == [] and r["dashboards"] == []
    assert set(r["alarms"]) == {"someone-elses"}
    assert set(r["parameters"]) == {"/other/param"}
    again = run("teardown", "--endpoint-url", aws)
    assert "nothing to remove" in again


def test_a_resource_migratrack_did_not_create_is_never_taken_over(aws: str) -> None:
    client("ssm", aws).put_parameter(Name=spec.PARAMETER_NAME, Value="theirs", Type="String")
    result = CliRunner().invoke(app, ["aws", "provision", "--endpoint-url", aws])
    assert result.exit_code == 2 and "exists and migratrack did not create it" in result.output
    assert client("ssm", aws).get_parameter(Name=spec.PARAMETER_NAME)["Parameter"]["Value"] == "theirs"


def test_an_unreachable_endpoint_is_one_clear_line(aws: str) -> None:
    result = CliRunner().invoke(app, ["aws", "provision", "--endpoint-url", "http://127.0.0.1:9",
                                      "--region", "eu-west-1"])
    assert result.exit_code in (2, 4) and "cannot reach AWS" in result.output
    assert "Traceback" not in result.output
