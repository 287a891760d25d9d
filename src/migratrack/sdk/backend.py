"""What a tracker talks to: a MigrationService in-process, or a server over HTTP.

``MigrationService`` satisfies this protocol directly; the remote SDK implements it with HTTP
calls. Every method takes the migration id first and the actor as a keyword.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from migratrack.core.commands import Command
from migratrack.core.eta import Estimate
from migratrack.core.models import Alert, Event, MigrationState, Phase
from migratrack.core.states import AlertLevel, Control
from migratrack.core.views import Dashboard, Overview
from migratrack.service import ProgressUpdate


class Backend(Protocol):
    def initialize(
        self, migration_id: str, phases: Iterable[Phase | Mapping[str, Any]], *, name: str | None = None,
        replace: bool = False, actor: str, metadata: Mapping[str, Any] | None = None,
    ) -> tuple[MigrationState, bool]: ...

    def execute(self, mid: str, command: Command, *, actor: str) -> object:
        """Run one command of ``core/commands.py`` (start, complete, fail, pause, revise an estimate…)."""
        ...

    def create_alert(
        self, mid: str, level: str | AlertLevel, message: str, phase: str | None = None, *, actor: str
    ) -> Alert: ...

    def acknowledge_alert(self, mid: str, alert_id: str, by: str, *, actor: str) -> Alert: ...

    def update_metrics(
        self, mid: str, values: Mapping[str, Any] | None = None,
        increments: Mapping[str, Any] | None = None, *, actor: str,
    ) -> None: ...

    def apply_updates(
        self, mid: str, updates: Iterable[ProgressUpdate], increments: Mapping[str, int] | None = None,
        *, actor: str,
    ) -> Control | None:
        """Write coalesced updates; return the control state if the reply carried it, else None."""
        ...

    def overview(self, mid: str) -> Overview: ...
    def dashboard(self, mid: str, *, alerts: int = 20) -> Dashboard: ...
    def estimate(self, mid: str) -> Estimate: ...
    def control(self, mid: str) -> Control: ...
    def events(self, mid: str, after: int = 0, limit: int = 1000) -> list[Event]: ...
    def alerts(self, mid: str, *, limit: int = 50, unacknowledged_only: bool = False) -> list[Alert]: ...
