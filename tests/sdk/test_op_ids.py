"""Operation ids: unique, and sorted by when they were made (so a store's id record appends)."""

from __future__ import annotations

import re
import time

from migratrack.sdk.retry import new_op_id
from migratrack.storage.base import check_op_id


def test_op_ids_are_unique_hex_and_accepted_by_the_stores() -> None:
    ids = [new_op_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert check_op_id(ids[0]) == ids[0]


def test_op_ids_made_later_sort_after_earlier_ones() -> None:
    made = []
    for _ in range(20):
        made.append(new_op_id())
        time.sleep(0.001)
    assert made == sorted(made)
