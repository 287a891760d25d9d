"""A write whose outcome is unknown is sent again as it was, before what was reported meanwhile:
the newer report wins, and the end state is that of both writes arriving once, in order."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from migratrack import MigrationProgressTracker, StorageUnavailable
from migratrack.core.rules import Change
from migratrack.service import MigrationService
from migratrack.storage.memory import MemoryStorage


class LostWrite(MemoryStorage):
    """The next rules write fails as an outage; ``meanwhile`` runs first, as another thread of the
    script reporting while that write is on its way."""

    meanwhile: Callable[[], None] | None = None

    def transact(self, *args: Any, **kwargs: Any) -> Change:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
            raise StorageUnavailable("connection reset (simulated outage)")
        return super().transact(*args, **kwargs)


def test_a_retried_report_does_not_undo_a_total_or_metadata_reported_during_the_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = LostWrite()
    t = MigrationProgressTracker("m", storage=store, actor="w", coalesce=3600, block_on_pause=False)
    t.initialize_migration([{"id": "copy"}])
    t.start_phase("copy")
    t.update_phase_progress("copy", done=10, total=100, metadata={"step": "extract"})  # the first: written
    t.update_phase_progress("copy", done=40, total=100, metadata={"step": "load", "host": "a"})
    store.meanwhile = lambda: t.update_phase_progress("copy", done=30, total=200, metadata={"step": "verify"})
    with caplog.at_level(logging.WARNING, logger="migratrack"):
        t.flush()  # the write of done=40 is lost; the newer report waits behind it
    assert any("will retry" in r.getMessage() for r in caplog.records)
    t.flush()
    phase = MigrationService(store).state("m").phases["copy"]
    assert (phase.done, phase.total) == (40, 200)
    assert phase.metadata == {"step": "verify", "host": "a"}
    t.close()

    # the same two writes, each arriving once, in order, with no outage
    calm = MemoryStorage()
    ref = MigrationProgressTracker("m", storage=calm, actor="w", coalesce=0, block_on_pause=False)
    ref.initialize_migration([{"id": "copy"}])
    ref.start_phase("copy")
    ref.update_phase_progress("copy", done=10, total=100, metadata={"step": "extract"})
    ref.update_phase_progress("copy", done=40, total=100, metadata={"step": "load", "host": "a"})
    ref.update_phase_progress("copy", done=30, total=200, metadata={"step": "verify"})
    ref.close()
    expected = MigrationService(calm).state("m").phases["copy"]
    assert (phase.done, phase.total, phase.progress, phase.metadata) == (
        expected.done, expected.total, expected.progress, expected.metadata)
