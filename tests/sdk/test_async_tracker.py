"""The awaitable twin of the tracker."""

from __future__ import annotations

import asyncio

import pytest

from migratrack import AsyncMigrationProgressTracker, InvalidTransition, MigrationCancelled
from migratrack.service import MigrationService

from .conftest import MID, PLAN


async def test_the_seed_flow_awaited(store_url: str) -> None:
    async with AsyncMigrationProgressTracker(MID, storage=store_url, actor="async") as t:
        assert await t.initialize_migration(PLAN) is True
        assert await t.initialize_migration(PLAN) is False
        await t.start_phase("infrastructure-setup")
        await t.update_phase_progress("infrastructure-setup", 50, {"currentTask": "Creating VPC"})
        await t.start_sub_task("infrastructure-setup", "vpc-creation")
        await t.update_sub_task_progress("infrastructure-setup", "vpc-creation", 75)
        await t.complete_sub_task("infrastructure-setup", "vpc-creation")
        await t.start_sub_task("infrastructure-setup", "security-groups")
        await t.fail_sub_task("infrastructure-setup", "security-groups", "limit reached")
        await t.skip_sub_task("infrastructure-setup", "security-groups", "not needed")
        alert = await t.create_alert("warning", "High resource usage detected", "infrastructure-setup")
        assert alert is not None
        await t.acknowledge_alert(alert.id, by="bob")
        await t.update_metrics({"migrationSpeed": 10}, resource_utilization={"cpu": 20})
        await t.update_metrics(increment={"successful_operations": 4})
        await t.record(succeeded=1, failed=1)
        await t.complete_phase("infrastructure-setup")
        await t.start_phase("database-migration")
        await t.update_phase_progress("database-migration", done=5, total=10)
        await t.add_progress("database-migration", 5)
        await t.fail_phase("database-migration", RuntimeError("replica lag"))
        await t.retry_phase("database-migration")
        await t.complete_phase("database-migration")
        await t.skip_phase("file-migration", "no files")
        await t.approve_phase("cutover", by="alice")
        async with t.phase("cutover"):
            await t.checkpoint()
        overview = await t.get_overview()
        dashboard = await t.get_dashboard(alerts=50)
        events = await t.events(after=1)
        assert overview.status.value == "completed"
        assert await t.estimate_completion() == overview.finished_at
        assert (await t.estimate()).remaining_seconds == 0
        assert dashboard.metrics.successful_operations == 5 and dashboard.metrics.failed_operations == 1
        assert dashboard.metrics.resource_utilization == {"cpu": 20}
        db = next(p for p in dashboard.phases if p.id == "database-migration")
        assert (db.done, db.total, db.attempts) == (10, 10, 2)
        assert events[0].seq == 2 and events[-1].type == "alert.created"
        assert [a.acknowledged_by for a in await t.alerts() if a.id == alert.id] == ["bob"]
        assert t.paused is False


async def test_async_phase_context_fails_with_the_exception(store_url: str) -> None:
    async with AsyncMigrationProgressTracker(MID, storage=store_url, actor="async") as t:
        await t.initialize_migration([{"id": "a"}])
        with pytest.raises(KeyError):
            async with t.phase("a"):
                raise KeyError("users")
        state = MigrationService(t.sync.backend.storage).state(MID)  # type: ignore[attr-defined]
        assert state.phases["a"].status.value == "failed"
        assert "users" in state.phases["a"].errors[0]
        with pytest.raises(InvalidTransition):
            await t.start_phase("a")  # failed: only retry_phase restarts it


async def test_async_track_and_pause(store_url: str) -> None:
    async with AsyncMigrationProgressTracker(MID, storage=store_url, actor="w", poll_interval=0.01) as t:
        await t.initialize_migration([{"id": "rows"}])
        seen = [row async for row in t.track(range(250), phase="rows")]
        assert seen == list(range(250))
        d = await t.get_dashboard()
        assert (d.phases[0].status.value, d.phases[0].done) == ("completed", 250)

        await t.initialize_migration([{"id": "rows"}], replace=True)
        await t.start_phase("rows")
        await t.pause()
        waiter = asyncio.create_task(t.checkpoint())
        await asyncio.sleep(0.1)
        assert not waiter.done()  # the event loop itself is not blocked: we are running
        await t.resume()  # runs in a worker thread while checkpoint() waits in another
        await asyncio.wait_for(waiter, 10)
        await t.cancel()
        with pytest.raises(MigrationCancelled):
            await t.checkpoint()



async def test_async_throttled_block_is_recorded_even_when_it_raises(store_url: str) -> None:
    async with AsyncMigrationProgressTracker(MID, storage=store_url, actor="async") as t:
        await t.initialize_migration([{"id": "a"}])
        await t.start_phase("a")
        with pytest.raises(TimeoutError):
            async with t.throttled("API quota"):
                raise TimeoutError("slow")
        kinds = [(e.type, e.payload) for e in await t.events() if "throttled" in e.type]
        assert kinds == [("migration.throttled", {"reason": "API quota"}), ("migration.unthrottled", {})]
