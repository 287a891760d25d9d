"""The AWS side, said once: metric names, the dashboard's widgets, the alarms, the SNS topic and
the Parameter Store entry. The publisher (metrics/cloudwatch.py), ``migratrack aws provision``
(aws/provision.py) and ``migratrack aws terraform`` (aws/terraform.py) all read it from here, so
what Terraform writes is what provision creates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DEFAULT_NAMESPACE = "Migratrack/Migration"
DEFAULT_REGION = "us-east-1"
#: every resource provision creates carries this tag: teardown removes what has it, nothing else
TAG_KEY = "migratrack:managed"
TAG_VALUE = "true"
TOPIC_NAME = "migration-alerts"
DASHBOARD_NAME = "migratrack-migrations"
PARAMETER_NAME = "/migration/alert-topic-arn"
LOG_GROUP = "/aws/lambda/migration-tracker"
LAMBDA_NAME = "migration-tracker"
LAMBDA_HANDLER = "migratrack.aws.lambda_handler"
DEFAULT_STALL_MINUTES = 30

# -- metric names (the seed's four, then events and aggregates the alarms read) -----------------

PHASE_PROGRESS = "PhaseProgress"          #: Percent; MigrationId, Phase
OVERALL_PROGRESS = "OverallProgress"      #: Percent; MigrationId
ERROR_RATE = "ErrorRate"                  #: Percent; MigrationId, and without dimensions (the highest)
TOTAL_DATA = "TotalDataMigrated"          #: Bytes; MigrationId
SPEED = "MigrationSpeed"                  #: Bytes/Second; MigrationId
PHASE_EVENTS = "PhaseEvents"              #: Count; MigrationId, Phase, Event (started, completed, failed...)
PHASE_FAILURES = "PhaseFailures"          #: Count; no dimensions (for the alarm)
CONTROL_EVENTS = "ControlEvents"          #: Count; MigrationId, Action (paused, resumed, cancelled)
ALERTS = "AlertsRaised"                   #: Count; MigrationId, Level
PROGRESS_UPDATES = "ProgressUpdates"      #: Count; no dimensions: progress reports seen (the stall alarm)

PHASE_EVENT_TYPES = ("started", "completed", "failed", "retried", "skipped")
CONTROL_ACTIONS = ("paused", "resumed", "cancelled")


@dataclass(frozen=True)
class Alarm:
    name: str
    description: str
    metric: str
    statistic: str
    comparison: str
    threshold: float
    period: int
    evaluation_periods: int
    treat_missing_data: str
    dimensions: dict[str, str] = field(default_factory=dict)


def alarms(stall_minutes: int = DEFAULT_STALL_MINUTES) -> list[Alarm]:
    return [
        Alarm("migratrack-phase-failed", "A migration phase failed", PHASE_FAILURES, "Sum",
              "GreaterThanOrEqualToThreshold", 1, 60, 1, "notBreaching"),
        Alarm("migratrack-error-rate-high", "A migration's error rate is above 10%", ERROR_RATE, "Maximum",
              "GreaterThanThreshold", 10, 300, 1, "notBreaching"),
        Alarm("migratrack-migration-stalled",
              f"No progress reported for {stall_minutes} minutes (no data counts as stalled)", PROGRESS_UPDATES,
              "Sum", "LessThanThreshold", 1, 60, max(1, stall_minutes), "breaching"),
    ]


def dashboard_body(namespace: str, region: str) -> dict[str, Any]:
    """The seed's six widgets: migration events, phase progress, data migration, error metrics,
    control events and the log view. Metric widgets use SEARCH so new migrations and phases
    appear without editing the dashboard."""

    def metric_widget(title: str, expressions: list[str], x: int, y: int, stat: str = "Sum") -> dict[str, Any]:
        return {
            "type": "metric", "x": x, "y": y, "width": 12, "height": 6,
            "properties": {
                "title": title, "region": region, "stat": stat, "period": 60, "view": "timeSeries",
                "metrics": [[{"expression": f"SEARCH('{e}', '{stat}', 60)", "id": f"e{i}"}]
                            for i, e in enumerate(expressions)],
            },
        }

    ns = namespace
    return {"widgets": [
        metric_widget("Migration events", [f"{{{ns},MigrationId,Phase,Event}} MetricName=\"{PHASE_EVENTS}\""], 0, 0),
        metric_widget("Phase progress", [f"{{{ns},MigrationId,Phase}} MetricName=\"{PHASE_PROGRESS}\""], 12, 0,
                      "Maximum"),
        metric_widget("Data migration", [f"{{{ns},MigrationId}} MetricName=\"{TOTAL_DATA}\"",
                                         f"{{{ns},MigrationId}} MetricName=\"{SPEED}\""], 0, 6, "Maximum"),
        metric_widget("Error metrics", [f"{{{ns},MigrationId}} MetricName=\"{ERROR_RATE}\"",
                                        f"{{{ns},MigrationId,Level}} MetricName=\"{ALERTS}\""], 12, 6, "Maximum"),
        metric_widget("Control events", [f"{{{ns},MigrationId,Action}} MetricName=\"{CONTROL_EVENTS}\""], 0, 12),
        {"type": "log", "x": 12, "y": 12, "width": 12, "height": 6,
         "properties": {"title": "Migration logs", "region": region, "view": "table",
                        "query": f"SOURCE '{LOG_GROUP}' | fields @timestamp, @message | sort @timestamp desc "
                                 "| limit 100"}},
    ]}


def dashboard_json(namespace: str, region: str) -> str:
    return json.dumps(dashboard_body(namespace, region), sort_keys=True)


def tags(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {TAG_KEY: TAG_VALUE, **(extra or {})}
