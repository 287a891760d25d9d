"""How the stores retry: exponential back-off with full jitter, from tenacity.

A store retries a call that lost its connection (Redis ``_call``, PostgreSQL ``_run``), a
hot-path script that found a transition holding the migration's lock and a transition waiting
for that lock (Redis ``_hot``, ``_acquire``), and a change feed that reconnects. Each wait is a
random time between 0 and a bound that doubles per failure (tenacity's
``wait_random_exponential``, "full jitter"): workers that failed together — every worker of a
fleet when Redis restarts — come back spread out instead of in step.

Each store retries in one layer only: the drivers' own retries are switched off (redis-py's
``Retry``) so a failure is not retried twice over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_not_result,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
    wait_random_exponential,
)
from tenacity.retry import retry_base
from tenacity.stop import stop_base

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits of a random 0 to ``min(cap, first * 2**n)`` seconds after the n-th failure (n from
    0); gives up when the next wait would end past ``budget`` seconds from the first failure, or
    after ``attempts`` calls in all, whichever comes first."""

    first: float
    cap: float
    budget: float | None = None
    attempts: int | None = None

    def retrying(self, retry: retry_base, *,
                 on_give_up: Callable[[RetryCallState], object] | None = None) -> Retrying:
        """A tenacity ``Retrying`` that retries what ``retry`` says with these waits; when it gives
        up it re-raises the last error, or answers ``on_give_up(state)``."""
        stops: list[stop_base] = []
        if self.budget is not None:
            stops.append(stop_before_delay(self.budget))
        if self.attempts is not None:
            stops.append(stop_after_attempt(self.attempts))
        return Retrying(wait=wait_random_exponential(multiplier=self.first, max=self.cap), stop=stop_any(*stops),
                        retry=retry, reraise=True, retry_error_callback=on_give_up)


def call(fn: Callable[[], T], backoff: Backoff, *, retry_if: Callable[[BaseException], bool]) -> T:
    """``fn()``; while it raises an error ``retry_if`` accepts, again after a back-off. The last
    error is raised when the back-off gives up."""
    # The first attempt runs outside tenacity: its machinery costs tens of microseconds a call,
    # as much as the round trip it would guard, and almost every call succeeds at once.
    try:
        return fn()
    except Exception as exc:
        if not retry_if(exc):
            raise
        failed: list[Exception] = [exc]

    def attempt() -> T:
        if failed:  # tenacity's attempt 1 is the one made above: it waits after it, then calls fn
            raise failed.pop()
        return fn()

    result: T = backoff.retrying(retry_if_exception(retry_if))(attempt)
    return result


def until(fn: Callable[[], T], backoff: Backoff, *, done: Callable[[T], bool]) -> T:
    """``fn()`` until ``done`` accepts its result, with a back-off between calls; the last result,
    accepted or not, when the back-off gives up."""
    first = fn()
    if done(first):
        return first
    made: list[T] = [first]

    def attempt() -> T:
        return made.pop() if made else fn()

    def last(state: RetryCallState) -> T:
        assert state.outcome is not None
        value: T = state.outcome.result()
        return value

    result: T = backoff.retrying(retry_if_not_result(done), on_give_up=last)(attempt)
    return result


class Delays:
    """The waits of a loop that never gives up (a change feed that reconnects): the same full
    jitter, growing with each failure in a row and starting again after a success."""

    def __init__(self, first: float, cap: float) -> None:
        self._wait = wait_random_exponential(multiplier=first, max=cap)
        # tenacity's wait strategies read the failure count off a call state
        self._state = RetryCallState(Retrying(), None, (), {})

    def next(self) -> float:
        """The wait after one more failure."""
        delay = self._wait(self._state)
        self._state.attempt_number += 1
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits as little as the first one."""
        self._state.attempt_number = 1
