"""Shared fixtures: a controllable clock and stores to run against."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from migratrack.service import MigrationService
from migratrack.storage import Storage, open_storage


class FakeClock:
    """An injectable clock: starts at a fixed instant and moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, **kwargs: float) -> datetime:
        self.now += timedelta(seconds=seconds, **kwargs)
        return self.now


@pytest.fixture(autouse=True)
def spool_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's trackers spool into a folder of their own, never into the user's cache."""
    path = tmp_path_factory.mktemp("spool")
    monkeypatch.setenv("MIGRATRACK_SPOOL_DIR", str(path))
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite"])
def local_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Each embedded store in turn."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/m.db"
    store = open_storage(url)
    yield store
    store.close()


@pytest.fixture
def service(local_storage: Storage, clock: FakeClock) -> MigrationService:
    return MigrationService(local_storage, clock)
