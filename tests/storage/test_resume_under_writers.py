"""The event stream's resume-from-id contract under concurrent writers of one migration.

A reader that polls ``events(mid, after=last_seen)`` while writers append must end up with
every event exactly once and in order: an event that commits late with a smaller id than one
already read would be skipped for good. Writers are threads (each with its own store, but
memory:// which lives in one process) mixing hot-path merges, counter increments and
transitions, on every store.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

from migratrack.core.commands import StartPhase, StartSubTask
from migratrack.service import MigrationService
from migratrack.storage import Storage, open_storage
from migratrack.storage.base import MergeResult

WRITERS = 6
WRITES = 80
MID = "resume"
_TALLY = threading.Lock()


def _writer(url: str | Storage, worker: int, applied: Counter[str]) -> None:
    store = url if isinstance(url, Storage) else open_storage(url)
    svc = MigrationService(store)
    mine: Counter[str] = Counter()
    try:
        for i in range(WRITES):
            kind = i % 4
            if kind == 0:
                result = store.merge_progress(MID, f"w{worker}", None, progress=None, done=None, add=1, ts=None,
                                              actor=f"w{worker}")
                mine["phase.progress"] += result is MergeResult.APPLIED
            elif kind == 1:
                result = store.merge_progress(MID, "bulk", f"w{worker}", progress=float(i + 1), done=None, add=None,
                                              ts=None, actor=f"w{worker}")
                mine["subtask.progress"] += result is MergeResult.APPLIED
            elif kind == 2:
                svc.update_metrics(MID, None, {"successful_operations": 1}, actor=f"w{worker}")
                mine["metrics.updated"] += 1
            else:  # the cold path, under the migration's lock, between the hot writes
                svc.update_phase_progress(MID, f"w{worker}", None, {"i": i}, actor=f"w{worker}")
                mine["cold"] += 1
            time.sleep(0.0005)  # let the reader in: an in-process store's writers would finish before it ran
    finally:
        if not isinstance(url, Storage):
            store.close()
    with _TALLY:
        applied.update(mine)


def _subscriber(url: str | Storage, first: int, seen: list[int], done: threading.Event) -> None:
    """Follows ``subscribe``, dropping it every few events and resuming from the last seq seen
    (what an SSE client's Last-Event-ID does), until the writers are done and it has caught up."""

    async def follow() -> None:
        last = first
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if done.is_set() and seen and seen[-1] == store.load(MID, sub_tasks=None).seq:
                return
            stream = store.subscribe(MID, last, poll_interval=0.02)
            try:
                for _ in range(5):
                    event = await asyncio.wait_for(anext(stream), timeout=0.5)
                    seen.append(event.seq)
                    last = event.seq
            except TimeoutError:
                pass
            finally:
                await stream.aclose()  # type: ignore[attr-defined]

    store = url if isinstance(url, Storage) else open_storage(url)
    try:
        asyncio.run(follow())
    finally:
        if not isinstance(url, Storage):
            store.close()


def test_a_reader_resuming_from_its_last_id_sees_every_event_once_in_order(store_url: str) -> None:
    shared = open_storage(store_url)
    url: str | Storage = shared if store_url.startswith("memory") else store_url
    svc = MigrationService(shared)
    svc.initialize(MID, [{"id": "bulk", "sub_tasks": [f"w{w}" for w in range(WRITERS)]},
                         *({"id": f"w{w}"} for w in range(WRITERS))], actor="setup")
    svc.execute(MID, StartPhase("bulk"), actor="setup")
    for w in range(WRITERS):
        svc.execute(MID, StartPhase(f"w{w}"), actor="setup")
        svc.execute(MID, StartSubTask("bulk", f"w{w}"), actor="setup")
    first = shared.load(MID, sub_tasks=None).seq

    applied: Counter[str] = Counter()
    threads = [threading.Thread(target=_writer, args=(url, w, applied)) for w in range(WRITERS)]
    followed: list[int] = []
    writers_done = threading.Event()
    follower = threading.Thread(target=_subscriber, args=(url, first, followed, writers_done))
    follower.start()
    for t in threads:
        t.start()
    seen: list[int] = []
    last = first
    read_while_writing = 0
    while any(t.is_alive() for t in threads):
        for event in shared.events(MID, after=last, limit=7):  # small pages: many resumes
            seen.append(event.seq)
            last = event.seq
            read_while_writing += 1
    for t in threads:
        t.join()
    writers_done.set()
    follower.join()
    while batch := shared.events(MID, after=last, limit=7):
        seen.extend(e.seq for e in batch)
        last = batch[-1].seq

    stored = shared.events(MID, after=first, limit=100_000)
    assert read_while_writing > 5, "the reader should have raced the writers, not read after them"
    assert seen == [e.seq for e in stored], "the resuming reader skipped or repeated events"
    assert seen == sorted(set(seen))
    assert followed == seen, "a subscriber resuming from its last seq skipped or repeated events"
    types = Counter(e.type for e in stored)
    # every hot write changed the state (add=1, rising progress), so each appended one event
    assert applied["phase.progress"] == WRITERS * WRITES // 4
    assert types["phase.progress"] >= applied["phase.progress"]  # the cold path's own come on top
    assert types["subtask.progress"] == applied["subtask.progress"] == WRITERS * WRITES // 4
    assert types["metrics.updated"] == applied["metrics.updated"] == WRITERS * WRITES // 4
    assert shared.load(MID, sub_tasks=None).seq == seen[-1]
    shared.close()
