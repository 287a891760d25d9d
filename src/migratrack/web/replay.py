"""Idempotency keys: a retried write (same ``Idempotency-Key``, same token) is answered from
memory instead of being applied twice. Process-local and bounded: it covers a client that
retries after a lost response, not a retry that lands on another server process after a crash."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from migratrack.errors import MigratrackError, StorageError

T = TypeVar("T")

HEADER = "Idempotency-Key"


class _Slot:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: object = None
        self.error: BaseException | None = None


class Replays:
    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._lock = threading.Lock()

    def run(self, key: str | None, scope: str, fn: Callable[[], T]) -> T:
        """``fn()`` once per (scope, key); a concurrent or later call with the same key gets the
        first call's result (or its error) again."""
        if not key or len(key) > 200:
            return fn()
        full = f"{scope}\0{key}"
        with self._lock:
            slot = self._slots.get(full)
            owner = slot is None
            if slot is None:
                slot = self._slots[full] = _Slot()
                while len(self._slots) > self.size:
                    self._slots.popitem(last=False)
        if not owner:
            slot.done.wait(60)
            if slot.error is not None:
                raise slot.error
            return slot.value  # type: ignore[return-value]
        try:
            slot.value = fn()
            return slot.value
        except BaseException as exc:
            slot.error = exc
            if not isinstance(exc, MigratrackError) or isinstance(exc, StorageError):
                with self._lock:  # a transient failure: let a retry try again
                    self._slots.pop(full, None)
            raise
        finally:
            slot.done.set()
