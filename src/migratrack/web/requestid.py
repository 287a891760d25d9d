"""Each request's log context: its request id (the client's ``X-Request-ID`` when it is a sane
token, else a new one, echoed in the response) and the migration and phase its path names."""

from __future__ import annotations

import itertools
import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from migratrack.logs import request_context

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,100}$")
_PATH = re.compile(r"^/api/migrations?/([^/]+)(?:/phases/([^/]+))?")
#: ids are this process's random prefix and a counter: unique across processes, and cheaper than
#: a uuid4 per request (which reads the OS's random source)
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == HEADER), None)
        rid = given if given is not None and _SANE.match(given) else f"{_PREFIX}-{next(_COUNTER):x}".encode()
        m = _PATH.match(scope["path"])
        # the task's context: a request's records carry these; the next request's task starts clean
        request_context(rid.decode(), m.group(1) if m else None, m.group(2) if m else None)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER, rid)]
            await send(message)

        await self.app(scope, receive, send_with_id)
