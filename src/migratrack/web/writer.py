"""One writer thread for the embedded SQLite store's hot path.

SQLite serialises writes anyway, and a write waits on file I/O: done on the event loop it would
stall every other request; done through the general thread pool it costs a pool hand-off per
request. One long-lived thread fed by a queue keeps the loop free to parse and answer other
requests while the store writes, for a fraction of that hand-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _settle(fut: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


class SerialWriter:
    def __init__(self, name: str = "migratrack-writer") -> None:
        self.name = name
        self._queue: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any],
                                             Callable[[], Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the writer thread, in submission order."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                    self._thread.start()
        self._queue.put((loop, fut, fn))
        return await fut

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            loop, fut, fn = item
            try:
                value, error = fn(), None
            except BaseException as exc:  # handed to the awaiting request
                value, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown)
                loop.call_soon_threadsafe(_settle, fut, value, error)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5)
            self._thread = None
