"""Typed settings from the environment (``MIGRATRACK_*`` plus the seed's names).

This is the one module that reads migratrack's configuration from the environment: everything
else takes a :class:`Settings` (or ``Settings.from_env()``). An empty variable counts as unset.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from migratrack.core.plan import DEFAULT_LIMITS, Limits
from migratrack.errors import ConfigurationError

DEFAULT_STORAGE_URL = "sqlite:///migratrack.db"
DEFAULT_RETRY_DEADLINE = 300.0
PREFIX = "MIGRATRACK_"


def default_spool_dir() -> Path:
    """``migratrack-spool`` in the user's cache directory (``$XDG_CACHE_HOME``, ``~/.cache``,
    ``%LOCALAPPDATA%``, ``~/Library/Caches``) when there is one to write in, else in the system
    temp directory: a worker with no home directory still has somewhere to keep what it could
    not deliver."""
    candidates = [Path(os.environ[var]) for var in ("XDG_CACHE_HOME", "LOCALAPPDATA") if os.environ.get(var)]
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no HOME and no passwd entry: a bare container user
        pass
    else:
        candidates.append(home / ("Library/Caches" if sys.platform == "darwin" else ".cache"))
    for base in candidates:
        if base.is_dir() and os.access(base, os.W_OK):
            return base / "migratrack-spool"
    return Path(tempfile.gettempdir()) / "migratrack-spool"


def default_actor() -> str:
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "user"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


#: the variables from_env() was given; None reads os.environ. A context variable rather than an
#: argument because pydantic-settings builds its sources in a classmethod that sees no arguments.
_environ: ContextVar[Mapping[str, str] | None] = ContextVar("migratrack_environ", default=None)

#: what a value must look like, for the error message of a bad one
_EXPECTS = {
    "coalesce_ms": "a number of milliseconds, 0 or more",
    "retry_deadline": "a number of seconds, 0 or more",
}


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping: its own reads os.environ in
    _load_env_vars(), the one method overridden here (present since pydantic-settings 2.0)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ  # read by _load_env_vars(), which the base __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # `VAR= migratrack …` is how a shell unsets a variable for one command: empty is unset
        return {k if self.case_sensitive else k.lower(): v for k, v in self._environ.items() if v != ""}


class Settings(BaseSettings):
    """migratrack's configuration. ``Settings.from_env()`` reads it from the environment;
    ``Settings(storage_url=...)`` sets fields by name (arguments win over the environment).
    A bad value raises :class:`~migratrack.errors.ConfigurationError` naming the variable."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        extra="forbid",
        frozen=True,
    )

    storage_url: str = Field(
        DEFAULT_STORAGE_URL,
        validation_alias=AliasChoices("MIGRATRACK_STORAGE_URL", "REDIS_URL"),
        description="MIGRATRACK_STORAGE_URL, else the seed's REDIS_URL: the store to open when none is given",
    )
    server_url: str | None = Field(
        None,
        validation_alias=AliasChoices("MIGRATRACK_URL"),
        description="MIGRATRACK_URL: a server to report to instead of a store (the remote SDK)",
    )
    token: str | None = Field(None, description="MIGRATRACK_TOKEN: bearer token for the server")
    actor: str = Field(
        default_factory=default_actor,
        description="MIGRATRACK_ACTOR: who the audit trail names for this process (default user@host:pid)",
    )
    coalesce_ms: float = Field(
        100.0, ge=0,
        description="MIGRATRACK_COALESCE_MS: at most one progress write per phase/sub-task per this many ms",
    )
    retry_deadline: float = Field(
        DEFAULT_RETRY_DEADLINE, ge=0,
        description="MIGRATRACK_RETRY_DEADLINE: seconds the SDK retries a store or server that is away: then a "
                    "transition raises StorageUnavailable, and buffered writes go to the spool",
    )
    flush_on_sigterm: bool = Field(
        True,
        description="MIGRATRACK_FLUSH_ON_SIGTERM: a process with trackers leaves on SIGTERM through its exit hooks "
                    "(pending writes flushed, exit status 143) when SIGTERM has no handler of the program's own; "
                    "0 leaves SIGTERM alone",
    )
    spool_dir: str | None = Field(
        None,
        description="MIGRATRACK_SPOOL_DIR: where writes that could not be delivered by the deadline are kept, "
                    "one JSON-lines file per migration, for the next tracker to replay (default: a "
                    "migratrack-spool folder in the user's cache directory, else in the system temp directory)",
    )
    session_secret: str | None = Field(
        None, min_length=16,
        description="MIGRATRACK_SESSION_SECRET: signs the dashboard's session cookies; give every server behind "
                    "one load balancer the same one (sessions then survive restarts too); unset, each server "
                    "process makes its own",
    )
    encryption_key: str | None = Field(
        None, description="MIGRATRACK_ENCRYPTION_KEY: encrypt free text at rest (comma-separated keys, newest first)",
    )
    retention: str | None = Field(
        None, description="MIGRATRACK_RETENTION: finished migrations expire this long after they ended (e.g. 30d)",
    )
    max_phases: int = Field(
        DEFAULT_LIMITS.max_phases, ge=1, description="MIGRATRACK_MAX_PHASES: the most phases a migration may have",
    )
    max_sub_tasks: int = Field(
        DEFAULT_LIMITS.max_sub_tasks, ge=1,
        description="MIGRATRACK_MAX_SUB_TASKS: the most sub-tasks a phase may have",
    )
    max_alerts: int = Field(
        DEFAULT_LIMITS.max_alerts, ge=1,
        description="MIGRATRACK_MAX_ALERTS: the most alerts a migration keeps (more are refused)",
    )
    aws_region: str | None = Field(None, validation_alias=AliasChoices("AWS_REGION"),
                                   description="the seed's AWS_REGION, kept for its scripts")
    alert_email: str | None = Field(None, validation_alias=AliasChoices("MIGRATION_ALERT_EMAIL"),
                                    description="the seed's MIGRATION_ALERT_EMAIL, kept for its scripts")
    slack_webhook_url: str | None = Field(None, validation_alias=AliasChoices("SLACK_WEBHOOK_URL"),
                                          description="the seed's SLACK_WEBHOOK_URL: alerts go to this Slack "
                                                      "incoming webhook (docs/alerts.md)")
    # -- alert delivery (docs/alerts.md) --
    alerts_config: str | None = Field(None, description="MIGRATRACK_ALERTS_CONFIG: the alert routing file (YAML)")
    public_url: str | None = Field(None, description="MIGRATRACK_PUBLIC_URL: the dashboard's address, for links")
    smtp_url: str | None = Field(None, description="MIGRATRACK_SMTP_URL: smtp[s]://user:password@host:port"
                                                   "?starttls=true, for MIGRATION_ALERT_EMAIL")
    stall_after: str | None = Field(None, description="MIGRATRACK_STALL_AFTER: no heartbeat or no progress for "
                                                      "this long (90s, 10m) is a stall; default 10m")
    sns_topic_arn: str | None = Field(None, description="MIGRATRACK_SNS_TOPIC_ARN: publish alerts to this topic")
    sns_parameter: str | None = Field(None, description="MIGRATRACK_SNS_PARAMETER: Parameter Store name holding "
                                                        "the topic ARN (e.g. /migration/alert-topic-arn)")
    pagerduty_routing_key: str | None = Field(None, description="MIGRATRACK_PAGERDUTY_ROUTING_KEY: PagerDuty "
                                                                "Events v2 integration key")
    pagerduty_events_url: str | None = Field(None, description="MIGRATRACK_PAGERDUTY_EVENTS_URL: the Events API "
                                                               "URL (default PagerDuty's)")
    webhook_url: str | None = Field(None, description="MIGRATRACK_WEBHOOK_URL: post alerts as JSON here")
    dispatch: str | None = Field(None, description="MIGRATRACK_DISPATCH: auto (default: when a channel is "
                                                   "configured), on or off: an embedded tracker runs the alert "
                                                   "dispatcher when no other process holds its lease")
    webhook_secret: str | None = Field(None, description="MIGRATRACK_WEBHOOK_SECRET: HMAC-SHA256 key signing "
                                                         "the webhook's body")
    # -- metrics, logs and AWS (docs/metrics.md, docs/aws.md) --
    metrics_scrapers: str | None = Field(
        None, description="MIGRATRACK_METRICS_SCRAPERS: addresses or networks (comma-separated, e.g. "
                          "10.0.0.5,10.1.0.0/16) that may read /metrics without a token; others need a viewer token",
    )
    log_level: str = Field("info", description="MIGRATRACK_LOG_LEVEL: debug, info, warning or error for the "
                                               "migratrack.* loggers (debug is the seed's DEBUG=migration:*)")
    log_json: bool = Field(False, description="MIGRATRACK_LOG_JSON: 1 for one JSON object per log line")
    price_per_gb: float | None = Field(None, ge=0, description="MIGRATRACK_PRICE_PER_GB: cost per GB (10^9 "
                                                               "bytes) transferred, for the cost metrics")
    price_per_worker_hour: float | None = Field(None, ge=0, description="MIGRATRACK_PRICE_PER_WORKER_HOUR: cost "
                                                                        "per worker-hour")
    price_fixed: float | None = Field(None, ge=0, description="MIGRATRACK_PRICE_FIXED: a fixed cost per migration")
    cloudwatch_namespace: str = Field("Migratrack/Migration", description="MIGRATRACK_CLOUDWATCH_NAMESPACE: "
                                                                          "the CloudWatch namespace published to")
    cloudwatch: bool = Field(False, description="MIGRATRACK_CLOUDWATCH: 1 to publish metrics to CloudWatch "
                                                "from the server")
    aws_endpoint_url: str | None = Field(None, validation_alias=AliasChoices("MIGRATRACK_AWS_ENDPOINT_URL",
                                                                             "AWS_ENDPOINT_URL"),
                                         description="MIGRATRACK_AWS_ENDPOINT_URL, else AWS_ENDPOINT_URL: an AWS "
                                                     "endpoint other than AWS's own (a test double, a VPC endpoint)")

    def limits(self) -> Limits:
        """The caps on a migration's size that these settings give."""
        return Limits(max_phases=self.max_phases, max_sub_tasks=self.max_sub_tasks, max_alerts=self.max_alerts)

    def spool_path(self) -> Path:
        """The spool directory: ``spool_dir``, else the default (not created here)."""
        return Path(self.spool_dir).expanduser() if self.spool_dir else default_spool_dir()

    def __init__(self, **values: Any) -> None:
        # A field is given by its name; pydantic would take an aliased one by its variable's name
        # only, and populate_by_name would also accept MIGRATRACK_<NAME> for it from the environment.
        values = {_ALIASES.get(k, k): v for k, v in values.items()}
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(_explain(exc, values)) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``env`` (default: ``os.environ``)."""
        with _reading(env):
            return cls()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env file and no secrets directory: the process environment is the whole configuration.
        environ = _environ.get()
        return init_settings, _Environment(settings_cls, os.environ if environ is None else environ)


#: field name -> the variable that names it, for the fields whose variable is not MIGRATRACK_<NAME>
_ALIASES = {
    name: str(field.validation_alias.choices[0])
    for name, field in Settings.model_fields.items()
    if isinstance(field.validation_alias, AliasChoices)
}


@contextmanager
def _reading(env: Mapping[str, str] | None) -> Iterator[None]:
    token = _environ.set(env)
    try:
        yield
    finally:
        _environ.reset(token)


def _variable(key: str) -> str:
    """The environment variable a validation error's key stands for (an alias already is one)."""
    field = Settings.model_fields.get(key)
    return key if field is None or field.validation_alias is not None else PREFIX + key.upper()


def _field_of(key: str) -> str:
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if name == key or (isinstance(alias, AliasChoices) and key in alias.choices):
            return name
    return key


def _explain(exc: ValidationError, values: Mapping[str, Any]) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        key = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            problems.append(f"Settings has no field {key!r}; its fields are {', '.join(Settings.model_fields)}")
            continue
        name = _field_of(key)
        expects = _EXPECTS.get(name)
        problem = f"must be {expects}" if expects else f"is not valid ({error['msg']})"
        if key in values:  # an argument, named as the caller wrote it
            problems.append(f"{name}= {problem}, got {error['input']!r}")
            continue
        default = Settings.model_fields[name].default if name in Settings.model_fields else None
        unset = f", or unset it for the default {default:g}" if isinstance(default, float) else ""
        variable = _variable(key)
        problems.append(f"{variable} {problem}, got {error['input']!r}: correct {variable}{unset}")
    return "; ".join(problems)
