"""The AWS side: provisioning (provision.py), Terraform (terraform.py), the Lambda package
(package.py) and the Lambda alert processor, whose handler is ``migratrack.aws.lambda_handler``."""

from __future__ import annotations

from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (``migratrack.aws.lambda_handler``): the alert routing is imported
    when the function runs, so importing this package costs nothing and needs no boto3."""
    from migratrack.aws.lambda_alerts import lambda_handler as handler

    return handler(event, context)
