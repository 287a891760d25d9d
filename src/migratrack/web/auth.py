"""Bearer tokens with roles. Only a token's SHA-256 hash is stored; the token is shown once.

Roles nest: ``admin`` (control, approvals, tokens) ⊃ ``operator`` (report progress, alerts,
metrics, create migrations) ⊃ ``viewer`` (read). No token: 401; a weaker role: 403.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from migratrack.errors import InvalidInput, NotFound, RuleViolation
from migratrack.storage.base import Storage, TokenRecord

#: how long a looked-up token is trusted before the store is asked again (revocation delay)
CACHE_SECONDS = 2.0
#: header a client may set to name the worker behind the token in the audit trail
ACTOR_HEADER = "X-Migratrack-Actor"


class Role(str, Enum):
    #: control (pause, resume, cancel), approvals, replacing a migration, tokens
    ADMIN = "admin"
    #: report progress, alerts, metrics; create migrations
    OPERATOR = "operator"
    #: read
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    name: str
    role: Role
    #: the migrations this token may act on; None: every migration
    migrations: frozenset[str] | None = None

    def may(self, migration_id: str) -> bool:
        return self.migrations is None or migration_id in self.migrations

    @property
    def label(self) -> str:
        """How the audit trail names this token."""
        return f"token:{self.name}/{self.token_id}"


ANONYMOUS = Principal(token_id="none", name="anonymous", role=Role.ADMIN)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 100 or any(c.isspace() for c in name):
        raise InvalidInput("a token name must be 1-100 characters without spaces")
    return name


#: token creation and revocation, one line each (also kept on the token's record)
audit_log = logging.getLogger("migratrack.audit")


def local_user() -> str:
    """Who runs this process, for records made from the command line: ``cli:user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}@{socket.gethostname()}"


class TokenManager:
    """Create, list, revoke and check tokens kept in a store."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def create(self, name: str, role: Role | str, *, by: str | None = None,
               migrations: Iterable[str] | None = None) -> tuple[str, TokenRecord]:
        """A new token: returns the token itself (show it once) and its stored record. ``by``
        (who asked: a token's identity, or the CLI's local user) is kept on the record and logged."""
        _check_name(name)
        try:
            r = Role(role)
        except ValueError:
            raise InvalidInput(f"unknown role {role!r}; use admin, operator or viewer") from None
        if any(t.name == name and t.revoked_at is None for t in self.storage.list_tokens()):
            raise RuleViolation(f"a token named {name!r} exists; revoke it first or choose another name")
        scope = None if migrations is None else sorted(set(migrations))
        if scope is not None and not scope:
            raise InvalidInput("a token scoped to migrations needs at least one migration id")
        token = "mt_" + secrets.token_urlsafe(32)
        record = TokenRecord(id=uuid.uuid4().hex[:8], name=name, role=r.value, token_hash=hash_token(token),
                             created_at=datetime.now(UTC), created_by=by or local_user(), migrations=scope)
        self.storage.save_token(record)
        audit_log.info("token created: %s token %r (id %s) by %s", record.role, record.name, record.id,
                       record.created_by)
        return token, record

    def records(self) -> list[TokenRecord]:
        return self.storage.list_tokens()

    def active(self) -> list[TokenRecord]:
        return [t for t in self.storage.list_tokens() if t.revoked_at is None]

    def revoke(self, id_or_name: str, *, by: str | None = None) -> TokenRecord:
        """Revoke by id, or by name when exactly one active token has it; ``by`` as for create."""
        tokens = self.storage.list_tokens()
        match = [t for t in tokens if t.id == id_or_name]
        if not match:
            match = [t for t in tokens if t.name == id_or_name and t.revoked_at is None]
        if not match:
            raise NotFound(f"no token with id or name {id_or_name!r}; see 'migratrack token list'")
        if len(match) > 1:
            raise InvalidInput(f"several tokens are named {id_or_name!r}; revoke by id")
        record = match[0]
        if record.revoked_at is None:
            record.revoked_at = datetime.now(UTC)
            record.revoked_by = by or local_user()
            self.storage.save_token(record)
            audit_log.info("token revoked: %s token %r (id %s) by %s", record.role, record.name, record.id,
                           record.revoked_by)
        with self._lock:
            self._cache.clear()
        return record

    def record(self, token_id: str) -> TokenRecord | None:
        """The stored record of the token with id ``token_id`` (reads the store)."""
        return next((t for t in self.storage.list_tokens() if t.id == token_id), None)

    def known(self, token: str) -> bool:
        """Whether ``token``'s answer is cached and fresh, so :meth:`authenticate` will not read
        the store (the server asks a worker thread to look up the others)."""
        hit = self._cache.get(hash_token(token))
        return hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS

    def authenticate(self, token: str) -> Principal | None:
        digest = hash_token(token)
        return self._cached(digest, lambda: self.storage.find_token(digest))

    def principal(self, token_id: str) -> Principal | None:
        """Who the token with id ``token_id`` is (None: unknown or revoked), as ``authenticate``
        answers for the token itself, from the same cache: what a dashboard session asks at every
        request."""
        return self._cached("id:" + token_id, lambda: self.record(token_id))

    def _cached(self, key: str, read: Callable[[], TokenRecord | None]) -> Principal | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        principal = _principal_of(read())
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, principal)
        return principal


def _principal_of(record: TokenRecord | None) -> Principal | None:
    """The principal a stored token stands for; None when there is none, or it is revoked."""
    if record is None or record.revoked_at is not None:
        return None
    try:
        return Principal(token_id=record.id, name=record.name, role=Role(record.role),
                         migrations=None if record.migrations is None else frozenset(record.migrations))
    except ValueError:
        return None


bearer = HTTPBearer(auto_error=False, description="a migratrack API token: `migratrack token create`")


#: the event stream: the one route that also takes a ?ticket= (a browser's EventSource cannot set
#: headers); see web/tickets.py
_STREAM = re.compile(r"^/api/migrations/(?P<mid>[^/]+)/events$")

TOKEN_IN_URL = ("a token in the URL is not accepted (it would end up in access and proxy logs): send "
                "'Authorization: Bearer <token>', or open the stream with a ticket from "
                "POST /api/migrations/{id}/stream-ticket (?ticket=...)")

MISSING_TOKEN = ("missing bearer token: send 'Authorization: Bearer <token>' "
                 "(create one with 'migratrack token create')")


def check_scope(principal: Principal, migration_id: str) -> None:
    """403 unless ``principal``'s token may act on ``migration_id``."""
    if not principal.may(migration_id):
        raise HTTPException(403, f"token {principal.name!r} is limited to the migrations "
                                 f"{', '.join(sorted(principal.migrations or ()))}; not {migration_id!r}")


