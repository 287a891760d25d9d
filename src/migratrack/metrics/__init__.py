"""Metrics out of migratrack: Prometheus exposition, the CloudWatch publisher, resource sampling and cost."""
