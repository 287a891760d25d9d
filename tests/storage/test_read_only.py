"""A store opened read-only creates, upgrades and purges nothing (the CLI's readers use it)."""

from __future__ import annotations

import psycopg
import pytest
import redis

from migratrack.core.commands import StartPhase
from migratrack.errors import ConfigurationError, StorageError
from migratrack.service import MigrationService
from migratrack.storage import open_storage

from .conftest import REDIS_URL


def tables(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'mt\\_%'")]


def test_postgres_read_only_creates_no_schema(pg_server_url: str) -> None:
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE mt_read_only_empty")
    url = pg_server_url.rsplit("/", 1)[0] + "/mt_read_only_empty"
    try:
        with pytest.raises(ConfigurationError, match="no migratrack store in the PostgreSQL database"):
            open_storage(url, read_only=True)
        assert tables(url) == []
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE mt_read_only_empty WITH (FORCE)")


def test_postgres_read_only_reads_and_the_server_refuses_writes(postgres_url: str) -> None:
    writer = MigrationService(postgres_url)
    writer.initialize("m", [{"id": "copy"}], actor="t")
    writer.execute("m", StartPhase("copy"), actor="t")
    writer.storage.close()
    reader = MigrationService(open_storage(postgres_url, read_only=True))
    assert reader.state("m").phases["copy"].status.value == "in_progress"
    assert reader.estimate("m") is not None
    with pytest.raises(StorageError, match="opened read-only"):
        reader.update_phase_progress("m", "copy", 50, actor="t")
    reader.storage.close()
    assert MigrationService(postgres_url).state("m").phases["copy"].progress == 0


def test_redis_read_only_writes_no_layout_marker(redis_url: str, redis_prefix: str) -> None:
    store = open_storage(redis_url, read_only=True)
    assert store.list_ids() == []
    store.close()
    client = redis.Redis.from_url(REDIS_URL)
    assert list(client.scan_iter(match=f"{redis_prefix}:*")) == []
    client.close()
