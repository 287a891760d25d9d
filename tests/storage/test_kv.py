"""The alert dispatcher's documents (Storage.kv_*), part of the storage contract: every store."""

from __future__ import annotations

import threading

import pytest

from migratrack.errors import InvalidInput
from migratrack.storage import Storage, open_storage


def test_put_get_versions_and_compare_and_set(store: Storage) -> None:
    assert store.kv_get("delivery", "a1:slack") is None
    assert store.kv_put("delivery", "a1:slack", {"status": "pending", "text": "ünï ✓"}, expected=0) == 1
    assert store.kv_put("delivery", "a1:slack", {"status": "other"}, expected=0) is None  # insert only once
    got = store.kv_get("delivery", "a1:slack")
    assert got is not None and got.version == 1 and got.value == {"status": "pending", "text": "ünï ✓"}
    assert store.kv_put("delivery", "a1:slack", {"status": "delivered"}, expected=5) is None
    assert store.kv_put("delivery", "a1:slack", {"status": "delivered"}, expected=1) == 2
    assert store.kv_put("delivery", "a1:slack", {"status": "x"}) == 3  # unconditional
    got = store.kv_get("delivery", "a1:slack")
    assert got is not None and got.value == {"status": "x"} and got.version == 3
    assert store.kv_get("silence", "a1:slack") is None  # kinds are apart


def test_list_by_prefix_in_key_order_and_delete(store: Storage) -> None:
    for key in ("m2:b", "m1:b", "m1:a", "m1_%:x", "other"):
        store.kv_put("due", key, key)
    assert [k for k, _ in store.kv_list("due", "m1:")] == ["m1:a", "m1:b"]
    assert [k for k, _ in store.kv_list("due", "m1_%")] == ["m1_%:x"]  # no LIKE wildcards
    assert [k for k, _ in store.kv_list("due")] == ["m1:a", "m1:b", "m1_%:x", "m2:b", "other"]
    assert [v.value for _, v in store.kv_list("due", limit=2)] == ["m1:a", "m1:b"]
    assert store.kv_list("nothing") == []
    assert not store.kv_delete("due", "m1:a", expected=7)
    assert store.kv_delete("due", "m1:a", expected=1)
    assert not store.kv_delete("due", "m1:a")
    assert store.kv_delete("due", "m2:b")
    assert [k for k, _ in store.kv_list("due")] == ["m1:b", "m1_%:x", "other"]


def test_bad_kind_or_key_is_a_clear_error(store: Storage) -> None:
    with pytest.raises(InvalidInput, match="document key"):
        store.kv_put("delivery", "", 1)
    with pytest.raises(InvalidInput, match="document kind"):
        store.kv_get("", "k")


def test_compare_and_set_has_one_winner_across_connections(shared_url: str) -> None:
    """Two dispatchers racing for one lease: exactly one compare-and-set wins each round."""
    stores = [open_storage(shared_url) for _ in range(4)]
    try:
        stores[0].kv_put("lease", "dispatcher", {"holder": None})
        wins: list[int] = []
        barrier = threading.Barrier(len(stores))

        def race(i: int) -> None:
            barrier.wait()
            for _ in range(20):
                cur = stores[i].kv_get("lease", "dispatcher")
                assert cur is not None
                if stores[i].kv_put("lease", "dispatcher", {"holder": i}, expected=cur.version) is not None:
                    wins.append(cur.version)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == len(set(wins))  # no version was won twice
        final = stores[1].kv_get("lease", "dispatcher")
        assert final is not None and final.version == len(wins) + 1
    finally:
        for s in stores:
            s.close()
