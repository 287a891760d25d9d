"""A bounded schemathesis run over /openapi.json against a real server, with all its checks: no
5xx, no response that breaks the schema, every status documented, data that violates the schema
refused, and data that fits it accepted (or refused only by the rules: 404, 409)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from migratrack.core.commands import StartPhase
from migratrack.storage import open_storage
from migratrack.web import create_app

from .live import LiveServer

# the stream never ends by itself: it has its own tests (test_sse.py)
schema = schemathesis.openapi.from_dict(create_app("memory://").openapi()).exclude(path_regex=r"/events$")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection, positive_data_acceptance]

#: where a request can fit the schema and still be wrong in a way the schema does not say, and
#: gets a 422 naming the problem: a plan whose dependency names a phase it does not define; the
#: original design's action-based bodies (which fields an action needs); metric names, whose
#: allowed set depends on the metric's kind; a silence's end, given as one of two fields; a purge's
#: age, which must be more than zero and reach no further back than the year 1. Every other check
#: holds on these too.
SEMANTIC = {"POST /api/alerts/silences", "POST /api/purge", "POST /api/migrations", "POST /api/migration/initialize",
            "POST /api/migration/progress", "POST /api/migration/dashboard", "POST /api/migrations/{mid}/metrics",
            "PATCH /api/migrations/{mid}/metrics"}


@dataclass
class Api:
    url: str
    token: str


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    store = open_storage(f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/fuzz.db")
    app = create_app(store)
    token, _ = app.state.tokens.create("fuzzer", "admin")
    app.state.service.initialize("db-move-2026", [
        {"id": "schema"}, {"id": "copy", "sub_tasks": ["orders"]}, {"id": "cutover", "dependencies": ["copy"]},
    ], actor="test")
    app.state.service.execute("db-move-2026", StartPhase("copy"), actor="test")
    live = LiveServer(app).start()
    yield Api(live.url, token)
    live.stop()
    store.close()


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_holds_to_its_schema(case: schemathesis.Case, api: Api) -> None:
    if case.headers and "Idempotency-Key" in case.headers:
        # a key names one request: generated requests that share a key are different requests
        # under one key, which the server rightly refuses (422); give each its own
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    checks = [c for c in CHECKS if c is not positive_data_acceptance or case.operation.label not in SEMANTIC]
    auth = {"Authorization": f"Bearer {api.token}"}
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER) \
            and "Authorization" not in (case.headers or {}):
        auth = {}  # the case may be "no Authorization header": adding it back would undo the mutation
    case.call_and_validate(base_url=api.url, headers=auth, checks=checks,
                           timeout=10)
