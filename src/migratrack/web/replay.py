"""Idempotency keys, kept in the store: a write retried with the same ``Idempotency-Key`` (same
token, same request) is applied once — across server restarts and across every server on the
store — and answered as the first attempt was.

A key is scoped by the token that sends it. The first request with a key binds it, in the store,
to the request's fingerprint (a hash of method, path, token id and the validated body) for the
store's dedupe window. Then:

* the same request again gets the first answer, once there is one, without being applied again;
* a request with the same key and anything else gets 422 naming the key (a body that does not
  validate gets its own 422 first: validation comes before the key is looked at);
* the write itself carries an operation id derived from the key and the fingerprint, so the
  store applies it (and each part of a batch) once even when two attempts run at once, or when
  a server died between writing and keeping the answer.

Only answers that succeeded are kept: a refused request (409, 404) is decided again on a retry,
and a failed one (503) is tried again, its applied parts acknowledged by their ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request

from migratrack.errors import IdempotencyKeyReused
from migratrack.service import MigrationService
from migratrack.web.auth import Principal

HEADER = "Idempotency-Key"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(slots=True)
class Replay:
    """One keyed request: its key in the store, its fingerprint, the operation id of its write,
    and the answer the first request with this key got (None: none yet)."""

    key: str
    fingerprint: str
    op_id: str
    response: Any = None


class Replays:
    """The server's Idempotency-Keys, in its store."""

    def __init__(self, svc: MigrationService) -> None:
        self.svc = svc

    def begin(self, key: str | None, who: Principal, request: Request, body: BaseModel | None) -> Replay | None:
        """Claim ``key`` for this request; None when the request has no key. Raises
        IdempotencyKeyReused when the key was used for another request."""
        if not key:
            return None
        fingerprint = _digest(request.method, request.url.path, who.token_id,
                              "" if body is None else body.model_dump_json())
        scoped = _digest(who.token_id, key)
        record = self.svc.claim_request(scoped, fingerprint)
        if record.fingerprint != fingerprint:
            raise IdempotencyKeyReused(key)
        return Replay(scoped, fingerprint, "http:" + _digest(scoped, fingerprint)[:40], record.response)

    def finish(self, replay: Replay | None, answer: BaseModel) -> None:
        """Keep the answer of a keyed request that succeeded, for its retries."""
        if replay is not None:
            self.svc.finish_request(replay.key, replay.fingerprint, answer.model_dump(mode="json"))


def op_id_of(replay: Replay | None) -> str | None:
    return None if replay is None else replay.op_id
