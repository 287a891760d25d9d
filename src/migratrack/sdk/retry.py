"""How the SDK retries: exponential back-off with full jitter (tenacity's), and operation ids.

Every retry loop of the SDK (the HTTP transport, the remote outbox's drainer, the coalescer's
re-sends) waits a random time between 0 and ``first * 2**(n-1)`` (capped) before its n-th
retry. The randomness is the point: a thousand workers that lost their server at the same
moment do not all come back at the same moments, so a server that restarts is not knocked down
again by the wave of retries.

Each write is sent with an operation id made once and kept over all its retries (and into the
spool), so a retry of a write that was in fact applied is acknowledged, not applied again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_random_exponential

#: the first retry waits up to this (seconds); each next one up to twice the last one's bound
FIRST = 0.05
#: no retry waits longer than this
CAP = 2.0


def new_op_id() -> str:
    """A fresh operation id, 32 hex digits: the time in microseconds, then 72 random bits (from
    os.urandom, so ids made in forked children differ). Time first so that ids sort by when they
    were made: a store records each in a B-tree keyed by it, and a new key then lands at the
    right edge instead of a random leaf — on SQLite a durable write with its id recorded ran
    about 30 % faster so (docs/benchmarks.md)."""
    return f"{time.time_ns() // 1000:014x}{os.urandom(9).hex()}"


class Backoff:
    """The wait before each retry of one thing (one queued write, one request), as a counter a
    loop that cannot be written as a single tenacity ``Retrying`` block can step through."""

    def __init__(self, first: float = FIRST, cap: float = CAP) -> None:
        self._wait = wait_random_exponential(multiplier=first, max=cap)
        # tenacity's wait strategies read the attempt number off a call state
        self._state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})

    @property
    def failures(self) -> int:
        """Failures since the last success."""
        return self._state.attempt_number - 1

    def next(self) -> float:
        """Count a failure; the seconds to wait before the next attempt."""
        delay = float(self._wait(self._state))
        self._state.attempt_number += 1
        return delay

    def reset(self) -> None:
        """A success: the next failure waits a short time again."""
        self._state.attempt_number = 1


def retrying(
    retry_on: type[BaseException] | tuple[type[BaseException], ...], *, end: float,
    first: float = FIRST, cap: float = CAP, sleep: Callable[[float], None] = time.sleep,
    before_sleep: Callable[[BaseException], None] | None = None,
) -> Retrying:
    """A tenacity ``Retrying`` that retries ``retry_on`` with full-jitter back-off, and stops —
    re-raising the last error — when the next attempt would start after ``end``
    (``time.monotonic()``)."""

    def stop(state: RetryCallState) -> bool:
        return time.monotonic() + state.upcoming_sleep > end

    def note(state: RetryCallState) -> None:
        if before_sleep is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                before_sleep(exc)

    return Retrying(
        retry=retry_if_exception_type(retry_on), wait=wait_random_exponential(multiplier=first, max=cap),
        stop=stop, sleep=sleep, before_sleep=note, reraise=True,
    )
