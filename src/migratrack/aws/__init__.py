"""The AWS side: provisioning (provision.py), Terraform (terraform.py), the Lambda package
(package.py) and the Lambda alert processor, whose handler is ``migratrack.aws.lambda_handler``."""

from __future__ import annotations

from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    """The Lambda entry point (``migratrack.aws.lambda_handler``): the alert routing is imported
    when the function runs, so importing this package costs nothing and needs no boto3."""
    from migratrack.aws.lambda_alerts import (  # type: ignore[import-not-found,unused-ignore]  # the alerts work
        lambda_handler as handle,
    )

    return handle(event, context)
