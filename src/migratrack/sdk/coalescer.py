"""Coalescing: a tracker's progress reports and counter increments, merged and written when due.

Reports are merged per (phase, sub-task) into one :class:`~migratrack.core.delta.ProgressDelta`
and increments per counter; a key is written at most once per ``interval`` seconds, by the
caller when due or by a background flusher thread, and at ``flush()``. The first report for a
key is written at once, so a mistake raises where it was made. A transient store failure is
logged and the writes it lost are put back for the next flush, never raised into the migration
(unless ``strict``).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from migratrack.core.commands import Command
from migratrack.core.delta import ProgressDelta
from migratrack.errors import InvalidInput, MigratrackError, NotFound, RuleViolation
from migratrack.sdk.backend import TRANSIENT, Backend
from migratrack.sdk.control import KnownControl
from migratrack.service import PartiallyApplied, ProgressUpdate

log = logging.getLogger("migratrack")
Key = tuple[str, str | None]


@dataclass(slots=True)
class _Pending:
    """One key's reports not yet written, merged, and when the key was last written."""

    delta: ProgressDelta | None = None
    sent_at: float = 0.0

    @property
    def dirty(self) -> bool:
        return self.delta is not None

    def take(self) -> ProgressDelta:
        delta, self.delta = self.delta, None
        assert delta is not None
        return delta


