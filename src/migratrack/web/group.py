"""Group commit of single progress updates on an embedded store (used by the progress routes)."""

from __future__ import annotations

import asyncio

from migratrack.core.states import Control
from migratrack.service import MigrationService
from migratrack.storage import MergeResult
from migratrack.storage.base import ProgressMerge


class GroupCommit:
    """Group commit for single progress updates on an embedded store: the updates that arrive
    together (in one turn of the event loop) are written in one transaction, and each request
    is answered once that transaction is committed. Alone, an update is written at once: no
    added latency. Updates the store cannot decide alone (FALLBACK) go through the rules, one by
    one, as before."""

    def __init__(self, svc: MigrationService) -> None:
        self.svc = svc
        self.pending: list[tuple[str, str, ProgressMerge, asyncio.Future[tuple[MergeResult, Control]]]] = []
        self.scheduled = False

    def submit(self, mid: str, actor: str, merge: ProgressMerge) -> asyncio.Future[tuple[MergeResult, Control]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[MergeResult, Control]] = loop.create_future()
        self.pending.append((mid, actor, merge, future))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self.flush)
        return future

    def flush(self) -> None:
        self.scheduled = False
        items, self.pending = self.pending, []
        groups: dict[tuple[str, str], list[tuple[ProgressMerge, asyncio.Future[tuple[MergeResult, Control]]]]] = {}
        for mid, actor, merge, future in items:
            groups.setdefault((mid, actor), []).append((merge, future))
        for (mid, actor), group in groups.items():
            try:
                results = self.svc.merge(mid, [m for m, _ in group], actor=actor)
                control = self.svc.control(mid) if any(r is not MergeResult.FALLBACK for r in results) else None
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result((result, control or Control.RUNNING))
