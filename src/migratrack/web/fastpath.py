"""The fast lane for the hot path: single progress updates and the SDK's batches.

These requests are the bulk of a server's traffic. FastAPI's per-request machinery (middleware
layers, route matching over every route, dependency solving, a worker thread) costs several
times the store write itself, so the application hands them to this lane first: the same token check, the same
pydantic models (validated from the raw bytes), the same service calls and the same JSON
replies and errors as the FastAPI routes, which stay in place for the OpenAPI schema and for
any request this lane declines (an unusual content type, an over-long id).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from migratrack.core.states import Control
from migratrack.errors import MigratrackError
from migratrack.service import MigrationService, ProgressUpdate
from migratrack.storage import MergeResult
from migratrack.storage.base import ProgressMerge
from migratrack.web.auth import Role, actor_label, bearer_token, identify
from migratrack.web.errors import FieldError, domain_error, error_response, http_error, invalid, validation_fields
from migratrack.web.replay import Replays
from migratrack.web.schemas import BatchIn, ProgressIn, SubTaskProgressIn

log = logging.getLogger("migratrack.web")

_SEG = r"([^/]{1,200})"
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^/api/migrations/{_SEG}/phases/{_SEG}/progress$"), "phase"),
    (re.compile(rf"^/api/migrations/{_SEG}/phases/{_SEG}/subtasks/{_SEG}/progress$"), "sub"),
    (re.compile(rf"^/api/migrations/{_SEG}/batch$"), "batch"),
]
_MODELS: dict[str, type[BaseModel]] = {"phase": ProgressIn, "sub": SubTaskProgressIn, "batch": BatchIn}


class GroupCommit:
    """Group commit for single progress updates on an embedded store: the updates that arrive
    together (in one turn of the event loop) are written in one transaction, and each request
    is answered once that transaction is committed. Alone, an update is written at once: no
    added latency. Updates the store cannot decide alone (FALLBACK) go through the rules, one by
    one, as before."""

    def __init__(self, svc: MigrationService) -> None:
        self.svc = svc
        self.pending: list[tuple[str, str, ProgressMerge, asyncio.Future[tuple[MergeResult, Control]]]] = []
        self.scheduled = False

    def submit(self, mid: str, actor: str, merge: ProgressMerge) -> asyncio.Future[tuple[MergeResult, Control]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[MergeResult, Control]] = loop.create_future()
        self.pending.append((mid, actor, merge, future))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self.flush)
        return future

    def flush(self) -> None:
        self.scheduled = False
        items, self.pending = self.pending, []
        groups: dict[tuple[str, str], list[tuple[ProgressMerge, asyncio.Future[tuple[MergeResult, Control]]]]] = {}
        for mid, actor, merge, future in items:
            groups.setdefault((mid, actor), []).append((merge, future))
        for (mid, actor), group in groups.items():
            try:
                results = self.svc.merge(mid, [m for m, _ in group], actor=actor)
                control = self.svc.control(mid) if any(r is not MergeResult.FALLBACK for r in results) else None
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result((result, control or Control.RUNNING))


class FastPath:
    """Answers the hot routes; ``handles(scope)`` says whether it takes a request. It runs in
    front of the whole middleware stack, so it enforces the body limit and wakes the event hub
    itself."""

    def __init__(self, state: Any, *, max_body: int) -> None:
        self.state = state
        self.max_body = max_body
        self._group: GroupCommit | None = None

    def match(self, scope: Scope) -> tuple[str, tuple[str, ...], dict[bytes, bytes]] | None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        for pattern, kind in _ROUTES:
            m = pattern.match(path)
            if m is not None:
                headers = dict(scope["headers"])
                ctype = headers.get(b"content-type", b"application/json").split(b";")[0].strip()
                return (kind, m.groups(), headers) if ctype == b"application/json" else None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send,
                       matched: tuple[str, tuple[str, ...], dict[bytes, bytes]]) -> None:
        kind, ids, headers = matched
        try:
            response = await self._handle(kind, ids, headers, receive)
        except Exception:  # what ServerErrorMiddleware would do for the routes behind it
            log.exception("request POST %s failed", scope["path"])
            response = error_response(500, "internal error; see the server's log", "InternalError")
        await response(scope, receive, send)
        hub = self.state.hub
        if hub.watched:
            hub.poke()

    async def _handle(self, kind: str, ids: tuple[str, ...], headers: dict[bytes, bytes], receive: Receive
                      ) -> Response:
        declared = headers.get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_body:
            return _too_large(self.max_body)
        chunks = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return _too_large(self.max_body)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        state = self.state
        try:
            who = identify(state.tokens, bearer_token(headers.get(b"authorization", b"").decode("latin-1")),
                           Role.OPERATOR)
        except HTTPException as exc:
            return http_error(exc.status_code, str(exc.detail), dict(exc.headers) if exc.headers else None)
        try:
            body: Any = _MODELS[kind].model_validate_json(b"".join(chunks) or b"null")
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            return invalid(validation_fields(errors))
        actor = actor_label(headers.get(b"x-migratrack-actor", b"").decode("latin-1"), who)
        svc: MigrationService = state.service
        mid = ids[0]
        write: Callable[[], object]
        if kind == "phase":
            b: ProgressIn = body

            def write() -> object:
                return svc.update_phase_progress(mid, ids[1], b.progress, b.metadata, done=b.done, total=b.total,
                                                 add=b.add, actor=actor)
        elif kind == "sub":
            sb: SubTaskProgressIn = body

            def write() -> object:
                return svc.update_sub_task_progress(mid, ids[1], ids[2], sb.progress, actor=actor)
        else:
            bb: BatchIn = body
            updates = [ProgressUpdate(phase=u.phase, sub_task=u.sub_task, progress=u.progress, done=u.done,
                                      total=u.total, add=u.add, metadata=u.metadata or {}) for u in bb.updates]
            replays: Replays = state.replays
            key = headers.get(b"idempotency-key", b"").decode("latin-1") or None
            if key is not None and len(key) > 200:
                return invalid([FieldError(field="header.Idempotency-Key",
                                           message="String should have at most 200 characters")])

            def write() -> object:
                return replays.run(key, f"{who.token_id}:batch:{mid}",
                                   lambda: svc.apply_updates(mid, updates, bb.increments or None, actor=actor))

        def run() -> bytes:
            write()
            return b'{"control":"%s"}' % svc.control(mid).value.encode()

        if state.inline and kind != "batch":
            merge = (MigrationService.as_merge(ProgressUpdate(ids[1], None, body.progress, body.done, body.total,
                                                               body.add, body.metadata or {}))
                     if kind == "phase"
                     else MigrationService.as_merge(ProgressUpdate(ids[1], ids[2], body.progress)))
            if merge is not None:
                if self._group is None:
                    self._group = GroupCommit(svc)
                try:
                    result, control = await self._group.submit(mid, actor, merge)
                except MigratrackError as exc:
                    return domain_error(exc, "POST", f"/api/migrations/{mid}")
                if result is not MergeResult.FALLBACK:
                    return Response(b'{"control":"%s"}' % control.value.encode(), media_type="application/json")

        try:
            out = run() if state.inline else await run_in_threadpool(run)
        except MigratrackError as exc:
            return domain_error(exc, "POST", f"/api/migrations/{mid}")
        return Response(out, media_type="application/json")



def _too_large(limit: int) -> Response:
    return error_response(413, f"the request body is larger than {limit} bytes; send smaller batches",
                          "PayloadTooLarge", headers={"Connection": "close"})
