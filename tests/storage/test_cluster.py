"""The Redis store on a real three-node Redis Cluster (started here on loopback, stopped after)."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from migratrack.core.commands import StartPhase, StartSubTask
from migratrack.service import MigrationService
from migratrack.storage import open_storage
from migratrack.storage.base import TokenRecord

from . import workers
from .servers import RedisServer, start_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    servers = start_cluster(Path(tmp_path_factory.mktemp("cluster")))
    yield servers
    for s in servers:
        s.stop()


def node_keys(servers: list[RedisServer]) -> dict[int, list[str]]:
    out = {}
    for s in servers:
        client = redis.Redis(host="127.0.0.1", port=s.port, decode_responses=True)
        out[s.port] = list(client.scan_iter(match="mt:*", count=1000))
        client.close()
    return out


def test_one_slot_per_migration_and_migrations_spread(cluster: list[RedisServer]) -> None:
    url = f"redis+cluster://127.0.0.1:{cluster[0].port}"
    svc = MigrationService(url)
    ids = [f"mig-{i}" for i in range(12)] + ["brace{d}-id"]
    for mid in ids:
        svc.initialize(mid, [{"id": "a", "sub_tasks": ["x", "y"]}, {"id": "b", "dependencies": ["a"]}], actor="t")
        svc.execute(mid, StartPhase("a"), actor="t")
        svc.execute(mid, StartSubTask("a", "x"), actor="t")
        for _ in range(2):  # sent twice with their ids: applied once (the :o set shares the slot)
            svc.update_sub_task_progress(mid, "a", "x", 40.0, actor="t", op_id="sub")
            svc.update_phase_progress(mid, "a", 25.0, actor="t", op_id="phase")
            svc.update_metrics(mid, None, {"successful_operations": 2}, actor="t", op_id="counters")
            svc.create_alert(mid, "warning", f"alert for {mid}", actor="t", op_id="alert")
    svc.storage.save_token(TokenRecord("t1", "ci", "operator", "hash-1", svc.now()))
    assert svc.storage.claim_request("key-1", "fp-1", ts=svc.now()).fingerprint == "fp-1"
    assert svc.storage.claim_request("key-1", "fp-2", ts=svc.now()).fingerprint == "fp-1"

    assert svc.storage.list_ids() == ids
    for mid in ids:
        state = svc.state(mid)
        assert state.phases["a"].sub_tasks["x"].progress == 40.0 and state.phases["a"].progress == 25.0
        assert state.metrics.successful_operations == 2 and state.alert_counts == {"warning": 1}
        assert [e.seq for e in svc.events(mid)] == list(range(1, state.seq + 1))
    found = svc.storage.find_token("hash-1")
    assert found is not None and found.name == "ci"

    by_node = node_keys(cluster)
    admin = redis.Redis(host="127.0.0.1", port=cluster[0].port, decode_responses=True)
    owners: dict[str, set[int]] = {}
    for port, keys in by_node.items():
        for key in keys:
            if key.startswith("mt:{") and "tokens" not in key:
                tag = key[key.index("{") + 1:key.index("}")]
                slots = {admin.execute_command("CLUSTER KEYSLOT", key)}
                owners.setdefault(tag, set()).add(port)
                assert slots == {admin.execute_command("CLUSTER KEYSLOT", f"mt:{{{tag}}}:h")}
    admin.close()
    assert all(len(ports) == 1 for ports in owners.values())  # each migration lives on one node
    assert len({p for ports in owners.values() for p in ports}) >= 2  # and they spread over the nodes
    svc.storage.close()


def test_scripts_stay_atomic_under_concurrent_workers_on_the_cluster(cluster: list[RedisServer]) -> None:
    url = f"redis+cluster://127.0.0.1:{cluster[1].port}"
    workers.set_up(url, "cluster-many", 4)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.starmap(workers.mixed_worker, [(url, "cluster-many", w, 400) for w in range(4)])
    assert [r["errors"] for r in results] == [[]] * 4
    store = open_storage(url)
    state = store.load("cluster-many")
    assert state.metrics.successful_operations == sum(r["counters"]["successful_operations"] for r in results)
    assert state.phases["counted"].done == sum(r["adds"] for r in results)
    best: dict[str, float] = {}
    for r in results:
        for sid, v in r["best"].items():
            best[sid] = max(best.get(sid, 0.0), v)
    assert {s: t.progress for s, t in state.phases["bulk"].sub_tasks.items() if s in best} == best
    assert [e.seq for e in store.events("cluster-many", 0, 100_000)] == list(range(1, state.seq + 1))

    async def first_new_event() -> int:
        feed = store.subscribe("cluster-many", after=state.seq)
        waiter = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(store.increment_counters, "cluster-many", {"failed_operations": 1},
                                ts=state.created_at, actor="t")
        event = await asyncio.wait_for(waiter, 5)
        await feed.aclose()  # type: ignore[attr-defined]
        return event.seq

    assert asyncio.run(first_new_event()) == state.seq + 1
    store.close()
