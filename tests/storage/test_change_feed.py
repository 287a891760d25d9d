"""The live change feed across processes: one process writes, another sees it within a second."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

from migratrack.core.commands import StartPhase
from migratrack.service import MigrationService
from migratrack.storage import open_storage

from . import workers


def test_another_process_sees_a_write_within_a_second(shared_url: str) -> None:
    svc = MigrationService(shared_url)
    svc.initialize("feed", [{"id": "pct"}], actor="a")
    svc.execute("feed", StartPhase("pct"), actor="a")
    after = svc.storage.load("feed", sub_tasks=None).seq
    svc.storage.close()
    push = not shared_url.startswith("sqlite")
    # Redis and PostgreSQL wake on the write itself: a long poll interval must not delay them
    poll = 5.0 if push else 0.25
    store = open_storage(shared_url)

    async def scenario() -> tuple[float, str, int]:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            pending = pool.apply_async(workers.write_later, (shared_url, "feed", 1.5))
            feed = store.subscribe("feed", after=after, poll_interval=poll)
            event = await asyncio.wait_for(anext(feed), 20)
            seen_at = time.time()
            await feed.aclose()  # type: ignore[attr-defined]
            written_at = await asyncio.to_thread(pending.get, 20)
        return seen_at - written_at, event.actor, event.seq

    delay, actor, seq = asyncio.run(scenario())
    store.close()
    assert actor == "writer-process" and seq == after + 1
    assert delay < (0.5 if push else 1.0), delay
