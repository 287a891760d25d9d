"""Who dispatches: a loop around ``Dispatcher.tick()``, run by the server (a background task
whose store calls go to a thread), by ``migratrack dispatch``, or by an embedded SDK's daemon
thread. Each tries for the store's lease every tick; the one that holds it works, the others
wait, and when the holder dies its lease expires and another takes over."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from migratrack.alerts.config import AlertsConfig, load_config
from migratrack.alerts.dispatcher import Dispatcher
from migratrack.errors import MigratrackError
from migratrack.settings import Settings
from migratrack.storage.base import Storage

log = logging.getLogger("migratrack.alerts")


def safe_tick(d: Dispatcher) -> bool:
    """One tick that never raises (the store may be away: the next tick tries again); True if
    this dispatcher held the lease."""
    try:
        return d.tick().leader
    except MigratrackError as exc:
        log.warning("migratrack: alert dispatch failed this round: %s", exc)
    except Exception:  # the loop must outlive any bug in one round
        log.exception("migratrack: alert dispatch failed this round")
    return False


def run(d: Dispatcher, stop: threading.Event, on_tick: Callable[[bool], None] | None = None) -> None:
    """Tick every ``config.tick`` until ``stop`` is set; release the lease at the end."""
    interval = d.config.tick.total_seconds()
    try:
        while not stop.is_set():
            leader = safe_tick(d)
            if on_tick is not None:
                on_tick(leader)
            stop.wait(interval)
    finally:
        d.release()


class DispatcherThread:
    """The dispatcher in a daemon thread (an embedded SDK, a test)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=run, args=(dispatcher, self._stop), daemon=True,
                                        name="migratrack-alerts")

    def start(self) -> DispatcherThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)


async def run_async(d: Dispatcher) -> None:
    """The server's background task: every tick in a worker thread, so the event loop never
    waits on the store or a receiver. Ends when cancelled (the server stopping)."""
    interval = d.config.tick.total_seconds()
    try:
        while True:
            await asyncio.to_thread(safe_tick, d)
            await asyncio.sleep(interval)
    finally:
        await asyncio.to_thread(d.release)


def wanted(settings: Settings, config: AlertsConfig) -> bool:
    """Whether an embedded tracker should run a dispatcher: ``MIGRATRACK_DISPATCH`` on, or auto
    (the default) with a channel configured."""
    mode = (settings.dispatch or "auto").lower()
    if mode in ("off", "0", "false", "no"):
        return False
    return mode in ("on", "1", "true", "yes") or bool(config.channels)


def embedded_dispatcher(storage: Storage, settings: Settings) -> DispatcherThread | None:
    """The SDK's own dispatcher thread for a store URL, when wanted; None otherwise. A bad
    configuration is logged, never raised into the migration."""
    try:
        config = load_config(settings)
        if not wanted(settings, config):
            return None
        return DispatcherThread(Dispatcher(storage, config)).start()
    except MigratrackError as exc:
        log.warning("migratrack: alerts are not dispatched from this process: %s", exc)
        return None
