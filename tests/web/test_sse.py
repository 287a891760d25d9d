"""The live event stream against a real uvicorn: live events, resume, heartbeat, auth."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from migratrack.core.commands import StartPhase
from migratrack.web import auth

from .live import LiveServer

Client = Callable[[str | None], httpx.Client]


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse server-sent events; comments (": ping") come through as {"comment": ...}."""
    event: dict[str, Any] = {}
    for line in lines:
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line == "":
            if event:
                yield event
                event = {}
        else:
            name, _, value = line.partition(":")
            event[name] = value[1:] if value.startswith(" ") else value


def read(server: LiveServer, token: str, path: str, n: int, *, headers: dict[str, str] | None = None,
         during: Callable[[], None] | None = None, comments: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    h = {"Authorization": f"Bearer {token}", **(headers or {})}
    with httpx.stream("GET", f"{server.url}{path}", headers=h, timeout=httpx.Timeout(10.0)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        if during is not None:
            threading.Thread(target=during, daemon=True).start()
        for e in sse_events(r.iter_lines()):
            if "comment" in e and not comments:
                continue
            out.append(e)
            if len(out) == n:
                break
    return out


def test_the_stream_sends_stored_then_live_events(server: LiveServer, tokens: dict[str, str],
                                                  admin: httpx.Client, migration: str) -> None:
    admin.post(f"/api/migrations/{migration}/phases/schema/start")

    def later() -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tokens['operator']}"}) as op:
            op.post(f"/api/migrations/{migration}/phases/schema/progress", json={"progress": 30})
            op.post(f"/api/migrations/{migration}/phases/schema/complete")

    events = read(server, tokens["viewer"], f"/api/migrations/{migration}/events", 4, during=later)
    assert [e["id"] for e in events] == ["1", "2", "3", "4"]
    assert [e["event"] for e in events] == ["migration.initialized", "phase.started", "phase.progress",
                                            "phase.completed"]
    data = json.loads(events[2]["data"])
    assert data["payload"]["progress"] == 30 and data["seq"] == 3
    assert data["actor"].startswith("token:operator-bot/")


def test_a_client_resumes_from_last_event_id(server: LiveServer, tokens: dict[str, str], admin: httpx.Client,
                                             migration: str) -> None:
    base = f"/api/migrations/{migration}"
    admin.post(f"{base}/phases/schema/start")
    admin.post(f"{base}/phases/schema/progress", json={"progress": 10})
    admin.post(f"{base}/phases/schema/progress", json={"progress": 20})
    events = read(server, tokens["viewer"], f"{base}/events", 2, headers={"Last-Event-ID": "2"})
    assert [e["id"] for e in events] == ["3", "4"]
    events = read(server, tokens["viewer"], f"{base}/events?after=3", 1)
    assert [e["id"] for e in events] == ["4"]


def test_a_heartbeat_keeps_a_quiet_stream_open(server: LiveServer, tokens: dict[str, str], migration: str) -> None:
    got = read(server, tokens["viewer"], f"/api/migrations/{migration}/events?after=1", 1, comments=True)
    assert got[0]["comment"].startswith("ping")


def test_the_stream_needs_a_token_and_a_migration(server: LiveServer, tokens: dict[str, str],
                                                  migration: str) -> None:
    url = f"{server.url}/api/migrations/{migration}/events"
    assert httpx.get(url).status_code == 401
    assert httpx.get(f"{server.url}/api/migrations/nope/events",
                     headers={"Authorization": f"Bearer {tokens['viewer']}"}).status_code == 404
    # a browser's EventSource cannot set headers: a token in the URL is refused (logs keep URLs)...
    r = httpx.get(f"{url}?token={tokens['viewer']}")
    assert r.status_code == 401 and "stream-ticket" in r.json()["detail"]
    # ... and a short-lived ticket for this migration opens the stream instead
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    issued = httpx.post(f"{server.url}/api/migrations/{migration}/stream-ticket", headers=viewer).json()
    assert issued["url"] == f"/api/migrations/{migration}/events?ticket={issued['ticket']}"
    assert tokens["viewer"] not in issued["ticket"]
    with httpx.stream("GET", server.url + issued["url"], timeout=10) as r:
        assert r.status_code == 200
        first = next(e for e in sse_events(r.iter_lines()) if "id" in e)
    assert first["id"] == "1"


def test_a_stream_ticket_opens_one_migration_for_a_while_and_dies_with_its_token(
        server: LiveServer, tokens: dict[str, str], migration: str, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    assert httpx.post(f"{server.url}/api/migrations", headers=admin,
                      json={"id": "other", "phases": [{"id": "a"}]}).status_code == 201
    made = httpx.post(f"{server.url}/api/tokens", headers=admin, json={"name": "browser", "role": "operator"}).json()
    own = {"Authorization": f"Bearer {made['token']}"}
    ticket = httpx.post(f"{server.url}/api/migrations/{migration}/stream-ticket", headers=own).json()["ticket"]

    def status(mid: str, t: str) -> int:
        with httpx.stream("GET", f"{server.url}/api/migrations/{mid}/events?ticket={t}", timeout=10) as r:
            return r.status_code

    assert status(migration, ticket) == 200
    assert status("other", ticket) == 401  # one migration only
    assert status(migration, ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB")) == 401  # forged
    # it only reads: a ticket is no token for any other route
    r = httpx.post(f"{server.url}/api/migrations/{migration}/phases/schema/start?ticket={ticket}")
    assert r.status_code == 401
    # expired
    monkeypatch.setattr(auth, "TICKET_SECONDS", -1)
    stale = httpx.post(f"{server.url}/api/migrations/{migration}/stream-ticket", headers=own).json()["ticket"]
    assert status(migration, stale) == 401
    # revoked with its token
    assert httpx.delete(f"{server.url}/api/tokens/{made['id']}", headers=admin).status_code == 200
    assert status(migration, ticket) == 401


def test_the_stream_is_documented_as_text_event_stream(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    content = spec["paths"]["/api/migrations/{mid}/events"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in content


async def test_a_slow_client_misses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that falls further behind than its queue holds catches up from the store."""
    from migratrack.service import MigrationService
    from migratrack.storage import open_storage
    from migratrack.web import sse

    monkeypatch.setattr(sse, "QUEUE_SIZE", 4)
    store = open_storage("memory://")
    svc = MigrationService(store)
    svc.initialize("m", [{"id": "p"}], actor="t")
    svc.execute("m", StartPhase("p"), actor="t")
    hub = sse.EventHub(svc, poll_interval=0.01)
    stream = hub.stream("m", 0)
    seen = [(await anext(stream)).seq]  # joined, then falls behind
    for i in range(1, 60):
        svc.update_phase_progress("m", "p", i, actor="t")
        hub.poke()
    await asyncio.sleep(0.1)  # the follower pushes far more than the queue holds
    last = store.load("m").seq
    while seen[-1] < last:
        seen.append((await anext(stream)).seq)
    assert seen == list(range(1, last + 1))
    await stream.aclose()
    assert hub.watched == 0
    await hub.close()
