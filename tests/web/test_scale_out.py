"""Two `migratrack serve` processes on one Redis or PostgreSQL serve the same migration: an
update posted to one reaches an event-stream client of the other within a second."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis

from migratrack.core.commands import StartPhase
from migratrack.service import MigrationService
from migratrack.storage import open_storage
from migratrack.web.auth import TokenManager

from .live import serve_process
from .test_sse import sse_events

REDIS_URL = os.environ.get("MIGRATRACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
POSTGRES_URL = os.environ.get("MIGRATRACK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(params=["redis", "postgresql"])
def shared_url(request: pytest.FixtureRequest) -> Iterator[str]:
    tag = f"mtweb_{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        yield f"{REDIS_URL}?prefix={tag}"
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(f"{tag}:*"))
        if keys:
            r.delete(*keys)
        r.close()
    else:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{tag}"')
        parts = urlsplit(POSTGRES_URL)
        yield urlunsplit((parts.scheme, parts.netloc, "/" + tag, parts.query, ""))
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{tag}" WITH (FORCE)')


def test_an_update_posted_to_one_server_reaches_a_stream_client_of_the_other(shared_url: str) -> None:
    store = open_storage(shared_url)
    token, _ = TokenManager(store).create("ops", "operator")
    svc = MigrationService(store)
    svc.initialize("fleet", [{"id": "reencode"}], actor="test")
    svc.execute("fleet", StartPhase("reencode"), actor="test")
    after = store.load("fleet").seq
    store.close()
    auth = {"Authorization": f"Bearer {token}"}

    with serve_process("--storage", shared_url) as (a, _), serve_process("--storage", shared_url) as (b, _):
        posted: dict[str, float] = {}

        def post_to_a() -> None:
            time.sleep(0.3)  # let the stream on B settle first
            posted["at"] = time.monotonic()
            r = httpx.post(f"{a}/api/migrations/fleet/phases/reencode/progress", json={"progress": 42}, headers=auth)
            assert r.status_code == 200

        with httpx.stream("GET", f"{b}/api/migrations/fleet/events?after={after}", headers=auth,
                          timeout=httpx.Timeout(10.0)) as stream:
            assert stream.status_code == 200
            threading.Thread(target=post_to_a, daemon=True).start()
            event = next(e for e in sse_events(stream.iter_lines()) if "id" in e)
            received = time.monotonic()
        data = json.loads(event["data"])
        assert data["type"] == "phase.progress" and data["payload"]["progress"] == 42
        assert received - posted["at"] < 1.0
        # and B's reads see A's write
        assert httpx.get(f"{b}/api/migrations/fleet", headers=auth).json()["overall_progress"] == 42
