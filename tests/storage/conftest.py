"""Stores to run the contract against: memory, SQLite, and real Redis and PostgreSQL servers.

Redis: ``MIGRATRACK_TEST_REDIS_URL`` (default DB 13 on 127.0.0.1:6379), every test under its own
key prefix, removed afterwards. PostgreSQL: ``MIGRATRACK_TEST_POSTGRES_URL`` (default user
postgres on 127.0.0.1:5432) names the server; the session creates its own database and drops it
at the end. A server that is down makes the tests fail, never skip: ``make test`` starts both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from migratrack.storage import Storage, open_storage

REDIS_URL = os.environ.get("MIGRATRACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
POSTGRES_URL = os.environ.get("MIGRATRACK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STORE_KINDS = ["memory", "sqlite", "redis", "postgresql"]
#: the stores several processes can share
SHARED_KINDS = ["sqlite", "redis", "postgresql"]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A database of our own on the test PostgreSQL server (created here, dropped at the end)."""
    name = f"migratrack_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(POSTGRES_URL, name)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'mt\\_%'")]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(tables) + " CASCADE")


@pytest.fixture
def postgres_url(pg_server_url: str) -> Iterator[str]:
    """An empty migratrack schema in the session's database."""
    _truncate(pg_server_url)
    yield pg_server_url
    _truncate(pg_server_url)


@pytest.fixture
def redis_prefix() -> str:
    return f"mtt{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_url(redis_prefix: str) -> Iterator[str]:
    """The test Redis, under a key prefix of this test's own; its keys are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    sep = "&" if "?" in REDIS_URL else "?"
    yield f"{REDIS_URL}{sep}prefix={redis_prefix}"
    keys = list(client.scan_iter(match=f"{redis_prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def url_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    if kind == "redis":
        return str(request.getfixturevalue("redis_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of each store in turn (an empty one)."""
    return url_for(request.param, request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Storage]:
    s = open_storage(store_url)
    yield s
    s.close()


@pytest.fixture(params=SHARED_KINDS)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of each store that several processes can share."""
    return url_for(request.param, request, tmp_path)