class Coalescer:
    """The pending deltas and counters of one migration, and the thread that writes them."""

    def __init__(
        self, backend: Backend, migration_id: str, known: KnownControl, *, actor: str, interval: float, strict: bool
    ) -> None:
        self._backend = backend
        self._migration_id = migration_id
        self._known = known
        self.actor = actor
        self.interval = interval
        self.strict = strict
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._pending: dict[Key, _Pending] = {}
        self._counters: dict[str, int] = {}
        self._counters_sent_at = 0.0
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self.closed = False

    def tick(
        self, key: Key, progress: float | None, done: int | None, total: int | None, add: int,
        metadata: Mapping[str, Any] | None,
    ) -> None:
        """Merge one report into the key's pending delta; write it if it is the key's first or due."""
        report = ProgressDelta(key[0], key[1], progress, done, total, add or None, dict(metadata) if metadata else {})
        if not self.interval:  # coalescing off: every call is written, in the caller's thread
            self._send([report], {}, raise_rules=True)
            return
        now = time.monotonic()
        with self._lock:
            p = self._pending.get(key)
            first = p is None
            if p is None:
                p = self._pending[key] = _Pending()
            p.delta = report if p.delta is None else p.delta.merge(report)
            due = first or now - p.sent_at >= self.interval
        if due:
            self._flush_keys([key], raise_rules=first or self.strict)
        else:
            self._ensure_flusher()

    def count(self, deltas: Mapping[str, int]) -> None:
        """Add validated increments to the pending counters; write them when due."""
        with self._lock:
            for k, v in deltas.items():
                self._counters[k] = self._counters.get(k, 0) + v
            due = time.monotonic() - self._counters_sent_at >= self.interval
        if due:
            self._flush_counters()
        else:
            self._ensure_flusher()

    def write_metrics(self, values: Mapping[str, Any]) -> None:
        """Set metric values now, after the pending counters (a transient failure is logged)."""
        self._flush_counters()
        try:
            self._backend.update_metrics(self._migration_id, values, None, actor=self.actor)
        except TRANSIENT as exc:
            if self.strict:
                raise
            log.warning("migratrack: could not record metrics: %s", exc)

    def flush_before(self, command: Command) -> None:
        """Write the pending reports of the command's sub-task, or of its phase and the phase's
        sub-tasks, so that its rule judges them first. A rejected (stale) report is logged: it
        must not stop the transition."""
        phase, sub = getattr(command, "phase", None), getattr(command, "sub_task", None)
        if sub is not None:
            self._flush_keys([(str(phase), sub)], raise_rules=False)
        elif phase is not None:
            with self._lock:
                keys = [k for k in self._pending if k[0] == phase]
            self._flush_keys(keys, raise_rules=False)

    def flush(self) -> None:
        """Write every pending progress report and counter increment now."""
        with self._send_lock:
            with self._lock:
                now = time.monotonic()
                updates = []
                for p in self._pending.values():
                    if p.dirty:
                        updates.append(p.take())
                        p.sent_at = now
                counters, self._counters = self._counters, {}
                self._counters_sent_at = now
            if updates or counters:
                self._send(updates, counters, raise_rules=self.strict)

    def close(self) -> None:
        """Stop the flusher and write what is pending (a failure is logged)."""
        self.closed = True
        self._stop.set()
        try:
            self.flush()
        except MigratrackError:
            log.warning("migratrack: final flush failed", exc_info=True)

    def _flush_keys(self, keys: Iterable[Key], *, raise_rules: bool = True) -> None:
        with self._send_lock:
            with self._lock:
                updates = []
                now = time.monotonic()
                for k in keys:
                    p = self._pending.get(k)
                    if p is not None and p.dirty:
                        updates.append(p.take())
                        p.sent_at = now
            if updates:
                self._send(updates, {}, raise_rules)

    def _flush_counters(self) -> None:
        with self._send_lock:
            with self._lock:
                counters, self._counters = self._counters, {}
                self._counters_sent_at = time.monotonic()
            if counters:
                self._send([], counters, raise_rules=self.strict)

    def _send(self, updates: list[ProgressUpdate], counters: dict[str, int], raise_rules: bool) -> None:
        try:
            control = self._backend.apply_updates(self._migration_id, updates, counters or None, actor=self.actor)
            if control is not None:
                self._known.learn(control)
        except (RuleViolation, NotFound, InvalidInput):
            if raise_rules:
                raise
            log.warning("migratrack: a coalesced progress update was rejected", exc_info=True)
        except TRANSIENT as exc:
            if self.strict:
                raise
            log.warning("migratrack: store unavailable, will retry progress updates: %s", exc)
            if isinstance(exc, PartiallyApplied):  # retry only what was not written
                updates, counters = exc.updates, exc.increments
            self._requeue(updates, counters)

    def _requeue(self, updates: list[ProgressUpdate], counters: dict[str, int]) -> None:
        with self._lock:
            for u in updates:
                p = self._pending.setdefault(u.key, _Pending())
                # u was reported before anything pending now: merge in time order
                p.delta = u if p.delta is None else u.merge(p.delta)
            for k, v in counters.items():
                self._counters[k] = self._counters.get(k, 0) + v
        self._ensure_flusher()

    def _due(self) -> None:
        now = time.monotonic()
        with self._lock:
            keys = [k for k, p in self._pending.items() if p.dirty and now - p.sent_at >= self.interval]
            counters_due = bool(self._counters) and now - self._counters_sent_at >= self.interval
        if keys:
            self._flush_keys(keys, raise_rules=False)
        if counters_due:
            self._flush_counters()

    def _ensure_flusher(self) -> None:
        if self._flusher is not None or self.closed:
            return
        with self._lock:
            if self._flusher is not None:
                return
            # the thread holds the coalescer weakly: a tracker dropped without close() is not kept
            # alive by its flusher, which then ends
            ref = weakref.ref(self)
            stop = self._stop
            interval = max(self.interval, 0.01)

            def run() -> None:
                while not stop.wait(interval):
                    coalescer = ref()
                    if coalescer is None:
                        return
                    try:
                        coalescer._due()
                    except Exception:  # a flusher must never die
                        log.warning("migratrack: background flush failed", exc_info=True)
                    del coalescer

            self._flusher = threading.Thread(target=run, name=f"migratrack-flush-{self._migration_id}",
                                             daemon=True)
            self._flusher.start()
