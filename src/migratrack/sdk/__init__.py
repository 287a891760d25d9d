from migratrack.sdk.async_tracker import AsyncMigrationProgressTracker
from migratrack.sdk.plan import Plan, load_plan
from migratrack.sdk.tracker import MigrationProgressTracker

__all__ = ["AsyncMigrationProgressTracker", "MigrationProgressTracker", "Plan", "load_plan"]
