"""boto3 clients with migratrack's settings: region and endpoint configurable, the standard AWS
variables (``AWS_REGION``, ``AWS_DEFAULT_REGION``, ``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``...,
``AWS_ENDPOINT_URL``) honoured by boto3 itself."""

from __future__ import annotations

from typing import Any

from migratrack.aws.spec import DEFAULT_REGION
from migratrack.errors import ConfigurationError
from migratrack.settings import Settings


def region_of(settings: Settings | None = None, region: str | None = None) -> str:
    """The region: the argument, ``AWS_REGION``, boto3's configuration (``AWS_DEFAULT_REGION``, a
    profile), else us-east-1."""
    if region:
        return region
    s = settings or Settings.from_env()
    if s.aws_region:
        return s.aws_region
    boto3 = _boto3()
    return str(boto3.session.Session().region_name or DEFAULT_REGION)


def client(service: str, settings: Settings | None = None, *, region: str | None = None,
           endpoint_url: str | None = None, attempts: int | None = None) -> Any:
    """A boto3 client; ``attempts`` caps botocore's own retries (the publisher retries itself)."""
    s = settings or Settings.from_env()
    boto3 = _boto3()
    from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

    config = Config(retries={"max_attempts": attempts, "mode": "standard"}, connect_timeout=5,
                    read_timeout=30) if attempts else None
    return boto3.client(service, region_name=region_of(s, region), endpoint_url=endpoint_url or s.aws_endpoint_url,
                        config=config)


def _boto3() -> Any:
    try:
        import boto3  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ConfigurationError("the AWS features need boto3: pip install 'migratrack[aws]'") from None
    return boto3
