"""Alert routing configuration: a YAML file (``MIGRATRACK_ALERTS_CONFIG``) plus the environment,
validated once at start with errors that name the field to fix. See docs/alerts.md.

The environment adds channels the file does not name: ``SLACK_WEBHOOK_URL`` (channel ``slack``),
``MIGRATION_ALERT_EMAIL`` with ``MIGRATRACK_SMTP_URL`` (``email``), ``MIGRATRACK_SNS_TOPIC_ARN``
or ``MIGRATRACK_SNS_PARAMETER`` (``sns``), ``MIGRATRACK_PAGERDUTY_ROUTING_KEY`` (``pagerduty``),
``MIGRATRACK_WEBHOOK_URL`` (``webhook``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from migratrack.core.states import AlertLevel
from migratrack.errors import ConfigurationError
from migratrack.settings import Settings
from migratrack.storage.base import parse_duration

#: the Parameter Store name the seed reads the SNS topic ARN from
DEFAULT_SNS_PARAMETER = "/migration/alert-topic-arn"
DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"

def _duration(value: Any) -> Any:
    """``90s``, ``10m``, ``2h`` or seconds; zero is allowed here (``group_wait: 0s``: no wait)."""
    if isinstance(value, str) and value.strip() in ("0", "0s", "0m", "0h"):
        return timedelta(0)
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return timedelta(0)
    try:
        return parse_duration(value) if isinstance(value, str | int | float) else value
    except ConfigurationError as exc:  # a ValueError, so pydantic names the field
        raise ValueError(str(exc)) from None


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelConfig(_Strict):
    type: Literal["slack", "email", "sns", "webhook", "pagerduty"]
    #: the least level sent to this channel
    min_level: AlertLevel = AlertLevel.WARNING
    #: only alerts of these phases (and alerts of no phase); empty: every phase
    phases: list[str] = Field(default_factory=list)
    #: only these migrations; empty: every migration
    migrations: list[str] = Field(default_factory=list)
    #: grouping, as in Alertmanager: wait this long before the first message of a new group
    group_wait: Duration | None = None
    #: then at most one message per group this often
    group_interval: Duration | None = None
    #: an alert with the same fingerprint is not sent again within this time
    repeat_interval: Duration | None = None
    #: slack, webhook: the URL to post to
    url: str | None = None
    #: webhook: the HMAC-SHA256 key (the body's signature goes in X-Migratrack-Signature)
    secret: str | None = None
    #: email: recipients, and the SMTP server smtp[s]://user:password@host:port?starttls=true
    to: list[str] = Field(default_factory=list)
    smtp_url: str | None = None
    sender: str = "migratrack@localhost"
    #: sns: the topic's ARN, or the Parameter Store name that holds it
    topic_arn: str | None = None
    parameter: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    #: pagerduty: the integration's routing key, and the Events API v2 URL
    routing_key: str | None = None
    events_url: str = DEFAULT_PAGERDUTY_URL
    #: seconds an HTTP or SMTP call may take
    timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> ChannelConfig:
        need = {"slack": ("url",), "webhook": ("url",), "pagerduty": ("routing_key",), "email": ("to", "smtp_url")}
        for name in need.get(self.type, ()):
            if not getattr(self, name):
                raise ValueError(f"a {self.type} channel needs {name!r}")
        return self


class Escalation(_Strict):
    #: an alert at or above this level, unacknowledged this long ...
    after: Duration
    min_level: AlertLevel = AlertLevel.CRITICAL
    #: ... is sent to this channel too
    channel: str


class ErrorRateConfig(_Strict):
    #: percent of failed operations over the window that raises a warning, and a critical
    warning: float = Field(default=10.0, gt=0, le=100)
    critical: float = Field(default=25.0, gt=0, le=100)
    window: Duration = timedelta(minutes=5)
    #: fewer operations than this in the window decide nothing: three early failures page no one
    min_operations: int = Field(default=20, ge=1)


class AlertsConfig(_Strict):
    """The whole routing configuration."""

    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    group_wait: Duration = timedelta(seconds=10)
    group_interval: Duration = timedelta(minutes=1)
    repeat_interval: Duration = timedelta(hours=4)
    escalation: list[Escalation] = Field(default_factory=list)
    #: a failed phase mutes the stall alerts of the phases waiting on it
    inhibit: bool = True
    #: no heartbeat, or no progress, for this long is a stall (per phase: ``stall_after`` in the plan)
    stall_after: Duration = timedelta(minutes=10)
    error_rate: ErrorRateConfig = Field(default_factory=lambda: ErrorRateConfig())
    #: the dashboard's public address, for links in messages
    public_url: str | None = None
    #: how often the dispatcher looks for work, and how long its lease lasts without renewal
    tick: Duration = timedelta(seconds=1)
    lease_ttl: Duration = timedelta(seconds=15)
    #: alerts older than this when a dispatcher first sees their migration are not sent
    catch_up: Duration = timedelta(hours=1)
    #: retries: the first waits up to ``retry_first``, each next up to twice as long (full jitter)
    retry_first: Duration = timedelta(seconds=2)
    retry_cap: Duration = timedelta(minutes=5)
    max_attempts: int = Field(default=12, ge=1)
    #: delivered, failed and suppressed deliveries (with their attempts) are kept this long
    keep_deliveries: Duration = timedelta(days=7)

    @model_validator(mode="after")
    def _escalations_name_channels(self) -> AlertsConfig:
        for e in self.escalation:
            if e.channel not in self.channels:
                raise ValueError(f"escalation names channel {e.channel!r}, which is not configured "
                                 f"(channels: {', '.join(self.channels) or 'none'})")
        return self

    def windows(self, channel: str) -> tuple[timedelta, timedelta, timedelta]:
        """group_wait, group_interval, repeat_interval for a channel (its own, else the defaults)."""
        c = self.channels[channel]
        return (c.group_wait if c.group_wait is not None else self.group_wait,
                c.group_interval if c.group_interval is not None else self.group_interval,
                c.repeat_interval if c.repeat_interval is not None else self.repeat_interval)


def _env_channels(settings: Settings) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    if settings.slack_webhook_url:
        found["slack"] = {"type": "slack", "url": settings.slack_webhook_url}
    if settings.alert_email:
        found["email"] = {"type": "email", "to": [a.strip() for a in settings.alert_email.split(",") if a.strip()],
                          "smtp_url": settings.smtp_url or "smtp://localhost:25"}
    if settings.sns_topic_arn or settings.sns_parameter:
        found["sns"] = {"type": "sns", "topic_arn": settings.sns_topic_arn, "parameter": settings.sns_parameter,
                        "region": settings.aws_region}
    if settings.pagerduty_routing_key:
        found["pagerduty"] = {"type": "pagerduty", "routing_key": settings.pagerduty_routing_key,
                              "min_level": "error"}
        if settings.pagerduty_events_url:
            found["pagerduty"]["events_url"] = settings.pagerduty_events_url
    if settings.webhook_url:
        found["webhook"] = {"type": "webhook", "url": settings.webhook_url, "secret": settings.webhook_secret}
    return found


def load_config(settings: Settings | None = None, path: str | Path | None = None) -> AlertsConfig:
    """The configuration from ``path`` (default: ``MIGRATRACK_ALERTS_CONFIG``, if set) and the
    environment. Raises ConfigurationError naming what to fix."""
    settings = settings or Settings.from_env()
    path = path or settings.alerts_config
    data: dict[str, Any] = {}
    where = "the environment"
    if path:
        where = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read the alerts configuration {where}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"the alerts configuration {where} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigurationError(f"the alerts configuration {where} must be a mapping (channels:, ...)")
        data = dict(loaded or {})
    channels = dict(data.get("channels") or {})
    for name, channel in _env_channels(settings).items():
        channels.setdefault(name, channel)
    data["channels"] = channels
    if settings.public_url and "public_url" not in data:
        data["public_url"] = settings.public_url
    if settings.stall_after and "stall_after" not in data:
        data["stall_after"] = settings.stall_after
    try:
        return AlertsConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"the alerts configuration ({where}) is not valid: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}" for e in exc.errors(include_url=False)
        )) from None
