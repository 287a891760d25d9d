"""A lean way in for the hot routes: the same route, resolved without the dependency solver.

Progress updates and the SDK's batches are the bulk of a server's traffic, and FastAPI's
dependency solving costs several times the store write itself. :class:`LeanRoute` is an
``APIRoute`` like any other (in the router, behind every middleware, documented in OpenAPI from
its endpoint's signature, its errors mapped by the app's exception handlers); only the way it
fills its endpoint's parameters differs: a plan made once from the signature, instead of a
solve per request. It knows the few kinds of parameter the hot routes use: the request, path
parameters, one JSON body model, the service, the caller's principal (``require(role)``) and a
header. Anything else is refused when the route is declared.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from email.message import Message
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends, Header, Path
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from migratrack.service import MigrationService
from migratrack.web.auth import Principal, Role, bearer_token, identify, identify_async

#: fills one parameter: (request, raw body, the keyword arguments, the errors so far)
Resolver = Callable[[Request, bytes, dict[str, Any], list[Any]], None]


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False  # as FastAPI: a browser can send an untyped body cross-site without a preflight
    if content_type == "application/json":
        return True
    m = Message()
    m["content-type"] = content_type
    sub = m.get_content_subtype()
    return m.get_content_maintype() == "application" and (sub == "json" or sub.endswith("+json"))


async def _body(request: Request) -> bytes:
    """The whole request body, straight from the ASGI channel (Starlette's ``Request.body()``
    costs several microseconds more, and the hot routes read a body exactly once)."""
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _errors(exc: ValidationError, *prefix: str) -> list[Any]:
    return [{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors(include_url=False)]


@dataclass(slots=True, frozen=True)
class _Lookup:
    """A token not in the cache: the handler reads it from the store in a worker thread."""

    token: str
    role: Role


def _resolver(name: str, annotation: Any, default: Any) -> Resolver:
    base, extras = (get_args(annotation)[0], get_args(annotation)[1:]) \
        if get_origin(annotation) is Annotated else (annotation, ())
    marker = next((e for e in extras if isinstance(e, Path | Header | Depends)), None)
    if base is Request:
        def request_(request: Request, raw: bytes, kwargs: dict[str, Any], errors: list[Any]) -> None:
            kwargs[name] = request
        return request_
    if base is MigrationService:
        def service(request: Request, raw: bytes, kwargs: dict[str, Any], errors: list[Any]) -> None:
            kwargs[name] = request.app.state.service
        return service
    if base is Principal and isinstance(default, Depends):
        role = getattr(default.dependency, "role", None)
        if role is None:
            raise TypeError(f"{name}: a principal must come from require(role)")

        def principal(request: Request, raw: bytes, kwargs: dict[str, Any], errors: list[Any]) -> None:
            token = bearer_token(request.headers.get("authorization"))
            manager = request.app.state.tokens
            if manager is not None and token and not manager.known(token):
                kwargs[name] = _Lookup(token, role)  # the handler looks it up off the event loop
            else:
                kwargs[name] = identify(manager, token, role, request.path_params.get("mid"))
        return principal
    if isinstance(marker, Path):
        path_check = TypeAdapter(annotation)

        def path(request: Request, raw: bytes, kwargs: dict[str, Any], errors: list[Any]) -> None:
            try:
                kwargs[name] = path_check.validate_python(request.path_params[name])
            except ValidationError as exc:
                errors.extend(_errors(exc, "path", name))
        return path
    if isinstance(marker, Header):
        header_check = TypeAdapter(annotation)
        alias = marker.alias or name.replace("_", "-")

        def header(request: Request, raw: bytes, kwargs: dict[str, Any], errors: list[Any]) -> None:
            try:
                kwargs[name] = header_check.validate_python(request.headers.get(alias))
            except ValidationError as exc:
                errors.extend(_errors(exc, "header", alias))
        return header
    if inspect.isclass(base) and issubclass(base, BaseModel):
        model = base

        def body(request: Request, raw: bytes, kwargs: dict[str, Any], errors: list[Any]) -> None:
            if not _is_json(request.headers.get("content-type")):
                errors.append({"type": "model_attributes_type", "loc": ("body",),
                               "msg": "send the body as JSON (Content-Type: application/json)", "input": None})
                return
            try:
                kwargs[name] = model.model_validate_json(raw or b"null")
            except ValidationError as exc:
                errors.extend(_errors(exc, "body"))
        return body
    raise TypeError(f"a lean route cannot fill parameter {name!r} ({annotation!r})")


class JSONBytes(Response):
    """A JSON reply already encoded: what ``JSONResponse`` sends, without its per-call set-up."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200) -> None:  # noqa: super() not called: all set here
        self.body = body
        self.status_code = status_code
        self.background = None
        self.raw_headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]


class LeanRoute(APIRoute):
    """An APIRoute whose async endpoint's parameters are filled by a plan made once."""

    lean_handler: Callable[[Request], Coroutine[Any, Any, Response]]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"{endpoint.__name__}: a lean route needs an async endpoint")
        hints = get_type_hints(endpoint, include_extras=True)
        signature = inspect.signature(endpoint)
        plan = [_resolver(p.name, hints[p.name], p.default) for p in signature.parameters.values()]
        status = self.status_code or 200

        async def handler(request: Request) -> Response:
            raw = await _body(request)
            kwargs: dict[str, Any] = {}
            errors: list[Any] = []
            for resolve in plan:
                resolve(request, raw, kwargs, errors)
            if errors:
                raise RequestValidationError(errors)
            for key, value in kwargs.items():
                if isinstance(value, _Lookup):
                    kwargs[key] = await identify_async(request.app.state.tokens, value.token, value.role,
                                                       request.path_params.get("mid"))
            result: BaseModel = await endpoint(**kwargs)
            return JSONBytes(result.__pydantic_serializer__.to_json(result), status)

        self.lean_handler = handler
        return handler


class HotRoutes:
    """Routes a few hot paths straight to their :class:`LeanRoute`'s handler.

    FastAPI's router walks every route of every included router (twice: once to pick the
    router, once inside it) and keeps its own context per request, which costs several times a
    store write. This middleware sits innermost among the app's middleware, so everything added
    around it (body limit, event-hub poke, a Host check, tracing) still sees every request; it
    matches the few hot routes itself and calls the very handler the router would, mapping
    errors with the app's own exception handlers. A request it does not match goes on to the
    router unchanged.
    """

    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute], handlers: dict[Any, Any]) -> None:
        self.app = app
        self.routes = [r for r in routes if isinstance(r, LeanRoute)]
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            for route in self.routes:
                m = route.path_regex.match(path)
                if m is not None and method in (route.methods or ()):
                    scope["path_params"] = m.groupdict()  # the hot routes' parameters are plain strings
                    scope["route"] = route
                    scope["endpoint"] = route.endpoint
                    await self._serve(route, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, route: LeanRoute, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await route.lean_handler(request)
        except Exception as exc:
            handler = next((self.handlers[c] for c in type(exc).__mro__ if c in self.handlers), None)
            if handler is None:
                raise  # to the server-error middleware, as from any other route
            response = await handler(request, exc)
        await response(scope, receive, send)
