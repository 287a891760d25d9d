"""What a tracker talks to: a MigrationService in-process, or a server over HTTP; and which one
a tracker's arguments name (``open_backend``, ``close_backend``).

``MigrationService`` satisfies this protocol directly; the remote SDK implements it with HTTP
calls. Every method takes the migration id first and the actor as a keyword. The writes a
tracker may have to send again take an ``op_id``, made once per write and kept over its retries:
the store (or, over HTTP, the server's Idempotency-Key handling) applies each id once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from migratrack.core.commands import Command
from migratrack.core.eta import Estimate
from migratrack.core.models import Alert, Event, MigrationState, Phase
from migratrack.core.states import AlertLevel, Control
from migratrack.core.summary import SubTaskPage, Summary
from migratrack.core.views import Dashboard, Overview
from migratrack.errors import ConfigurationError, StorageError
from migratrack.service import Clock, MigrationService, ProgressUpdate
from migratrack.settings import Settings
from migratrack.storage import Storage

log = logging.getLogger("migratrack")

#: errors of a backend that must not crash a migration from a progress/metrics/alert call
TRANSIENT: tuple[type[BaseException], ...] = (StorageError, OSError, TimeoutError)


class Backend(Protocol):
    def initialize(
        self, migration_id: str, phases: Iterable[Phase | Mapping[str, Any]], *, name: str | None = None,
        replace: bool = False, actor: str, metadata: Mapping[str, Any] | None = None,
    ) -> tuple[MigrationState, bool]: ...

    def execute(self, mid: str, command: Command, *, actor: str, op_id: str | None = None) -> object:
        """Run one command of ``core/commands.py`` (start, complete, fail, pause, revise an estimate…)."""
        ...

    def create_alert(
        self, mid: str, level: str | AlertLevel, message: str, phase: str | None = None, *, actor: str,
        op_id: str | None = None,
    ) -> Alert: ...

    def acknowledge_alert(self, mid: str, alert_id: str, by: str, *, actor: str) -> Alert: ...

    def heartbeat(self, mid: str, *, actor: str) -> None:
        """A worker's sign of life, for stall detection."""

    def update_metrics(
        self, mid: str, values: Mapping[str, Any] | None = None,
        increments: Mapping[str, Any] | None = None, *, actor: str, op_id: str | None = None,
    ) -> None: ...

    def apply_updates(
        self, mid: str, updates: Iterable[ProgressUpdate], increments: Mapping[str, int] | None = None,
        *, actor: str, op_id: str | None = None,
    ) -> Control | None:
        """Write coalesced updates; return the control state if the reply carried it, else None."""
        ...

    def list_ids(self) -> list[str]: ...
    def overview(self, mid: str) -> Overview: ...
    def dashboard(self, mid: str, *, alerts: int = 20) -> Dashboard: ...
    def summary(self, mid: str) -> Summary: ...
    def sub_tasks(self, mid: str, phase_id: str, *, status: str | None = None, after: str | None = None,
                  limit: int = 100) -> SubTaskPage: ...
    def estimate(self, mid: str) -> Estimate: ...
    def control(self, mid: str) -> Control: ...
    def events(self, mid: str, after: int = 0, limit: int = 1000) -> list[Event]: ...
    def alerts(self, mid: str, *, limit: int = 50, unacknowledged_only: bool = False) -> list[Alert]: ...


def open_backend(
    settings: Settings, *, storage: str | Storage | None, url: str | None, token: str | None, clock: Clock | None,
    strict: bool,
) -> tuple[Backend, Storage | None]:
    """The backend a tracker's arguments name: a server (``url``, or the settings' when no store
    was given), else a store; with the store it opened from a URL, which its owner closes."""
    if url is not None or (storage is None and settings.server_url):
        try:
            from migratrack.sdk.remote import RemoteBackend  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise ConfigurationError(
                "reporting to a server needs the HTTP client: pip install 'migratrack[client]'"
            ) from exc
        return RemoteBackend(url or settings.server_url, token=token or settings.token, strict=strict,
                             deadline=settings.retry_deadline), None
    service = MigrationService(storage if storage is not None else settings.storage_url, clock,
                               limits=settings.limits())
    # a Storage given by the caller stays the caller's to close
    return service, None if isinstance(storage, Storage) else service.storage


def spool_target(backend: Backend) -> str:
    """What a spool file is kept for: the server's URL, or the store's location. A store that
    lives only in this process (memory) is named with the object's identity, so its spool is
    never replayed into another store."""
    url = getattr(backend, "url", None)
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return url
    storage = getattr(backend, "storage", None)
    path = getattr(storage, "path", None)
    if isinstance(path, str) and path not in ("", ":memory:"):  # SQLite: the file, wherever it was named from
        return "sqlite:" + os.path.abspath(path)
    location = getattr(storage, "url", None)
    if isinstance(location, str) and not getattr(storage, "embedded", True):  # Redis, PostgreSQL
        return location
    return f"{type(storage or backend).__name__}@{os.getpid()}:{id(storage or backend):x}"


def close_backend(backend: Backend, owned_storage: Storage | None, wait: bool = True) -> None:
    """Close the store open_backend opened, and a remote backend's connections (after sending
    what it buffers); a failure to close the backend is logged. Without ``wait`` (a tracker
    collected without close()), a remote backend is left open: it sends its buffer in the
    background and at exit, and releases its connections when it is collected."""
    if owned_storage is not None:
        owned_storage.close()
    closer = getattr(backend, "close", None)
    if wait and callable(closer):
        try:
            closer()
        except Exception:
            log.warning("migratrack: closing the backend failed", exc_info=True)