def check_unscoped(principal: Principal, what: str) -> None:
    """403 if ``principal``'s token is limited to some migrations (it may not ``what``)."""
    if principal.migrations is not None:
        raise HTTPException(403, f"token {principal.name!r} is limited to some migrations and cannot {what}")


def identify(manager: TokenManager | None, token: str | None, role: Role, migration_id: str | None = None) -> Principal:
    """Who presents ``token``, if its role allows ``role`` (and its scope ``migration_id``, when
    the request names one): else HTTPException 401 or 403."""
    if manager is None:  # auth disabled (loopback only, explicit flag)
        return ANONYMOUS
    if not token:
        raise HTTPException(401, MISSING_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    principal = manager.authenticate(token)
    if principal is None:
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    if not principal.role.allows(role):
        raise HTTPException(403, f"this needs the {role.value} role; token {principal.name!r} is "
                                 f"{principal.role.value}")
    if migration_id is not None:
        check_scope(principal, migration_id)
    return principal


async def identify_async(manager: TokenManager | None, token: str | None, role: Role,
                         migration_id: str | None = None) -> Principal:
    """:func:`identify`, with a token not yet cached looked up in a worker thread: the event
    loop never waits for the store (a paused Redis would hold up every request)."""
    if manager is not None and token and not manager.known(token):
        await run_in_threadpool(manager.authenticate, token)
    return identify(manager, token, role, migration_id)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def principal_of(request: Request, credentials: HTTPAuthorizationCredentials | None,
                       role: Role) -> Principal:
    token = credentials.credentials if credentials is not None else None
    manager: TokenManager | None = request.app.state.tokens
    if token is None and manager is not None and (stream := _STREAM.match(request.url.path)):
        if "token" in request.query_params:
            raise HTTPException(401, TOKEN_IN_URL, headers={"WWW-Authenticate": "Bearer"})
        ticket = request.query_params.get("ticket")
        if ticket:
            principal = await run_in_threadpool(redeem, manager, ticket, unquote(stream["mid"]))
            if principal is None:
                raise HTTPException(401, "this stream ticket is expired, revoked, forged or for another "
                                         "migration: get a new one from POST /api/migrations/{id}/stream-ticket")
            if not principal.role.allows(role):
                raise HTTPException(403, f"a stream ticket only reads; this needs the {role.value} role")
            return principal
    return await identify_async(manager, token, role, request.path_params.get("mid"))


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal, if its role allows ``role``; else 401/403."""

    # async: a cached token check is a dict lookup, not worth a worker thread; a lookup in the
    # store goes to one
    async def dependency(request: Request,
                         credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
        return await principal_of(request, credentials, role)

    dependency.__name__ = f"require_{role.value}"
    dependency.role = role  # type: ignore[attr-defined]  # read by web/lean.py's resolver
    return dependency


def actor_of(request: Request, principal: Principal) -> str:
    """The audit trail's name for a write: the token, and the worker the client says it is."""
    return actor_label(request.headers.get(ACTOR_HEADER), principal)


#: what follows the token's identity when the client names itself: a JSON string, so no claim can
#: read as part of the identity ("alice via token:admin/..." is just a claim, quoted)
CLAIMS = " claims "
_CLAIMED = re.compile(r'^(?P<identity>\S+) claims (?P<claim>".*")$')


def actor_label(client: str | None, principal: Principal) -> str:
    """The token's identity, always first; a name the client gave (``X-Migratrack-Actor``, an
    acknowledgement's ``by``) follows as a quoted claim: ``token:ci/1a2b3c4d claims "etl-1"``."""
    client = "".join(c for c in (client or "") if c.isprintable()).strip()[:200]
    if client:
        return f"{principal.label}{CLAIMS}{json.dumps(client, ensure_ascii=False)}"
    return principal.label


def split_actor(actor: str) -> tuple[str, str | None]:
    """``(identity, claim)`` of an actor written by :func:`actor_label`; ``claim`` is None when
    the client named nobody (or for actors written by the SDK on a store it opened itself)."""
    m = _CLAIMED.match(actor)
    if m is None:
        return actor, None
    try:
        claim = json.loads(m["claim"])
    except ValueError:
        return actor, None
    return m["identity"], claim if isinstance(claim, str) else None


def check_role(principal: Principal, role: Role) -> None:
    if not principal.role.allows(role):
        raise HTTPException(403, f"this needs the {role.value} role; token {principal.name!r} is "
                                 f"{principal.role.value}")


RequireViewer = Depends(require(Role.VIEWER))
RequireOperator = Depends(require(Role.OPERATOR))
RequireAdmin = Depends(require(Role.ADMIN))


# -- stream tickets ----------------------------------------------------------------------------
# How a browser's EventSource (which cannot send headers) opens the event stream without putting
# a token in the URL, where proxy and access logs would keep it. A ticket is issued to a token
# holder for one migration (POST …/stream-ticket), reads only, and opens the stream only until it
# expires. It is signed with the issuing token's stored hash, so every server on the same store
# checks it without shared state, and revoking the token voids its tickets.

#: seconds a ticket can open the stream (an open stream goes on after that)
TICKET_SECONDS = 120
TICKET_PREFIX = "mtst_"


def _sign(token_hash: str, token_id: str, mid: str, expires: int) -> str:
    mac = hmac.new(bytes.fromhex(token_hash), f"stream|{token_id}|{mid}|{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def issue_ticket(token_hash: str, principal: Principal, mid: str, now: float | None = None) -> tuple[str, int]:
    """A ticket for ``mid`` on behalf of ``principal`` (whose stored hash is ``token_hash``), and
    its expiry in Unix seconds."""
    expires = int(now if now is not None else time.time()) + TICKET_SECONDS
    signature = _sign(token_hash, principal.token_id, mid, expires)
    return f"{TICKET_PREFIX}{principal.token_id}.{expires}.{signature}", expires


def redeem(manager: TokenManager, ticket: str, mid: str, now: float | None = None) -> Principal | None:
    """The (read-only) principal a ticket stands for on ``mid``; None if it is forged, expired,
    for another migration, or its token is revoked. Reads the store: call it off the event loop."""
    if not ticket.startswith(TICKET_PREFIX):
        return None
    try:
        token_id, expires_text, signature = ticket[len(TICKET_PREFIX):].split(".")
        expires = int(expires_text)
    except ValueError:
        return None
    if expires < (now if now is not None else time.time()):
        return None
    record = manager.record(token_id)
    if record is None or record.revoked_at is not None:
        return None
    if not hmac.compare_digest(signature, _sign(record.token_hash, token_id, mid, expires)):
        return None
    return Principal(token_id=record.id, name=record.name, role=Role.VIEWER)
