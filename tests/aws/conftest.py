"""The moto server fixtures."""

from .moto import aws, moto_endpoint

__all__ = ["aws", "moto_endpoint"]
