"""Reads that cost what they show: the summary (phases with sub-task counts) and paged sub-tasks,
under /api/migrations. For migrations too big to send whole on every look."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from migratrack.core.states import Status
from migratrack.core.summary import SubTaskPage, Summary
from migratrack.service import MAX_PAGE
from migratrack.web.api import ERRORS, MigrationId, PhaseId, Svc
from migratrack.web.auth import Principal, RequireViewer

router = APIRouter(prefix="/api/migrations", tags=["migrations"], responses=ERRORS)


@router.get("/{mid}/summary", response_model=Summary,
            summary="Phases with their sub-tasks counted by status (costs the phases, not the sub-tasks)")
def summary(mid: MigrationId, svc: Svc, _: Principal = RequireViewer) -> Summary:
    return svc.summary(mid)


@router.get("/{mid}/phases/{phase}/sub-tasks", response_model=SubTaskPage,
            summary="A page of one phase's sub-tasks in plan order, filtered by status")
def sub_tasks(
    mid: MigrationId, phase: PhaseId, svc: Svc,
    status: Annotated[Status | None, Query(description="only sub-tasks in this status")] = None,
    after: Annotated[str | None, Query(min_length=1, max_length=200,
                                       description="the last sub-task of the previous page (its next_after)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    _: Principal = RequireViewer,
) -> SubTaskPage:
    return svc.sub_tasks(mid, phase, status=status, after=after, limit=limit)
