"""One model validates a plan on every way in: the SDK (``MigrationService.initialize``), a plan
file (``load_plan``) and ``POST /api/migrations`` accept and refuse the same ids and plans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from migratrack import InvalidPlan, MigrationProgressTracker, load_plan
from migratrack.service import MigrationService
from migratrack.storage import Storage

from .live import LiveServer

GOOD_IDS = ["a", "db-move_2026.v2", "x" * 200, "ünïcode-ñ", "a:b@c+d", "日本", "a\\b"]
BAD_IDS = ["", "a/b", "a b", " a", "a ", "a\tb", "a\nb", "a\n", "a\rb", "x" * 201, "a\x00b", "a\x7f", "a\u00a0b",
           "a\u2003b"]

SEED_PHASE = {
    "id": "infrastructure-setup", "name": "Infrastructure", "description": "VPC", "dependencies": [],
    "estimatedDuration": 30, "subTasks": [{"id": "vpc", "estimatedDuration": 5, "status": "pending", "progress": 0}],
    "requiresApproval": True, "metadata": {"owner": "ops"},
    "status": "completed", "progress": 80, "actualDuration": 12, "errors": ["x"], "warnings": ["y"],
}

GOOD_PLANS: dict[str, list[Any]] = {
    "seed shape": [SEED_PHASE, {"id": "db", "dependencies": ["infrastructure-setup"]}],
    "nulls mean not given": [{"id": "a", "dependencies": None, "description": None, "metadata": None,
                              "sub_tasks": None, "name": None, "estimated_duration": None}],
    "sub-tasks as ids and mappings": [{"id": "a", "sub_tasks": ["s1", {"id": "s2", "estimated_duration": 0.5}]}],
    "estimates of zero": [{"id": "a", "estimated_duration": 0, "sub_tasks": [{"id": "s", "estimated_duration": 0}]}],
    "a diamond": [{"id": "a"}, {"id": "b", "dependencies": ["a"]}, {"id": "c", "dependencies": ["a"]},
                  {"id": "d", "dependencies": ["b", "c", "b"]}],
}
BAD_PLANS: dict[str, list[Any]] = {
    "no phases": [],
    "duplicate phase": [{"id": "a"}, {"id": "a"}],
    "duplicate sub-task": [{"id": "a", "sub_tasks": ["s", {"id": "s"}]}],
    "unknown dependency": [{"id": "a", "dependencies": ["ghost"]}],
    "self dependency": [{"id": "a", "dependencies": ["a"]}],
    "cycle": [{"id": "a", "dependencies": ["b"]}, {"id": "b", "dependencies": ["a"]}],
    "negative estimate": [{"id": "a", "estimatedDuration": -1}],
    "negative sub-task estimate": [{"id": "a", "sub_tasks": [{"id": "s", "estimated_duration": -1}]}],
    "estimate as text": [{"id": "a", "estimated_duration": "10"}],
    "estimate as boolean": [{"id": "a", "estimated_duration": True}],
    "unknown phase field": [{"id": "a", "estimate": 3}],
    "unknown sub-task field": [{"id": "a", "sub_tasks": [{"id": "s", "owner": "x"}]}],
    "a field given twice": [{"id": "a", "sub_tasks": [], "subTasks": []}],
    "dependencies as text": [{"id": "a"}, {"id": "b", "dependencies": "a"}],
    "no phase id": [{"name": "nameless"}],
    "no sub-task id": [{"id": "a", "sub_tasks": [{"name": "nameless"}]}],
    "a phase that is a number": [42],
    "id that is a number": [{"id": 7}],
    "approval that is not a boolean": [{"id": "a", "requires_approval": "maybe"}],
}


def where_the_id_goes(ident: str) -> dict[str, dict[str, Any]]:
    """The same id as a migration's, a phase's (and a dependency), and a sub-task's."""
    return {
        "migration": {"id": ident, "phases": [{"id": "p"}]},
        "phase": {"id": "m", "phases": [{"id": ident}, {"id": "z", "dependencies": [ident]}]},
        "sub-task": {"id": "m", "phases": [{"id": "p", "sub_tasks": [ident]}]},
    }


