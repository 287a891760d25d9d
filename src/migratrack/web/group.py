"""Group commit of single progress updates on an embedded store (used by the progress routes)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading

from migratrack.core.states import Control
from migratrack.errors import StorageError
from migratrack.service import MigrationService
from migratrack.storage import MergeResult
from migratrack.storage.base import ProgressMerge

_Outcome = tuple[MergeResult, Control] | BaseException
_Item = tuple[str, str, ProgressMerge, "asyncio.Future[tuple[MergeResult, Control]]", asyncio.AbstractEventLoop]


class GroupCommit:
    """Group commit for single progress updates on an embedded store: the updates that arrive
    while a write is under way are written together in the next transaction, and each request
    is answered once its transaction is committed. Alone, an update is written at once: no
    added latency. The writes run in one writer thread of their own, one at a time, so the
    event loop (and ``/healthz``) never waits for the store; a queue and one wake-up of the loop
    per transaction make the hand-over cheaper than a thread pool's (docs/benchmarks.md). Updates
    the store cannot decide alone (FALLBACK) go through the rules, one by one, as before."""

    def __init__(self, svc: MigrationService) -> None:
        self.svc = svc
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, mid: str, actor: str, merge: ProgressMerge) -> asyncio.Future[tuple[MergeResult, Control]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[MergeResult, Control]] = loop.create_future()
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="migratrack-group-commit", daemon=True)
                    self._thread.start()
        self._queue.put((mid, actor, merge, future, loop))
        return future

    def close(self) -> None:
        """Write what is queued, then stop the writer thread (the server's shutdown)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            items = [first]
            stop = False
            while True:  # what arrived while the last transaction ran: one transaction now
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                items.append(item)
            try:
                outcomes = self._write(items)
            except BaseException as exc:  # never leave a request waiting for ever
                # (and never hand the event loop a SystemExit or KeyboardInterrupt of this thread's)
                failure = exc if isinstance(exc, Exception) else StorageError(f"the write failed ({exc!r}); try again")
                outcomes = [failure] * len(items)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[tuple[MergeResult, Control]],
                                                                 _Outcome]]] = {}
            for (*_, future, loop), outcome in zip(items, outcomes, strict=True):
                by_loop.setdefault(loop, []).append((future, outcome))
            for loop, answers in by_loop.items():
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these answers
                    loop.call_soon_threadsafe(_answer, answers)
            if stop:
                return

    def _write(self, items: list[_Item]) -> list[_Outcome]:
        """In the writer thread: one transaction per (migration, actor) group."""
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (mid, actor, *_) in enumerate(items):
            groups.setdefault((mid, actor), []).append(i)
        out: list[_Outcome] = [RuntimeError("not written")] * len(items)
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


def _answer(answers: list[tuple[asyncio.Future[tuple[MergeResult, Control]], _Outcome]]) -> None:
    """On the event loop: answer the requests of one transaction (those still waiting)."""
    for future, outcome in answers:
        if future.done():  # the client went away
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
