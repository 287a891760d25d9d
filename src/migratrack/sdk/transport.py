"""HTTP to a migratrack server: one request, retries with back-off until a deadline, and the
server's error replies mapped to the exceptions the in-process service raises.

A request that cannot reach the server, or that the server cannot serve now (5xx, 429), is
:class:`Transient`, and retried with full-jitter back-off (``sdk/retry.py``). The transport
notes when the server went away and came back (logged once each), so that the outbox can queue
at once while it is away.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx

from migratrack import errors as _errors
from migratrack.core.states import VERB_TARGET
from migratrack.errors import (
    ConfigurationError,
    InvalidInput,
    MigratrackError,
    NotFound,
    RuleViolation,
    StorageUnavailable,
)
from migratrack.sdk.retry import new_op_id, retrying

log = logging.getLogger("migratrack")

ACTOR_HEADER = "X-Migratrack-Actor"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class Transient(Exception):
    """The server could not be reached, or answered that it cannot serve now (5xx, 429)."""


def error_for(response: httpx.Response) -> MigratrackError:
    """The exception the server's error reply stands for (the same class as in-process)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or response.reason_phrase or "error")
    name = str(body.get("error") or "")
    status = response.status_code
    if status in (401, 403):
        hint = ("set MIGRATRACK_TOKEN or pass token=" if status == 401
                else "use a token with the needed role (migratrack token create --role ...)")
        return ConfigurationError(f"the migratrack server refused the request ({status}): {detail}; {hint}")
    cls = getattr(_errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, MigratrackError)):
        cls = {404: NotFound, 409: RuleViolation, 413: InvalidInput, 422: InvalidInput}.get(status, MigratrackError)
    exc: MigratrackError = cls.__new__(cls)
    Exception.__init__(exc, detail)
    for k, v in (body.get("info") or {}).items():
        with contextlib.suppress(AttributeError):
            setattr(exc, k, v)
    return exc


class Transport:
    """Requests to one server, with its credentials, retry deadline and back-off."""

    def __init__(
        self, url: str, *, token: str | None, strict: bool, deadline: float, timeout: float,
        backoff: tuple[float, float], transport: httpx.BaseTransport | None,
    ) -> None:
        self.url = url
        self.strict = strict
        self.deadline = deadline
        self.backoff = backoff
        headers = {"User-Agent": "migratrack-sdk"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(
            base_url=self.url, headers=headers, transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
        )
        #: when the server was last found away (``time.monotonic()``), None while it answers
        self.down_since: float | None = None

    def attempt(self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None,
                actor: str | None = None, key: str | None = None) -> httpx.Response:
        """One request; its reply, whatever its status, unless it is Transient."""
        headers = {}
        if actor:
            headers[ACTOR_HEADER] = actor
        if key:
            headers[IDEMPOTENCY_HEADER] = key
        try:
            r = self.http.request(method, path, json=body, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise Transient(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code in (429, 502, 503, 504):
            raise Transient(f"HTTP {r.status_code}")
        if r.status_code >= 500:
            raise Transient(f"HTTP {r.status_code}: {r.text[:200]}")
        return r

    def unavailable(self, exc: Transient) -> StorageUnavailable:
        return StorageUnavailable(f"migratrack server {self.url} unavailable: {exc}")

    def reliable(self, method: str, path: str, *, end: float, body: Any = None,
                 params: Mapping[str, Any] | None = None, actor: str | None = None, verb: str | None = None,
                 key: str | None = None) -> Any:
        """Retry transient failures with full-jitter back-off until ``end`` (``time.monotonic()``);
        the reply's JSON. A write carries one idempotency key (``key``, else a new one) over all
        its retries, so it is applied once."""
        if method != "GET" and key is None:
            key = new_op_id()
        if self.strict:
            try:
                r = self.attempt(method, path, body=body, params=params, actor=actor, key=key)
            except Transient as exc:
                raise self.unavailable(exc) from None
            return self._answer(r, verb, retried=False)
        attempts = 0
        try:
            for attempt in retrying(Transient, end=end, first=self.backoff[0], cap=self.backoff[1],
                                    before_sleep=self.note_down):
                with attempt:
                    attempts += 1
                    r = self.attempt(method, path, body=body, params=params, actor=actor, key=key)
        except Transient as exc:
            raise StorageUnavailable(
                f"migratrack server {self.url} unavailable for {self.deadline:.0f} s: {exc}") from None
        self.note_up()
        return self._answer(r, verb, retried=attempts > 1)

    def _answer(self, r: httpx.Response, verb: str | None, *, retried: bool) -> Any:
        if r.status_code >= 400:
            exc = error_for(r)
            if retried and verb and r.status_code == 409 and self._already(exc, verb):
                return {}  # our earlier attempt went through before its reply was lost
            raise exc
        return r.json() if r.content else {}

    @staticmethod
    def _already(exc: MigratrackError, verb: str) -> bool:
        target = VERB_TARGET.get(verb)
        return target is not None and getattr(exc, "current", None) == target.value

    def note_down(self, exc: object) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("migratrack: server %s unreachable (%s); buffering progress and retrying", self.url, exc)

    def note_up(self) -> None:
        if self.down_since is not None:
            log.warning("migratrack: server %s reachable again after %.1f s", self.url,
                        time.monotonic() - self.down_since)
            self.down_since = None
