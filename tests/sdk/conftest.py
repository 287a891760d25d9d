"""Fixtures for the SDK tests: trackers on each embedded store, sharing one store per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from migratrack import MigrationProgressTracker
from migratrack.service import MigrationService
from migratrack.storage import Storage, open_storage

MID = "aws-conversion-2024"

PLAN: list[dict[str, Any]] = [
    {"id": "infrastructure-setup", "name": "Infrastructure Setup", "estimatedDuration": 30,
     "subTasks": ["vpc-creation", "security-groups"]},
    {"id": "database-migration", "dependencies": ["infrastructure-setup"], "estimatedDuration": 120},
    {"id": "file-migration", "dependencies": ["infrastructure-setup"], "estimatedDuration": 60},
    {"id": "cutover", "dependencies": ["database-migration", "file-migration"], "estimatedDuration": 10,
     "requiresApproval": True},
]

TrackerFactory = Callable[..., MigrationProgressTracker]


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/sdk.db"


@pytest.fixture
def store(store_url: str) -> Iterator[Storage]:
    s = open_storage(store_url)
    yield s
    s.close()


@pytest.fixture
def make_tracker(store: Storage, store_url: str) -> Iterator[TrackerFactory]:
    """Trackers on the test's store. ``own_connection=True`` gives a tracker its own store object
    (its own SQLite connection), as a worker in another process would have."""
    made: list[MigrationProgressTracker] = []
    opened: list[Storage] = []

    def factory(mid: str = MID, *, own_connection: bool = False, **kwargs: Any) -> MigrationProgressTracker:
        storage: Storage = store
        if own_connection and store_url.startswith("sqlite"):
            storage = open_storage(store_url)
            opened.append(storage)
        kwargs.setdefault("actor", "worker")
        t = MigrationProgressTracker(mid, storage=storage, **kwargs)
        made.append(t)
        return t

    yield factory
    for t in made:
        t.close()
    for s in opened:
        s.close()


@pytest.fixture
def tracker(make_tracker: TrackerFactory) -> MigrationProgressTracker:
    t = make_tracker()
    t.initialize_migration(PLAN)
    return t


@pytest.fixture
def viewer(store: Storage) -> MigrationService:
    """Reads the store directly, bypassing any tracker's pending writes."""
    return MigrationService(store)
