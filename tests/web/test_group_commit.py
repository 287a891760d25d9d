"""Concurrent single updates on an embedded store are committed together, and none is lost."""

from __future__ import annotations

import asyncio

import httpx

from migratrack.storage import Storage

from .live import LiveServer


def test_concurrent_single_updates_all_land_with_a_gap_free_log(
    server: LiveServer, tokens: dict[str, str], admin: httpx.Client, migration: str, store: Storage
) -> None:
    assert admin.post(f"/api/migrations/{migration}/phases/schema/start").status_code == 200
    assert admin.post(f"/api/migrations/{migration}/phases/schema/progress", json={"total": 10_000}).status_code == 200
    clients, per_client = 32, 25
    headers = {"Authorization": f"Bearer {tokens['operator']}"}

    async def worker(client: httpx.AsyncClient) -> list[int]:
        codes = []
        for _ in range(per_client):
            r = await client.post(f"/api/migrations/{migration}/phases/schema/progress", json={"add": 1})
            codes.append(r.status_code)
        return codes

    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
            results = await asyncio.gather(*(worker(client) for _ in range(clients)))
        return [c for codes in results for c in codes]

    codes = asyncio.run(main())
    assert codes == [200] * (clients * per_client)
    phase = store.load(migration).phases["schema"]
    assert phase.done == clients * per_client  # every acknowledged increment is in the store
    events = store.events(migration, 0, 10_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sum(1 for e in events if e.type == "phase.progress") == clients * per_client + 1


def test_a_refused_update_in_a_group_gets_its_own_error(
    server: LiveServer, tokens: dict[str, str], admin: httpx.Client, migration: str, store: Storage
) -> None:
    admin.post(f"/api/migrations/{migration}/phases/schema/start")
    headers = {"Authorization": f"Bearer {tokens['operator']}"}

    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
            ok = [client.post(f"/api/migrations/{migration}/phases/schema/progress", json={"progress": p})
                  for p in (10, 20, 30)]
            refused = client.post(f"/api/migrations/{migration}/phases/verify/progress", json={"progress": 5})
            responses = await asyncio.gather(*ok, refused)
        return [r.status_code for r in responses]

    assert asyncio.run(main()) == [200, 200, 200, 409]  # verify is pending: the rule's 409
    assert store.load(migration).phases["schema"].progress == 30


def test_a_writer_that_dies_answers_its_requests_and_is_replaced(
    server: LiveServer, tokens: dict[str, str], admin: httpx.Client, migration: str, app: object,
    monkeypatch: object,
) -> None:
    """Whatever the group commit's writer thread meets, no request waits for ever: the requests of
    that transaction get an error, and the next request is written by a new writer."""
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    assert admin.post(f"/api/migrations/{migration}/phases/schema/start").status_code == 200
    svc = app.state.service  # type: ignore[attr-defined]
    real = svc.merge
    calls = {"n": 0}

    def merge(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise SystemExit("the writer thread meets something that is not an Exception")
        return real(*args, **kwargs)

    monkeypatch.setattr(svc, "merge", merge)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tokens['operator']}"},
                      timeout=10) as c:
        first = c.post(f"/api/migrations/{migration}/phases/schema/progress", json={"add": 1})
        assert first.status_code == 503 and first.json()["error"] == "StorageError"  # an answer, not a hang
        second = c.post(f"/api/migrations/{migration}/phases/schema/progress", json={"add": 1})
        assert second.status_code == 200
    assert svc.state(migration).phases["schema"].done == 1
