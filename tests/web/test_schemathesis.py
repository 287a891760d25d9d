"""A bounded schemathesis run over /openapi.json against a real server: no 5xx, no response
that breaks the schema, every status documented, and data that violates the schema refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
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
          negative_data_rejection]


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
    case.call_and_validate(base_url=api.url, headers={"Authorization": f"Bearer {api.token}"}, checks=CHECKS,
                           timeout=10)
