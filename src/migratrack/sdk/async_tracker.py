"""AsyncMigrationProgressTracker: the same methods as the sync tracker, awaitable.

Each call runs the sync tracker's method in a worker thread, so a slow store never blocks the
event loop; progress reports are coalesced exactly as in the sync tracker.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from migratrack.core.commands import Command
from migratrack.core.eta import Estimate
from migratrack.core.models import Alert, Event, Phase
from migratrack.core.states import AlertLevel
from migratrack.core.summary import SubTaskPage, Summary
from migratrack.core.views import Dashboard, Overview, PhaseView
from migratrack.errors import MigrationCancelled
from migratrack.sdk import loops
from migratrack.sdk.tracker import MigrationProgressTracker

T = TypeVar("T")


class AsyncMigrationProgressTracker:
    """Awaitable twin of :class:`MigrationProgressTracker`; takes the same arguments."""

    def __init__(self, migration_id: str, **options: Any) -> None:
        self.sync = MigrationProgressTracker(migration_id, **options)
        self.migration_id = migration_id

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    async def initialize_migration(
        self, phases: Iterable[Phase | Mapping[str, Any]] | str | Path, **kwargs: Any
    ) -> bool:
        plan = phases if isinstance(phases, str | Path) else list(phases)
        return bool(await self._call(self.sync.initialize_migration, plan, **kwargs))

    async def start_phase(self, phase_id: str) -> None:
        await self._call(self.sync.start_phase, phase_id)

    async def update_phase_progress(self, phase_id: str, progress: float | None = None,
                                    metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        await self._call(self.sync.update_phase_progress, phase_id, progress, metadata, **kwargs)

    async def add_progress(self, phase_id: str, n: int = 1) -> None:
        await self._call(self.sync.add_progress, phase_id, n)

    async def complete_phase(self, phase_id: str) -> None:
        await self._call(self.sync.complete_phase, phase_id)

    async def fail_phase(self, phase_id: str, error: str | BaseException) -> None:
        await self._call(self.sync.fail_phase, phase_id, error)

    async def skip_phase(self, phase_id: str, reason: str) -> None:
        await self._call(self.sync.skip_phase, phase_id, reason)

    async def retry_phase(self, phase_id: str) -> None:
        await self._call(self.sync.retry_phase, phase_id)

    async def approve_phase(self, phase_id: str, *, by: str) -> None:
        await self._call(self.sync.approve_phase, phase_id, by=by)

    async def revise_estimate(self, phase_id: str, minutes: float) -> None:
        await self._call(self.sync.revise_estimate, phase_id, minutes)

    async def execute(self, command: Command) -> None:
        await self._call(self.sync.execute, command)

    async def start_sub_task(self, phase_id: str, sub_task_id: str) -> None:
        await self._call(self.sync.start_sub_task, phase_id, sub_task_id)

    async def update_sub_task_progress(self, phase_id: str, sub_task_id: str, progress: float) -> None:
        await self._call(self.sync.update_sub_task_progress, phase_id, sub_task_id, progress)

    async def complete_sub_task(self, phase_id: str, sub_task_id: str) -> None:
        await self._call(self.sync.complete_sub_task, phase_id, sub_task_id)

    async def fail_sub_task(self, phase_id: str, sub_task_id: str, error: str | BaseException) -> None:
        await self._call(self.sync.fail_sub_task, phase_id, sub_task_id, error)

    async def skip_sub_task(self, phase_id: str, sub_task_id: str, reason: str) -> None:
        await self._call(self.sync.skip_sub_task, phase_id, sub_task_id, reason)

    async def create_alert(self, level: str | AlertLevel, message: str, phase: str | None = None) -> Alert | None:
        result: Alert | None = await self._call(self.sync.create_alert, level, message, phase)
        return result

    async def acknowledge_alert(self, alert_id: str, *, by: str) -> Alert:
        result: Alert = await self._call(self.sync.acknowledge_alert, alert_id, by=by)
        return result

    async def update_metrics(self, metrics: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        await self._call(self.sync.update_metrics, metrics, **kwargs)

    async def record(self, **kwargs: int) -> None:
        await self._call(self.sync.record, **kwargs)

    async def pause(self, reason: str | None = None) -> None:
        await self._call(self.sync.pause, reason)

    async def resume(self) -> None:
        await self._call(self.sync.resume)

    async def cancel(self, reason: str | None = None) -> None:
        await self._call(self.sync.cancel, reason)

    async def throttle(self, reason: str | None = None) -> None:
        await self._call(self.sync.throttle, reason)

    async def unthrottle(self) -> None:
        await self._call(self.sync.unthrottle)

    @asynccontextmanager
    async def throttled(self, reason: str | None = None) -> AsyncIterator[None]:
        """``throttle(reason)`` for the block, ``unthrottle()`` when it ends (raising or not)."""
        await self.throttle(reason)
        try:
            yield
        finally:
            await self.unthrottle()

    async def checkpoint(self) -> None:
        await self._call(self.sync.checkpoint)

    async def get_overview(self) -> Overview:
        result: Overview = await self._call(self.sync.get_overview)
        return result

    async def get_dashboard(self, *, alerts: int = 20) -> Dashboard:
        result: Dashboard = await self._call(self.sync.get_dashboard, alerts=alerts)
        return result

    async def get_summary(self) -> Summary:
        result: Summary = await self._call(self.sync.get_summary)
        return result

    async def get_sub_tasks(self, phase_id: str, *, status: str | None = None, after: str | None = None,
                            limit: int = 100) -> SubTaskPage:
        result: SubTaskPage = await self._call(self.sync.get_sub_tasks, phase_id, status=status, after=after,
                                                limit=limit)
        return result

    async def get_phase(self, phase_id: str) -> PhaseView:
        result: PhaseView = await self._call(self.sync.get_phase, phase_id)
        return result

    async def estimate(self) -> Estimate:
        result: Estimate = await self._call(self.sync.estimate)
        return result

    async def estimate_completion(self) -> datetime | None:
        result: datetime | None = await self._call(self.sync.estimate_completion)
        return result

    async def events(self, after: int = 0, limit: int = 1000) -> list[Event]:
        result: list[Event] = await self._call(self.sync.events, after, limit)
        return result

    async def alerts(self, **kwargs: Any) -> list[Alert]:
        result: list[Alert] = await self._call(self.sync.alerts, **kwargs)
        return result

    async def flush(self) -> None:
        await self._call(self.sync.flush)

    @property
    def paused(self) -> bool:
        return self.sync.paused

    async def resume_phase(self, phase_id: str) -> bool:
        return bool(await self._call(self.sync.resume_phase, phase_id))

    @asynccontextmanager
    async def phase(self, phase_id: str) -> AsyncIterator[AsyncMigrationProgressTracker]:
        """Start the phase, complete it on exit, or fail it with the exception's text; on a
        re-run, a finished phase is left as it is (see the sync tracker)."""
        if await self.resume_phase(phase_id):
            yield self
            return
        try:
            yield self
        except MigrationCancelled:
            await self.flush()
            raise
        except BaseException as exc:
            error = exc
            # as in the sync tracker: a store failure here must not hide the script's own exception
            await self._call(loops.safe, lambda: self.sync.fail_phase(phase_id, error))
            raise
        await self.complete_phase(phase_id)

    async def track(
        self, iterable: Iterable[T], phase: str, total: int | None = None, *, start: bool = True,
        complete: bool = True,
    ) -> AsyncIterator[T]:
        """Async iteration over a (sync) iterable, reporting as in the sync tracker."""
        it: Iterator[T] = await self._call(self.sync.track, iterable, phase, total, start=start, complete=complete)
        done = object()
        while True:
            item = await asyncio.to_thread(next, it, done)
            if item is done:
                return
            yield cast(T, item)

    async def close(self) -> None:
        await self._call(self.sync.close)

    async def __aenter__(self) -> AsyncMigrationProgressTracker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