class WaysIn:
    """Asks each way in for its verdict on one plan document: True accepted, False refused."""

    def __init__(self, api: httpx.Client, folder: Path) -> None:
        self.api = api
        self.folder = folder
        self.service = MigrationService("memory://")
        self.files = 0

    def sdk(self, doc: dict[str, Any]) -> bool:
        try:
            self.service.initialize(doc["id"], doc["phases"], replace=True, actor="test")
        except InvalidPlan:
            return False
        return True

    def file(self, doc: dict[str, Any]) -> bool:
        self.files += 1
        path = self.folder / f"plan-{self.files}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        try:
            load_plan(path)
        except InvalidPlan:
            return False
        return True

    def http(self, doc: dict[str, Any]) -> bool:
        r = self.api.post("/api/migrations", json={**doc, "replace": True})
        assert r.status_code in (200, 201, 422), r.text
        return r.status_code != 422

    def verdicts(self, doc: dict[str, Any]) -> tuple[bool, bool, bool]:
        return self.sdk(doc), self.file(doc), self.http(doc)


@pytest.fixture
def ways_in(admin: httpx.Client, tmp_path: Path) -> WaysIn:
    return WaysIn(admin, tmp_path)


def test_the_same_ids_are_accepted_and_refused_on_every_way_in(ways_in: WaysIn) -> None:
    got = {}
    for ident in GOOD_IDS + BAD_IDS:
        for where, doc in where_the_id_goes(ident).items():
            got[ident, where] = ways_in.verdicts(doc)
    expected = {(ident, where): (ident in GOOD_IDS,) * 3 for ident, where in got}
    # (sdk, file, api) for each id in each place
    assert {k: v for k, v in got.items() if v != expected[k]} == {}


def test_the_same_plans_are_accepted_and_refused_on_every_way_in(ways_in: WaysIn) -> None:
    plans = {**GOOD_PLANS, **BAD_PLANS}
    got = {name: ways_in.verdicts({"id": "m", "phases": phases}) for name, phases in plans.items()}
    expected = {name: (name in GOOD_PLANS,) * 3 for name in got}
    assert {k: v for k, v in got.items() if v != expected[k]} == {}


def test_the_seed_shape_arrives_alike_from_every_way_in(ways_in: WaysIn, store: Storage, tmp_path: Path) -> None:
    ways_in.service.initialize("sdk", GOOD_PLANS["seed shape"], actor="test")
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(GOOD_PLANS["seed shape"]))
    ways_in.service.initialize("file", load_plan(path).phases, actor="test")
    r = ways_in.api.post("/api/migrations", json={"id": "api", "phases": GOOD_PLANS["seed shape"]})
    assert r.status_code == 201, r.text

    def shape(state: Any) -> list[Any]:
        return [(p.id, p.name, p.description, p.dependencies, p.estimated_seconds, p.requires_approval, p.metadata,
                 p.status.value, p.progress, p.errors, [(s.id, s.estimated_seconds) for s in p.sub_tasks.values()])
                for p in state.phases.values()]

    sdk, file = shape(ways_in.service.state("sdk")), shape(ways_in.service.state("file"))
    assert sdk == file == shape(store.load("api", sub_tasks="all"))
    assert sdk[0] == ("infrastructure-setup", "Infrastructure", "VPC", [], 1800.0, True, {"owner": "ops"},
                      "pending", 0.0, [], [("vpc", 300.0)])


def test_the_api_names_each_problem_of_a_plan(admin: httpx.Client) -> None:
    r = admin.post("/api/migrations", json={"id": "m", "phases": [
        {"id": "a", "estimated_duration": -1}, {"id": "b c", "dependencies": ["ghost"]}]})
    assert r.status_code == 422
    fields = {f["field"]: f["message"] for f in r.json()["fields"]}
    assert fields == {
        "body.phases.0.estimated_duration": "must be a finite, non-negative duration in minutes, got -1",
        "body.phases.1.id": "'b c' is not a valid id: use 1 to 200 characters without '/', whitespace, "
                            "control or text-direction characters",
        "body.phases.1.dependencies.0": "depends on unknown phase 'ghost'; known phases: a",
    }


def test_the_remote_sdk_refuses_a_bad_plan_as_the_local_one_does(server: LiveServer, tokens: dict[str, str],
                                                                  store: Storage) -> None:
    bad = [{"id": "a", "dependencies": ["b"]}, {"id": "b", "dependencies": ["a"]}, {"id": "c", "estimate": 1}]
    local = MigrationProgressTracker("m", storage="memory://", actor="w")
    remote = MigrationProgressTracker("m", url=server.url, token=tokens["operator"], actor="w")
    try:
        with pytest.raises(InvalidPlan) as in_process:
            local.initialize_migration(bad)
        with pytest.raises(InvalidPlan) as over_http:
            remote.initialize_migration(bad)
    finally:
        local.close()
        remote.close()
    assert str(over_http.value) == str(in_process.value)
    assert "dependency cycle: a -> b -> a" in str(in_process.value)
    assert "unknown field 'estimate'" in str(in_process.value)
    assert not store.exists("m")
