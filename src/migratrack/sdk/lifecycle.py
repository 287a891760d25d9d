"""What the SDK finishes when the interpreter exits, in a fixed order.

The tracker and the remote backend both register here, so neither imports the other for it:
closing a tracker may put its last progress into a remote backend's buffer, so every tracker is
closed before any buffer is sent.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from typing import TypeVar

#: close the open trackers (their final flush)
TRACKERS = 0
#: then send what remote backends still buffer
TRANSPORTS = 1

F = TypeVar("F", bound=Callable[[], None])

_hooks: list[tuple[int, Callable[[], None]]] = []


def at_exit(stage: int) -> Callable[[F], F]:
    """Register the decorated function to run at exit in ``stage`` (TRACKERS, then TRANSPORTS)."""

    def register(fn: F) -> F:
        _hooks.append((stage, fn))
        return fn

    return register


@atexit.register
def _run() -> None:
    error: Exception | None = None
    for _, hook in sorted(_hooks, key=lambda h: h[0]):  # stable: one stage's hooks in registration order
        try:
            hook()
        except Exception as exc:  # a tracker that fails to close must not keep buffers from being sent
            error = error or exc
    if error is not None:
        raise error
