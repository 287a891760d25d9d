"""Typed settings from the environment (``MIGRATRACK_*`` plus the seed's names)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from migratrack.errors import ConfigurationError

DEFAULT_STORAGE_URL = "sqlite:///migratrack.db"


def default_actor() -> str:
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "user"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Settings:
    #: MIGRATRACK_STORAGE_URL, else the seed's REDIS_URL, else sqlite:///migratrack.db
    storage_url: str = DEFAULT_STORAGE_URL
    #: MIGRATRACK_URL: a server to report to instead of a store (the remote SDK)
    server_url: str | None = None
    #: MIGRATRACK_TOKEN: bearer token for the server
    token: str | None = None
    #: MIGRATRACK_ACTOR: who the audit trail names for this process
    actor: str = field(default_factory=default_actor)
    #: MIGRATRACK_COALESCE_MS: at most one progress write per phase/sub-task per this many ms
    coalesce_ms: float = 100.0
    #: MIGRATRACK_ENCRYPTION_KEY: encrypt free text at rest
    encryption_key: str | None = None
    #: MIGRATRACK_RETENTION: finished migrations expire this long after they ended (e.g. 30d)
    retention: str | None = None
    #: the seed's AWS_REGION, MIGRATION_ALERT_EMAIL, SLACK_WEBHOOK_URL
    aws_region: str | None = None
    alert_email: str | None = None
    slack_webhook_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        coalesce = e.get("MIGRATRACK_COALESCE_MS", "100")
        try:
            coalesce_ms = float(coalesce)
        except ValueError:
            raise ConfigurationError(
                f"MIGRATRACK_COALESCE_MS must be a number of milliseconds, got {coalesce!r}"
            ) from None
        if coalesce_ms < 0:
            raise ConfigurationError("MIGRATRACK_COALESCE_MS must not be negative")
        return cls(
            storage_url=e.get("MIGRATRACK_STORAGE_URL") or e.get("REDIS_URL") or DEFAULT_STORAGE_URL,
            server_url=e.get("MIGRATRACK_URL") or None,
            token=e.get("MIGRATRACK_TOKEN") or None,
            actor=e.get("MIGRATRACK_ACTOR") or default_actor(),
            coalesce_ms=coalesce_ms,
            encryption_key=e.get("MIGRATRACK_ENCRYPTION_KEY") or None,
            retention=e.get("MIGRATRACK_RETENTION") or None,
            aws_region=e.get("AWS_REGION") or None,
            alert_email=e.get("MIGRATION_ALERT_EMAIL") or None,
            slack_webhook_url=e.get("SLACK_WEBHOOK_URL") or None,
        )
