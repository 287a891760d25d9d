"""Versioned layouts: an older Redis key layout or PostgreSQL schema is refused with the command
that upgrades it; a newer one is refused with a request to upgrade migratrack."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
import redis
from typer.testing import CliRunner

from migratrack.cli.main import app
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

    set_version(0)
    with pytest.raises(SchemaVersionError, match=r"older .* run `migratrack upgrade-store --storage"):
        open_storage(url)
    result = CliRunner().invoke(app, ["upgrade-store", "--storage", url])
    assert result.exit_code == 0, result.output
    assert "0 -> 1" in result.output
    store = open_storage(url)
    assert store.list_ids() == ["kept"]
    store.close()

    set_version(99)
    with pytest.raises(SchemaVersionError, match=r"newer than this migratrack understands .* upgrade migratrack"):
        open_storage(url)
    set_version(1)
