"""Versioned layouts: an older Redis key layout or PostgreSQL schema is refused with the command
that upgrades it; a newer one is refused with a request to upgrade migratrack."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import redis
from typer.testing import CliRunner

from migratrack.cli.main import app
from migratrack.core.commands import StartPhase
from migratrack.errors import SchemaVersionError
from migratrack.service import MigrationService
from migratrack.storage import open_storage

from .conftest import REDIS_URL


def set_redis_version(prefix: str) -> Callable[[int], None]:
    def go(version: int) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        client.set(f"{prefix}:layout", str(version))
        client.close()
    return go


def set_pg_version(url: str) -> Callable[[int], None]:
    def go(version: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE mt_meta SET value = %s WHERE key = 'schema_version'", (str(version),))
    return go


@pytest.mark.parametrize("kind", ["redis", "postgresql"])
def test_layout_versions(kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "redis":
        url = str(request.getfixturevalue("redis_url"))
        set_version = set_redis_version(str(request.getfixturevalue("redis_prefix")))
    else:
        url = str(request.getfixturevalue("postgres_url"))
        set_version = set_pg_version(url)
    svc = MigrationService(url)
    svc.initialize("kept", [{"id": "only"}], actor="a")
    svc.storage.close()

    if kind == "postgresql":  # a version-1 schema had no operation ids and no Idempotency-Keys
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE mt_applied, mt_requests")
    set_version(1)
    with pytest.raises(SchemaVersionError, match=r"older .* run `migratrack upgrade-store --storage"):
        open_storage(url)
    result = CliRunner().invoke(app, ["upgrade-store", "--storage", url])
    assert result.exit_code == 0, result.output
    assert "1 -> 2" in result.output
    store = open_storage(url)
    assert store.list_ids() == ["kept"]
    svc = MigrationService(store)
    svc.execute("kept", StartPhase("only"), actor="a")
    for _ in range(2):  # the upgraded store records operation ids
        svc.update_metrics("kept", increments={"successful_operations": 1}, actor="a", op_id="op-1")
    assert store.load("kept").metrics.successful_operations == 1
    store.close()

    set_version(99)
    with pytest.raises(SchemaVersionError, match=r"newer than this migratrack understands .* upgrade migratrack"):
        open_storage(url)
    set_version(2)


def test_a_version_1_sqlite_file_upgrades_itself_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    svc = MigrationService(url)
    svc.initialize("kept", [{"id": "only"}], actor="a")
    svc.storage.close()
    with sqlite3.connect(tmp_path / "old.db") as conn:  # as version 1 wrote it
        for trigger in ("mt_phase_op", "mt_sub_task_op"):
            conn.execute(f"DROP TRIGGER {trigger}")
        for table in ("mt_phases", "mt_sub_tasks"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN last_op")
            conn.execute(f"ALTER TABLE {table} DROP COLUMN last_op_at")
        conn.execute("DROP TABLE mt_applied")
        conn.execute("DROP TABLE mt_requests")
        conn.execute("UPDATE mt_meta SET value = '1' WHERE key = 'schema_version'")
    svc = MigrationService(url)
    svc.execute("kept", StartPhase("only"), actor="a")
    for _ in range(2):
        svc.update_metrics("kept", increments={"successful_operations": 1}, actor="a", op_id="op-1")
        svc.update_phase_progress("kept", "only", add=5, actor="a", op_id="op-2")
    state = svc.state("kept")
    assert state.metrics.successful_operations == 1 and state.phases["only"].done == 5
    svc.storage.close()
    with sqlite3.connect(tmp_path / "old.db") as conn:
        assert conn.execute("SELECT value FROM mt_meta WHERE key = 'schema_version'").fetchone() == ("2",)
