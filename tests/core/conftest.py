"""Fixtures for the domain tests: a small plan, a service with a fresh migration on each store."""

from __future__ import annotations

from typing import Any

import pytest

from migratrack.service import MigrationService

MID = "m1"
ACTOR = "tester"


def plan() -> list[dict[str, Any]]:
    """setup -> (copy, files) -> cutover (approval) ; copy has two sub-tasks."""
    return [
        {"id": "setup", "estimated_duration": 10},
        {"id": "copy", "dependencies": ["setup"], "estimated_duration": 30,
         "sub_tasks": [{"id": "users", "estimated_duration": 1}, {"id": "orders", "estimated_duration": 3}]},
        {"id": "files", "dependencies": ["setup"], "estimated_duration": 20},
        {"id": "cutover", "dependencies": ["copy", "files"], "estimated_duration": 5, "requires_approval": True},
    ]


@pytest.fixture
def svc(service: MigrationService) -> MigrationService:
    """The service with migration MID initialised from plan()."""
    service.initialize(MID, plan(), actor=ACTOR)
    return service
