"""Metadata and ids: one rule in the core, on every way in."""

from __future__ import annotations

import math
from typing import Any

import pytest

from migratrack.core.values import MAX_BYTES, MAX_DEPTH, check_metadata
from migratrack.errors import InvalidInput, InvalidPlan
from migratrack.service import MigrationService


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


@pytest.mark.parametrize(("value", "message"), [
    ({"x": math.nan}, "metadata.x is nan: only finite numbers are JSON"),
    ({"a": [1, {"b": math.inf}]}, "metadata.a[1].b is inf"),
    (nested(MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels"),
    ({"blob": "x" * MAX_BYTES}, f"the limit is {MAX_BYTES}"),
    ({1: "x"}, "a key that is not a string"),
    ({"when": object()}, "metadata holds JSON values only"),
    (["not", "a", "dict"], "metadata must be an object"),
])
def test_bad_metadata_is_refused_naming_where(value: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_metadata(value)


def test_good_metadata_passes() -> None:
    value = {"table": "orders", "rows": 12, "ratio": 0.5, "ok": True, "none": None, "list": [1, "a"],
             "deep": nested(MAX_DEPTH - 1)}
    assert check_metadata(value) == value


def test_the_sdk_refuses_bad_metadata_and_writes_nothing() -> None:
    svc = MigrationService("memory://")
    svc.initialize("m", [{"id": "a"}], actor="t")
    from migratrack.core.commands import StartPhase

    svc.execute("m", StartPhase("a"), actor="t")
    seq = svc.last_seq("m")
    with pytest.raises(InvalidInput, match="only finite numbers"):
        svc.update_phase_progress("m", "a", 10, {"x": math.nan}, actor="t")
    assert svc.last_seq("m") == seq
    assert svc.state("m").phases["a"].progress == 0
    with pytest.raises(InvalidPlan, match="nested deeper"):
        svc.initialize("m2", [{"id": "a", "metadata": nested(40)}], actor="t")
    assert not svc.exists("m2")


@pytest.mark.parametrize("bad", ["e\x1b]0;PWNED\x07", "a\u202eb", "zero\u200bwidth", "nul\x00", "c1\x9b"])
def test_ids_with_control_or_direction_characters_are_refused(bad: str) -> None:
    svc = MigrationService("memory://")
    with pytest.raises(InvalidPlan, match="is not a valid id"):
        svc.initialize(bad, [{"id": "a"}], actor="t")
    with pytest.raises(InvalidPlan, match="is not a valid id"):
        svc.initialize("m", [{"id": bad}], actor="t")
