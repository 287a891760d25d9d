"""The HTTP server: JSON API, the seed's routes, the live event stream, tokens and roles."""

from __future__ import annotations

from migratrack.web.app import create_app

__all__ = ["create_app"]
