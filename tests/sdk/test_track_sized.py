"""track() over sized iterables whose len() is wrong, and the tracker's own store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migratrack import MigrationProgressTracker, Storage
from migratrack.errors import StorageError


class Announced:
    """An iterable whose len() may not match what it yields."""

    def __init__(self, announced: int, real: int) -> None:
        self.announced, self.real = announced, real

    def __len__(self) -> int:
        return self.announced

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.real))


def _done_after(announced: int, real: int) -> tuple[int, int, int | None]:
    t = MigrationProgressTracker("m", storage="memory://")
    t.initialize_migration([{"id": "copy"}])
    seen = sum(1 for _ in t.track(Announced(announced, real), phase="copy", complete=False))
    phase = t.get_dashboard().phases[0]
    return seen, phase.done, phase.total


@pytest.mark.parametrize("n", [0, 1, 2, 3, 100, 4097])
def test_an_honest_length_is_counted_exactly(n: int) -> None:
    assert _done_after(n, n) == (n, n, n)


@pytest.mark.parametrize(("announced", "real"), [(10, 5), (1000, 700), (4097, 1), (2, 1), (1, 0)])
def test_an_iterable_shorter_than_its_len_is_never_overcounted(announced: int, real: int) -> None:
    seen, done, total = _done_after(announced, real)
    assert seen == real  # every item is still yielded
    assert done <= real
    assert total == announced


def test_items_beyond_the_announced_length_are_yielded_but_not_counted() -> None:
    assert _done_after(5, 9) == (9, 5, 5)


def test_close_releases_a_store_the_tracker_opened(tmp_path: Path) -> None:
    t = MigrationProgressTracker("m", storage=f"sqlite:///{tmp_path}/m.db")
    t.initialize_migration([{"id": "copy"}])
    t.close()
    with pytest.raises(StorageError):
        t.backend.overview("m")  # the connection is closed


def test_close_leaves_a_store_it_was_given_open(tmp_path: Path) -> None:
    from migratrack import open_storage

    store = open_storage(f"sqlite:///{tmp_path}/m.db")
    t = MigrationProgressTracker("m", storage=store)
    t.initialize_migration([{"id": "copy"}])
    t.close()
    assert store.exists("m")


def test_a_rerun_resumes_a_loop_from_the_phase_done_count() -> None:
    store = open_store()
    rows = list(range(1000))
    first = MigrationProgressTracker("m", storage=store)
    assert first.initialize_migration([{"id": "copy"}]) is True
    for i, _ in enumerate(first.track(rows, phase="copy")):
        if i == 600:
            break  # the script dies part-way
    first.close()

    again = MigrationProgressTracker("m", storage=store)
    assert again.initialize_migration([{"id": "copy"}]) is False  # resumed
    copy = again.get_phase("copy")
    assert copy.status.value == "in_progress" and 0 < copy.done <= 601
    redone = sum(1 for _ in again.track(rows[copy.done:], phase="copy", total=len(rows)))
    final = again.get_phase("copy")
    assert (final.status.value, final.done, final.total) == ("completed", 1000, 1000)
    assert redone == 1000 - copy.done


def open_store() -> Storage:
    from migratrack import open_storage

    return open_storage("memory://")
