"""Group commit of single progress updates on an embedded store (used by the progress routes)."""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from migratrack.core.states import Control
from migratrack.service import MigrationService
from migratrack.storage import MergeResult
from migratrack.storage.base import ProgressMerge

_Item = tuple[str, str, ProgressMerge, "asyncio.Future[tuple[MergeResult, Control]]"]


class GroupCommit:
    """Group commit for single progress updates on an embedded store: the updates that arrive
    while a write is under way are written together in the next transaction, and each request
    is answered once its transaction is committed. Alone, an update is written at once: no
    added latency. The writes run in a worker thread, one at a time, so the event loop (and
    ``/healthz``) never waits for the store. Updates the store cannot decide alone (FALLBACK)
    go through the rules, one by one, as before."""

    def __init__(self, svc: MigrationService) -> None:
        self.svc = svc
        self.pending: list[_Item] = []
        self.writing = False
        self.task: asyncio.Task[None] | None = None  # held, so the loop does not drop it

    def submit(self, mid: str, actor: str, merge: ProgressMerge) -> asyncio.Future[tuple[MergeResult, Control]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[MergeResult, Control]] = loop.create_future()
        self.pending.append((mid, actor, merge, future))
        if not self.writing:
            self.writing = True
            self.task = loop.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self.pending:
                items, self.pending = self.pending, []
                outcomes = await run_in_threadpool(self._write, items)
                for (*_, future), outcome in zip(items, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self.writing = False

    def _write(self, items: list[_Item]) -> list[tuple[MergeResult, Control] | BaseException]:
        """In a worker thread: one transaction per (migration, actor) group."""
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (mid, actor, _, _) in enumerate(items):
            groups.setdefault((mid, actor), []).append(i)
        out: list[tuple[MergeResult, Control] | BaseException] = [RuntimeError("not written")] * len(items)
        for (mid, actor), index in groups.items():
            try:
                results = self.svc.merge(mid, [items[i][2] for i in index], actor=actor)
                control = self.svc.control(mid) if any(r is not MergeResult.FALLBACK for r in results) else None
            except Exception as exc:
                for i in index:
                    out[i] = exc
                continue
            for i, result in zip(index, results, strict=True):
                out[i] = (result, control or Control.RUNNING)
        return out
