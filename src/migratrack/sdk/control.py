"""The pause/cancel gate: what an operator decided for a migration, and a worker waiting on it.

The state is read from the backend at most once per ``refresh_every`` seconds (a write's reply
may carry it too, which counts as a read), so a loop that reports a million times does not ask
the store a million times. While the migration is paused a blocking worker writes what it has
pending, then polls every ``poll_interval`` seconds; once it is cancelled, it raises
:class:`~migratrack.errors.MigrationCancelled`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from migratrack.core.states import Control
from migratrack.errors import MigrationCancelled, MigratrackError, NotFound, StorageError
from migratrack.sdk.backend import Backend

log = logging.getLogger("migratrack")


@dataclass(slots=True)
class KnownControl:
    """The control state last learned, and when (``time.monotonic()``) it was last read.

    The gate and the coalescer (which learns it from write replies) share this instead of
    holding each other: the gate holds the coalescer's flush, and a cycle between them would keep
    a dropped tracker's flusher thread running until the garbage collector found the cycle.
    """

    control: Control = Control.RUNNING
    read_at: float = 0.0

    def learn(self, control: Control) -> None:
        self.control = control
        self.read_at = time.monotonic()


class ControlGate:
    """Refreshes the known control state and holds a worker while paused, raises once cancelled."""

    def __init__(
        self,
        backend: Backend,
        migration_id: str,
        known: KnownControl,
        *,
        flush: Callable[[], None],
        refresh_every: float,
        block_on_pause: bool,
        poll_interval: float,
    ) -> None:
        self._backend = backend
        self._migration_id = migration_id
        self._known = known
        self._flush = flush
        self._refresh_every = refresh_every
        self.block_on_pause = block_on_pause
        self.poll_interval = poll_interval

    @property
    def control(self) -> Control:
        return self._known.control

    def assume(self, control: Control) -> None:
        """What a command just made it: taken as known, though not read from the store."""
        self._known.control = control

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._known.read_at < self._refresh_every:
            return
        try:
            self._known.control = self._backend.control(self._migration_id)
        except NotFound:
            raise
        except (StorageError, OSError, TimeoutError, MigratrackError) as exc:
            log.warning("migratrack: could not read the control state: %s", exc)
        self._known.read_at = now

    def after_report(self) -> None:
        """After a progress report: with ``block_on_pause``, refresh when due and honour it."""
        # the per-report path: refresh() and honour() inlined to their cheap checks
        if not self.block_on_pause:
            return
        known = self._known
        if time.monotonic() - known.read_at >= self._refresh_every:
            self.refresh(force=True)
        if known.control is not Control.RUNNING:
            self.honour()

    def checkpoint(self) -> None:
        """Block while the migration is paused; raise MigrationCancelled once it is cancelled."""
        self.refresh(force=True)
        self.honour()

    def honour(self) -> None:
        """Act on the known state: raise if cancelled, wait (flushed) if paused and blocking."""
        known = self._known
        if known.control is Control.CANCELLED:
            raise MigrationCancelled(self._migration_id)
        if known.control is Control.PAUSED and self.block_on_pause:
            log.info("migratrack: migration %s is paused; waiting", self._migration_id)
            self._flush()
            while known.control is Control.PAUSED:
                time.sleep(self.poll_interval)
                self.refresh(force=True)
            if known.control is Control.CANCELLED:
                raise MigrationCancelled(self._migration_id)
