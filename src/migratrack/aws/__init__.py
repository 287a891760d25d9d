"""AWS integration. ``lambda_handler`` is the SNS-triggered alert processor (lambda_alerts.py),
imported lazily so this package costs nothing to import."""

from __future__ import annotations

from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from migratrack.aws.lambda_alerts import lambda_handler as handler

    return handler(event, context)
