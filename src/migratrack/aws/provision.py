"""``migratrack aws provision`` / ``teardown``: the CloudWatch dashboard and alarms, the SNS topic
with its e-mail subscription, and the Parameter Store entry, created idempotently.

Each resource is compared with what it should be: absent -> create, different -> update,
the same -> unchanged (a second run changes nothing and says so). Everything created carries
the tag ``migratrack:managed=true``; teardown removes what carries it and nothing else. A
resource of the same name that migratrack did not create is never touched: provision stops and
says so. CloudWatch dashboards take no tags: teardown recognises the dashboard by its name and
its widgets. What the resources are is in aws/spec.py, shared with the Terraform writer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from migratrack.aws import spec
from migratrack.aws.session import client, region_of
from migratrack.errors import ConfigurationError
from migratrack.settings import Settings

Action = Literal["create", "update", "unchanged", "delete", "absent"]


@dataclass(frozen=True)
class Config:
    region: str
    endpoint_url: str | None = None
    namespace: str = spec.DEFAULT_NAMESPACE
    email: str | None = None
    stall_minutes: int = spec.DEFAULT_STALL_MINUTES
    topic_name: str = spec.TOPIC_NAME
    dashboard_name: str = spec.DASHBOARD_NAME
    parameter_name: str = spec.PARAMETER_NAME

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> Config:
        s = settings or Settings.from_env()
        given = {k: v for k, v in overrides.items() if v is not None}
        region = region_of(s, given.pop("region", None))
        return cls(region=region, endpoint_url=given.pop("endpoint_url", s.aws_endpoint_url),
                   namespace=given.pop("namespace", s.cloudwatch_namespace), email=given.pop("email", s.alert_email),
                   **given)


@dataclass
class Step:
    kind: str
    name: str
    action: Action
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action:>9}  {self.kind:<18} {self.name}" + (f"  ({self.detail})" if self.detail else "")


@dataclass
class Clients:
    cloudwatch: Any
    sns: Any
    ssm: Any

    @classmethod
    def of(cls, config: Config) -> Clients:
        def make(service: str) -> Any:
            return client(service, region=config.region, endpoint_url=config.endpoint_url, attempts=3)

        return cls(make("cloudwatch"), make("sns"), make("ssm"))


def _tag_list(key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in spec.tags().items()]


def _managed(tags: list[dict[str, str]]) -> bool:
    return any(t.get("Key") == spec.TAG_KEY and t.get("Value") == spec.TAG_VALUE for t in tags)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


@dataclass
class Provisioner:
    config: Config
    clients: Clients
    steps: list[Step] = field(default_factory=list)

    # -- provision -----------------------------------------------------------------------------

    def provision(self, *, dry_run: bool = False) -> list[Step]:
        """Bring every resource to what it should be (``dry_run``: only say what would change)."""
        self.steps = []
        topic_arn = self._topic(dry_run)
        self._subscription(topic_arn, dry_run)
        self._parameter(topic_arn, dry_run)
        self._dashboard(dry_run)
        for alarm in spec.alarms(self.config.stall_minutes):
            self._alarm(alarm, topic_arn, dry_run)
        return self.steps

    def _step(self, kind: str, name: str, action: Action, detail: str = "") -> None:
        self.steps.append(Step(kind, name, action, detail))

    def _find_topic(self) -> str | None:
        for page in self.clients.sns.get_paginator("list_topics").paginate():
            for t in page.get("Topics", []):
                if t["TopicArn"].rsplit(":", 1)[-1] == self.config.topic_name:
                    return str(t["TopicArn"])
        return None

    def _topic(self, dry_run: bool) -> str | None:
        arn = self._find_topic()
        if arn is not None:
            if not _managed(self.clients.sns.list_tags_for_resource(ResourceArn=arn).get("Tags", [])):
                raise ConfigurationError(f"an SNS topic named {self.config.topic_name!r} exists and migratrack did "
                                         "not create it: remove it or choose another name (--topic-name)")
            self._step("sns-topic", self.config.topic_name, "unchanged")
            return arn
        self._step("sns-topic", self.config.topic_name, "create")
        if dry_run:
            return None
        return str(self.clients.sns.create_topic(Name=self.config.topic_name, Tags=_tag_list())["TopicArn"])

    def _subscription(self, topic_arn: str | None, dry_run: bool) -> None:
        email = self.config.email
        if not email:
            self._step("sns-subscription", "email", "absent", "set MIGRATION_ALERT_EMAIL to subscribe an address")
            return
        if topic_arn is not None:
            subs = self.clients.sns.list_subscriptions_by_topic(TopicArn=topic_arn).get("Subscriptions", [])
            if any(s.get("Protocol") == "email" and s.get("Endpoint") == email for s in subs):
                self._step("sns-subscription", f"email:{email}", "unchanged")
                return
        self._step("sns-subscription", f"email:{email}", "create", "AWS e-mails a confirmation link")
        if not dry_run and topic_arn is not None:
            self.clients.sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint=email)

    def _parameter(self, topic_arn: str | None, dry_run: bool) -> None:
        name = self.config.parameter_name
        ssm = self.clients.ssm
        try:
            current = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except Exception as exc:
            if _error_code(exc) != "ParameterNotFound":
                raise
            current = None
        if current is not None:
            tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name).get("TagList", [])
            if not _managed(tags):
                raise ConfigurationError(f"the parameter {name!r} exists and migratrack did not create it: "
                                         "remove it or choose another name (--parameter-name)")
            if current == topic_arn:
                self._step("ssm-parameter", name, "unchanged")
                return
            self._step("ssm-parameter", name, "update", "the topic's ARN")
            if not dry_run and topic_arn is not None:
                ssm.put_parameter(Name=name, Value=topic_arn, Type="String", Overwrite=True)
            return
        self._step("ssm-parameter", name, "create", "the topic's ARN, read by the SNS alert channel")
        if not dry_run and topic_arn is not None:
            ssm.put_parameter(Name=name, Value=topic_arn, Type="String", Tags=_tag_list(),
                              Description="migratrack: the SNS topic alerts go to")

    def _dashboard_body(self) -> dict[str, Any]:
        return spec.dashboard_body(self.config.namespace, self.config.region)

    def _current_dashboard(self) -> dict[str, Any] | None:
        try:
            body = self.clients.cloudwatch.get_dashboard(DashboardName=self.config.dashboard_name)["DashboardBody"]
        except Exception as exc:
            if _error_code(exc) not in ("ResourceNotFound", "ResourceNotFoundException"):
                raise
            return None
        parsed = json.loads(body)
        return parsed if isinstance(parsed, dict) else {}

    def _dashboard(self, dry_run: bool) -> None:
        name = self.config.dashboard_name
        want = self._dashboard_body()
        current = self._current_dashboard()
        if current is not None and not _is_ours(current):
            raise ConfigurationError(f"a CloudWatch dashboard named {name!r} exists and migratrack did not create "
                                     "it: remove it or choose another name (--dashboard-name)")
        action: Action = "create" if current is None else "unchanged" if current == want else "update"
        self._step("dashboard", name, action, "6 widgets" if action != "unchanged" else "")
        if action != "unchanged" and not dry_run:
            self.clients.cloudwatch.put_dashboard(DashboardName=name, DashboardBody=json.dumps(want, sort_keys=True))

    def _alarm_args(self, alarm: spec.Alarm, topic_arn: str | None) -> dict[str, Any]:
        return {
            "AlarmName": alarm.name, "AlarmDescription": alarm.description, "Namespace": self.config.namespace,
            "MetricName": alarm.metric, "Statistic": alarm.statistic, "ComparisonOperator": alarm.comparison,
            "Threshold": float(alarm.threshold), "Period": alarm.period, "EvaluationPeriods": alarm.evaluation_periods,
            "TreatMissingData": alarm.treat_missing_data,
            "Dimensions": [{"Name": k, "Value": v} for k, v in alarm.dimensions.items()],
            "AlarmActions": [topic_arn] if topic_arn else [],
        }

    def _alarm(self, alarm: spec.Alarm, topic_arn: str | None, dry_run: bool) -> None:
        cw = self.clients.cloudwatch
        want = self._alarm_args(alarm, topic_arn)
        found = cw.describe_alarms(AlarmNames=[alarm.name]).get("MetricAlarms", [])
        if found:
            have = found[0]
            if not _managed(cw.list_tags_for_resource(ResourceARN=have["AlarmArn"]).get("Tags", [])):
                raise ConfigurationError(f"a CloudWatch alarm named {alarm.name!r} exists and migratrack did not "
                                         "create it: remove it first")
            same = all(have.get(k) == v for k, v in want.items() if k != "AlarmActions") and (
                topic_arn is not None and have.get("AlarmActions") == want["AlarmActions"])
            if same:
                self._step("alarm", alarm.name, "unchanged")
                return
            self._step("alarm", alarm.name, "update")
        else:
            self._step("alarm", alarm.name, "create", alarm.description)
        if not dry_run:
            cw.put_metric_alarm(**want, Tags=_tag_list())

    # -- teardown --------------------------------------------------------------------------------

    def teardown(self, *, dry_run: bool = False) -> list[Step]:
        """Remove what provision created (tagged), and nothing else."""
        self.steps = []
        cw, sns, ssm = self.clients.cloudwatch, self.clients.sns, self.clients.ssm
        names = [a.name for a in spec.alarms(self.config.stall_minutes)]
        mine = [a["AlarmName"] for a in cw.describe_alarms(AlarmNames=names).get("MetricAlarms", [])
                if _managed(cw.list_tags_for_resource(ResourceARN=a["AlarmArn"]).get("Tags", []))]
        for name in names:
            self._step("alarm", name, "delete" if name in mine else "absent")
        if mine and not dry_run:
            cw.delete_alarms(AlarmNames=mine)
        current = self._current_dashboard()
        ours = current is not None and _is_ours(current)
        self._step("dashboard", self.config.dashboard_name, "delete" if ours else "absent")
        if ours and not dry_run:
            cw.delete_dashboards(DashboardNames=[self.config.dashboard_name])
        self._delete_parameter(ssm, dry_run)
        arn = self._find_topic()
        managed = arn is not None and _managed(sns.list_tags_for_resource(ResourceArn=arn).get("Tags", []))
        if arn is not None and managed:
            subs = sns.list_subscriptions_by_topic(TopicArn=arn).get("Subscriptions", [])
            for s in subs:
                confirmed = s["SubscriptionArn"].startswith("arn:")
                self._step("sns-subscription", f"{s.get('Protocol')}:{s.get('Endpoint')}", "delete",
                           "" if confirmed else "pending confirmation: goes with the topic")
                if confirmed and not dry_run:
                    sns.unsubscribe(SubscriptionArn=s["SubscriptionArn"])
        self._step("sns-topic", self.config.topic_name, "delete" if managed else "absent")
        if managed and not dry_run:
            sns.delete_topic(TopicArn=arn)
        return self.steps

    def _delete_parameter(self, ssm: Any, dry_run: bool) -> None:
        name = self.config.parameter_name
        try:
            tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name).get("TagList", [])
        except Exception as exc:
            if _error_code(exc) not in ("InvalidResourceId", "ParameterNotFound"):
                raise
            tags = None
        ours = tags is not None and _managed(tags)
        self._step("ssm-parameter", name, "delete" if ours else "absent")
        if ours and not dry_run:
            ssm.delete_parameter(Name=name)


def _is_ours(body: dict[str, Any]) -> bool:
    """A dashboard made by provision: its widgets' titles are the seed's six."""
    titles = {str(w.get("properties", {}).get("title")) for w in body.get("widgets", []) if isinstance(w, dict)}
    return titles == {"Migration events", "Phase progress", "Data migration", "Error metrics", "Control events",
                      "Migration logs"}


def changed(steps: list[Step]) -> bool:
    return any(s.action in ("create", "update", "delete") for s in steps)


def provisioner(config: Config, make_clients: Callable[[Config], Clients] = Clients.of) -> Provisioner:
    return Provisioner(config, make_clients(config))
