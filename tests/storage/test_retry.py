"""Retries that do not stampede: full-jitter back-off, one layer of retries per store."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from migratrack.errors import StorageUnavailable
from migratrack.storage import retry
from migratrack.storage.redis import RedisStorage


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait asked for (tenacity sleeps with time.sleep), made at once instead."""
    asked: list[float] = []
    monkeypatch.setattr(time, "sleep", asked.append)
    return asked


def failing(times: int, error: Exception) -> Callable[[], str]:
    left = [times]

    def fn() -> str:
        if left[0]:
            left[0] -= 1
            raise error
        return "ok"
    return fn


def test_waits_are_random_below_a_doubling_bound(sleeps: list[float]) -> None:
    backoff = retry.Backoff(first=0.01, cap=1.0, attempts=10)
    per_caller = []
    for _ in range(200):  # 200 workers that failed together, 4 times each
        sleeps.clear()
        assert retry.call(failing(4, ConnectionError()), backoff, retry_if=lambda e: True) == "ok"
        per_caller.append(list(sleeps))
    for k in range(4):
        waits = [w[k] for w in per_caller]
        bound = 0.01 * 2 ** k
        assert all(0 <= w <= bound for w in waits)
        # spread over the whole window, not in step: the fleet comes back a bit at a time
        assert len(set(waits)) == len(waits)
        assert min(waits) < bound * 0.1 and max(waits) > bound * 0.9
        assert statistics.mean(waits) == pytest.approx(bound / 2, rel=0.25)


def test_an_error_not_worth_a_retry_is_raised_at_once(sleeps: list[float]) -> None:
    calls = []

    def fn() -> str:
        calls.append(1)
        raise ValueError("a bug, not a blip")

    with pytest.raises(ValueError):
        retry.call(fn, retry.Backoff(first=0.01, cap=1.0, attempts=5), retry_if=lambda e: isinstance(e, OSError))
    assert calls == [1] and sleeps == []


def test_a_call_that_keeps_failing_stops_after_its_attempts(sleeps: list[float]) -> None:
    calls = []

    def fn() -> str:
        calls.append(1)
        raise ConnectionError(f"attempt {len(calls)}")

    with pytest.raises(ConnectionError, match="attempt 3"):  # the last error, not a wrapper
        retry.call(fn, retry.Backoff(first=0.01, cap=1.0, attempts=3), retry_if=lambda e: True)
    assert len(calls) == 3 and len(sleeps) == 2


def test_until_answers_the_last_result_when_it_gives_up(sleeps: list[float]) -> None:
    answers = iter([0, 0, 1])
    assert retry.until(lambda: next(answers), retry.Backoff(first=0.01, cap=1.0, attempts=5), done=bool) == 1
    assert len(sleeps) == 2
    sleeps.clear()
    assert retry.until(lambda: 0, retry.Backoff(first=0.01, cap=1.0, attempts=4), done=bool) == 0
    assert len(sleeps) == 3


def test_delays_grow_and_start_again_after_a_success() -> None:
    delays = retry.Delays(first=0.1, cap=5.0)
    first = [delays.next() for _ in range(6)]
    assert all(0 <= w <= min(5.0, 0.1 * 2 ** k) for k, w in enumerate(first))
    delays.reset()
    assert delays.next() <= 0.1


@pytest.fixture
def closing_server() -> Iterator[tuple[int, list[float]]]:
    """A TCP server that accepts each connection and closes it at once (a Redis that is going
    down): its port, and when it accepted each connection."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.1)
    accepted: list[float] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            accepted.append(time.monotonic())
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield sock.getsockname()[1], accepted
    stop.set()
    t.join()
    sock.close()


@pytest.fixture
def real_sleeps(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[float]]:
    """Every wait, by thread, still made."""
    waits: dict[int, list[float]] = {}
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        waits.setdefault(threading.get_ident(), []).append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return waits


def test_workers_that_lose_redis_together_do_not_retry_in_step(
        closing_server: tuple[int, list[float]], real_sleeps: dict[int, list[float]]) -> None:
    port, _ = closing_server
    stores = [RedisStorage(f"redis://127.0.0.1:{port}/0", reconnect=1.0, check_schema=False) for _ in range(4)]
    errors: list[Exception] = []

    def work(store: RedisStorage) -> None:
        try:
            store.control("m")
        except StorageUnavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    for s in stores:
        s.close()
    assert len(errors) == 4 and took < 1.0 + 0.5  # each gave up within its budget
    schedules = list(real_sleeps.values())
    assert len(schedules) == 4
    # full jitter: each worker waits its own random times under the same doubling bound (a
    # fixed schedule would bring all four back at the same instants, every time)
    assert len({tuple(w[:3]) for w in schedules}) == 4
    for waits in schedules:
        assert all(0 <= w <= min(1.0, 0.05 * 2 ** k) for k, w in enumerate(waits))


def test_redis_is_retried_in_one_layer(closing_server: tuple[int, list[float]],
                                       real_sleeps: dict[int, list[float]]) -> None:
    port, accepted = closing_server
    store = RedisStorage(f"redis://127.0.0.1:{port}/0", reconnect=0.6, check_schema=False)
    with pytest.raises(StorageUnavailable):
        store.exists("m")
    store.close()
    [waits] = real_sleeps.values()
    # one connection per attempt of migratrack's retries: redis-py did not retry underneath (it
    # used to, three connections per attempt)
    assert len(waits) >= 2 and len(accepted) == len(waits) + 1
