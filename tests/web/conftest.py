"""A real server on 127.0.0.1 for every web test, with one token per role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from migratrack.storage import Storage, open_storage
from migratrack.web import create_app

from .live import LiveServer

PLAN = [
    {"id": "schema", "estimated_duration": 10},
    {"id": "copy", "dependencies": ["schema"], "estimated_duration": 60, "sub_tasks": ["orders", "users"]},
    {"id": "verify", "dependencies": ["copy"], "estimated_duration": 5},
    {"id": "cutover", "dependencies": ["verify"], "requires_approval": True},
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Storage]:
    s = open_storage(f"sqlite:///{tmp_path}/web.db")
    yield s
    s.close()


@pytest.fixture
def app(store: Storage) -> FastAPI:
    return create_app(store, sse_ping=0.5, poll_interval=0.05)


@pytest.fixture
def tokens(app: FastAPI) -> dict[str, str]:
    manager = app.state.tokens
    return {role: manager.create(f"{role}-bot", role)[0] for role in ("admin", "operator", "viewer")}


@pytest.fixture
def server(app: FastAPI) -> Iterator[LiveServer]:
    live = LiveServer(app).start()
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer, tokens: dict[str, str]) -> Iterator[Callable[[str | None], httpx.Client]]:
    """client("admin") / client("operator") / client("viewer") / client(None) for no token."""
    opened: list[httpx.Client] = []

    def make(role: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
        c = httpx.Client(base_url=server.url, headers=headers, timeout=10)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


@pytest.fixture
def admin(client: Callable[[str | None], httpx.Client]) -> httpx.Client:
    return client("admin")


@pytest.fixture
def migration(admin: httpx.Client) -> str:
    r = admin.post("/api/migrations", json={"id": "m1", "name": "Move orders", "phases": PLAN})
    assert r.status_code == 201, r.text
    return "m1"
