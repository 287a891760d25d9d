"""The moto server fixtures."""

from ..aws.moto import aws, moto_endpoint

__all__ = ["aws", "moto_endpoint"]
