"""The live event stream: ``GET /api/migrations/{id}/events`` as server-sent events.

Each event of the migration's log is sent once, in order, as ``id: <seq>``, ``event: <type>``
and ``data: <the event as JSON>``. A client that reconnects with ``Last-Event-ID`` (browsers do
it by themselves) or ``?after=<seq>`` gets every event it missed first. A ``: ping`` comment
keeps the connection open at least every 15 seconds.

One :class:`EventHub` per process follows each migration's log once (the store's change feed:
Redis, PostgreSQL LISTEN/NOTIFY, or polling) and fans it out to every connected client, so 500
clients cost one subscription, not 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from migratrack.core.models import Event
from migratrack.errors import InvalidInput, MigrationNotFound
from migratrack.service import MigrationService
from migratrack.web.api import ERRORS, MAX_SEQ, MigrationId, service
from migratrack.web.auth import Principal, RequireViewer

log = logging.getLogger("migratrack.web")

#: seconds between keep-alive comments
PING_SECONDS = 15.0
#: events a slow client may fall behind before it re-reads them from the store
QUEUE_SIZE = 10_000
_PAGE = 1000


@dataclass(eq=False)
class _Listener:
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflow: bool = False


@dataclass(eq=False)
class _Topic:
    listeners: set[_Listener] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    error: BaseException | None = None
    #: set when this process wrote to the store: look now instead of at the next poll
    poked: asyncio.Event = field(default_factory=asyncio.Event)


class EventHub:
    """Follows each watched migration's event log once per process and fans events out."""

    def __init__(self, svc: MigrationService, *, poll_interval: float = 0.25) -> None:
        self.svc = svc
        self.poll_interval = poll_interval
        self._topics: dict[str, _Topic] = {}

    async def _pump(self, mid: str, topic: _Topic) -> None:
        try:
            start = (await asyncio.to_thread(self.svc.last_seq, mid))
        except BaseException as exc:
            topic.error = exc
            topic.ready.set()
            raise
        topic.ready.set()
        backoff = 0.5
        feed = self.svc.subscribe if self.svc.has_change_feed else self._poll
        while True:
            try:
                async for event in feed(mid, start, poll_interval=self.poll_interval):
                    start = event.seq
                    backoff = 0.5
                    for listener in topic.listeners:
                        try:
                            listener.queue.put_nowait(event)
                        except asyncio.QueueFull:
                            listener.overflow = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a store hiccup: follow again from where we were
                log.warning("event stream of %s interrupted: %s; retrying", mid, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _poll(self, mid: str, after: int, *, poll_interval: float) -> AsyncIterator[Event]:
        """For stores without a change feed (SQLite, memory): poll, and look at once when this
        process has just written (writes by other processes are seen at the next poll)."""
        topic = self._topics.get(mid)
        while True:
            if topic is not None:
                topic.poked.clear()
            batch = await asyncio.to_thread(self.svc.events_after, mid, after, _PAGE)
            for event in batch:
                yield event
                after = event.seq
            if len(batch) < _PAGE:
                if topic is None:
                    await asyncio.sleep(poll_interval)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(topic.poked.wait(), poll_interval)

    def poke(self) -> None:
        """This process wrote to the store: wake the followers that poll."""
        for topic in self._topics.values():
            topic.poked.set()

    async def _join(self, mid: str) -> tuple[_Topic, _Listener]:
        topic = self._topics.get(mid)
        if topic is None or (topic.task is not None and topic.task.done()):
            topic = self._topics[mid] = _Topic()
            topic.task = asyncio.create_task(self._pump(mid, topic), name=f"migratrack-events-{mid}")
        listener = _Listener()
        topic.listeners.add(listener)
        return topic, listener

    def _leave(self, mid: str, topic: _Topic, listener: _Listener) -> None:
        topic.listeners.discard(listener)
        if not topic.listeners and self._topics.get(mid) is topic:
            del self._topics[mid]
            if topic.task is not None:
                topic.task.cancel()

    async def _read(self, mid: str, after: int) -> AsyncIterator[Event]:
        while True:
            batch = await asyncio.to_thread(self.svc.events_after, mid, after, _PAGE)
            for e in batch:
                yield e
                after = e.seq
            if len(batch) < _PAGE:
                return

    async def stream(self, mid: str, after: int = 0) -> AsyncIterator[Event]:
        """Events with ``seq > after``: the stored ones first, then live ones; endless."""
        topic, listener = await self._join(mid)
        try:
            await topic.ready.wait()
            if topic.error is not None:
                raise topic.error
            last = after
            async for e in self._read(mid, last):
                yield e
                last = e.seq
            while True:
                e = await listener.queue.get()
                if listener.overflow:  # fell behind: drop the queue, catch up from the store
                    listener.overflow = False
                    while not listener.queue.empty():
                        listener.queue.get_nowait()
                    async for old in self._read(mid, last):
                        yield old
                        last = old.seq
                    continue
                if e.seq <= last:
                    continue
                if e.seq > last + 1:  # a gap: fill it from the store
                    async for old in self._read(mid, last):
                        if old.seq >= e.seq:
                            break
                        yield old
                        last = old.seq
                yield e
                last = e.seq
        finally:
            self._leave(mid, topic, listener)

    @property
    def watched(self) -> int:
        return len(self._topics)

    async def close(self) -> None:
        topics, self._topics = list(self._topics.values()), {}
        for topic in topics:
            if topic.task is not None:
                topic.task.cancel()
        for topic in topics:
            if topic.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await topic.task


class _Stream(EventSourceResponse):
    """An event stream that always ends its HTTP response, also when the server shuts down
    (sse-starlette returns without the final empty body then, and uvicorn logs an error)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ended = False

        async def tracking(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                ended = True
            await send(message)

        await super().__call__(scope, receive, tracking)
        if not ended:
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


router = APIRouter(prefix="/api/migrations", tags=["migrations"], responses=ERRORS)

_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A text/event-stream: one event per entry of the migration's log, "
                       "`id: <seq>`, `event: <type>`, `data: <event JSON>`; `: ping` comments every 15 s.",
        "content": {"text/event-stream": {"schema": {"type": "string"},
                                          "example": 'id: 7\nevent: phase.progress\ndata: {"migration_id": "m1", '
                                                     '"seq": 7, "type": "phase.progress", ...}\n\n'}},
    },
}


def _sse(e: Event) -> ServerSentEvent:
    ts = e.ts.isoformat().replace("+00:00", "Z")
    data = json.dumps({"migration_id": e.migration_id, "seq": e.seq, "type": e.type, "ts": ts, "actor": e.actor,
                       "payload": e.payload}, separators=(",", ":"), default=str)
    return ServerSentEvent(data=data, id=str(e.seq), event=e.type)


@router.get("/{mid}/events", response_class=EventSourceResponse, responses=_SSE_DOC,
            summary="Live event stream (server-sent events); resumes from Last-Event-ID")
async def events(
    request: Request,
    mid: MigrationId,
    svc: Annotated[MigrationService, Depends(service)],
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ,
                                       description="start after this seq (else Last-Event-ID, else 0)")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
    ticket: Annotated[str | None, Query(description="a stream ticket from POST …/stream-ticket, for a browser's "
                                                    "EventSource (which sends no headers)", max_length=200)] = None,
    _: Principal = RequireViewer,
) -> EventSourceResponse:
    start = after
    if start is None:
        start = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
        if start > MAX_SEQ:
            raise InvalidInput(f"Last-Event-ID {last_event_id} is beyond any event (at most {MAX_SEQ})")
    if not await asyncio.to_thread(svc.exists, mid):
        raise MigrationNotFound(mid)
    hub: EventHub = request.app.state.hub

    async def gen() -> AsyncIterator[ServerSentEvent]:
        async for e in hub.stream(mid, start):
            yield _sse(e)

    return _Stream(gen(), ping=request.app.state.sse_ping, headers={"Cache-Control": "no-cache",
                                                                    "X-Accel-Buffering": "no"})


class PokeOnWrite:
    """After each write request, wake the event hub so local writes stream without poll delay."""

    def __init__(self, app: ASGIApp, *, hub: EventHub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") or not self.hub.watched:
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.hub.poke()
