"""HTTP error shapes: every 4xx says what to fix, in one JSON form; a too-large body is a 413."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from migratrack.errors import (
    ConfigurationError,
    InvalidInput,
    InvalidPlan,
    MigrationCancelled,
    MigratrackError,
    NotFound,
    RuleViolation,
    StorageError,
)

log = logging.getLogger("migratrack.web")

#: request bodies larger than this are refused with 413
MAX_BODY_BYTES = 1024 * 1024

#: exception attributes worth returning to a client (lets the remote SDK rebuild the error)
_ATTRS = ("migration_id", "phase_id", "sub_task_id", "alert_id", "current", "requested", "what", "blocking", "key")


class FieldError(BaseModel):
    field: str = Field(description="where the bad value is, e.g. body.progress", examples=["body.progress"])
    message: str = Field(examples=["Input should be less than or equal to 100"])


class ErrorBody(BaseModel):
    """Every error response: a message that says what to fix, and the error's kind."""

    detail: str = Field(examples=["cannot start phase 'copy': waiting for 'schema' to complete or be skipped"])
    error: str = Field(description="the error's kind (a migratrack exception name, or an HTTP reason)",
                       examples=["DependencyNotMet"])
    fields: list[FieldError] | None = Field(default=None, description="for 422: each invalid field")
    info: dict[str, Any] | None = Field(default=None, description="data the error carries (ids, states)")


def error_response(status: int, detail: str, error: str, *, fields: list[FieldError] | None = None,
                   info: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(detail=detail, error=error, fields=fields, info=info or None)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def status_of(exc: MigratrackError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, RuleViolation | MigrationCancelled):
        return 409
    if isinstance(exc, InvalidInput | InvalidPlan):
        return 422
    if isinstance(exc, StorageError):
        return 503
    if isinstance(exc, ConfigurationError):
        return 500
    return 400


def _info(exc: BaseException) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for name in _ATTRS:
        value = getattr(exc, name, None)
        if value is not None:
            info[name] = value
    return info


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def validation_fields(errors: Any) -> list[FieldError]:
    out = []
    for e in errors:
        msg = str(e.get("msg", "invalid value"))
        loc = e.get("loc", ())
        if e.get("type") == "json_invalid":
            ctx = e.get("ctx") or {}
            position = loc[1] if len(loc) > 1 else "?"
            msg = f"malformed JSON at character {position}: {ctx.get('error', msg)}"
            loc = ("body",)
        out.append(FieldError(field=_field_name(loc), message=msg))
    return out


def domain_error(exc: MigratrackError, method: str, path: str) -> JSONResponse:
    status = status_of(exc)
    if status >= 500:
        log.error("request %s %s failed: %s", method, path, exc)
    headers = {"Retry-After": "1"} if status == 503 else None
    return error_response(status, str(exc), type(exc).__name__, info=_info(exc), headers=headers)


def invalid(fields: list[FieldError]) -> JSONResponse:
    detail = "; ".join(f"{f.field}: {f.message}" for f in fields) or "invalid request"
    return error_response(422, detail, "ValidationError", fields=fields)


def http_error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
               413: "PayloadTooLarge"}
    return error_response(status, detail, reasons.get(status, "HTTPError"), headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(MigratrackError)
    async def _domain(request: Request, exc: MigratrackError) -> JSONResponse:
        return domain_error(exc, request.method, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid(validation_fields(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 400:  # FastAPI could not decode the body at all (not UTF-8, …)
            fields = [FieldError(field="body", message=f"malformed request body: {exc.detail}")]
            return error_response(422, fields[0].message + "; send UTF-8 JSON", "ValidationError", fields=fields)
        return http_error(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # a bug, not the client's fault: JSON like every other answer, with nothing of the
        # server's insides; the traceback goes to the server's log (Starlette re-raises it)
        return error_response(500, "the server failed on this request; the error is in its log", "InternalError")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before the app reads any of it.

    The body is read here (up to the limit) and replayed to the app, so a chunked upload
    without Content-Length is caught too."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._refuse(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, f"the request body is larger than {self.limit} bytes; send smaller batches", "PayloadTooLarge",
            headers={"Connection": "close"})
        await response(scope, receive, send)
