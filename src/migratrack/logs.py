"""Structured logs from the ``migratrack.*`` loggers: level and format from the settings, and the
migration, phase and request id on every record.

- ``MIGRATRACK_LOG_LEVEL=debug`` (or info, warning, error) sets the ``migratrack`` loggers' level:
  the seed's ``DEBUG=migration:*`` habit is ``MIGRATRACK_LOG_LEVEL=debug``.
- ``MIGRATRACK_LOG_JSON=1`` writes one JSON object per line: ``ts``, ``level``, ``logger``,
  ``message``, and ``migration``, ``phase``, ``request_id`` when known (plus ``exc`` for a traceback).
- The context comes from :func:`log_context` (``with log_context(migration="m1", phase="copy"):``),
  from ``logger.info(..., extra={"migration": ...})``, and on the server from each request (its
  ``X-Request-ID``, or a new one, and the migration and phase in its path).

``migratrack serve`` configures this itself; a script calls :func:`configure_logging` once.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from migratrack.errors import ConfigurationError
from migratrack.settings import Settings

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
CONTEXT_FIELDS = ("migration", "phase", "request_id")

#: the fields of the current task's context (one variable: a request sets it with one call)
_context: ContextVar[dict[str, str | None]] = ContextVar("migratrack_log_context", default={})  # noqa: B039


def _check(values: dict[str, str | None]) -> None:
    for key in values:
        if key not in CONTEXT_FIELDS:
            raise ValueError(f"unknown log context field {key!r}; use {', '.join(CONTEXT_FIELDS)}")


@contextmanager
def log_context(**values: str | None) -> Iterator[None]:
    """Records logged inside carry these fields (``migration``, ``phase``, ``request_id``)."""
    _check(values)
    token = _context.set({**_context.get(), **values})
    try:
        yield
    finally:
        _context.reset(token)


def set_context(**values: str | None) -> None:
    """Replace the fields for the rest of the current task (a request's task on the server)."""
    _check(values)
    _context.set(values)


def request_context(request_id: str, migration: str | None, phase: str | None) -> None:
    """:func:`set_context` for the server's hot path: one variable set, no checks."""
    _context.set({"request_id": request_id, "migration": migration, "phase": phase})


class ContextFilter(logging.Filter):
    """Puts the context's fields on each record (a field given with ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for key in CONTEXT_FIELDS:
            if getattr(record, key, None) is None:
                setattr(record, key, context.get(key))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if getattr(record, k, None))
        text = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if context:
            text += f" [{context}]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


_HANDLER_NAME = "migratrack-structured"


def configure_logging(settings: Settings | None = None, *, stream: TextIO | None = None) -> logging.Handler:
    """Send the ``migratrack`` loggers to ``stream`` (stderr) at the configured level, as text or
    JSON. Calling it again replaces the handler it added before."""
    s = settings or Settings.from_env()
    level = LEVELS.get(s.log_level.strip().lower())
    if level is None:
        raise ConfigurationError(f"MIGRATRACK_LOG_LEVEL must be one of {', '.join(LEVELS)}, got {s.log_level!r}")
    root = logging.getLogger("migratrack")
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if s.log_json else TextFormatter())
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False  # one line per record, not a second one through the root logger
    return handler


def configure_if_asked(settings: Settings) -> None:
    """:func:`configure_logging` when ``MIGRATRACK_LOG_LEVEL`` or ``MIGRATRACK_LOG_JSON`` is set and
    the ``migratrack`` loggers have no handler yet: a script run with ``MIGRATRACK_LOG_LEVEL=debug``
    gets its debug lines without code; one that set up logging itself keeps its own."""
    if not {"log_level", "log_json"} & settings.model_fields_set:
        return
    if logging.getLogger("migratrack").handlers:
        return
    configure_logging(settings)
