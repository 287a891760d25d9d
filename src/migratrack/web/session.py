"""Browser sessions for the dashboard: one-time login codes, session cookies and CSRF tokens.

A browser never holds an API token. It logs in either with a one-time code (the link that
``migratrack serve`` prints: the code is good once, for ten minutes) or by pasting a token into
the login form; either way it gets a session cookie (HttpOnly, SameSite=Strict, Secure over
HTTPS): the token's id, when the session began and a nonce, signed by the server (see
:class:`Sessions`). At every request the token's record decides what the session may do, so a
revoked token ends its sessions within seconds (the token cache's 2 s); logging out ends the
session on every server that shares the store. With ``MIGRATRACK_SESSION_SECRET`` set alike on
several servers, any of them serves a browser, and a restart logs no one out.

Every state-changing request from a page carries the session's CSRF token (a form field or the
``X-CSRF-Token`` header) and, when the browser sends one, an ``Origin`` naming this server.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import threading
import time

from starlette.requests import Request
from starlette.responses import Response

from migratrack.storage.base import Storage
from migratrack.web.auth import ANONYMOUS, Principal, Role, TokenManager

#: who logs in with the link ``migratrack serve`` prints (whoever reads the server's console
#: could read its store, and so make a token): an admin that no token stands for
CONSOLE = Principal(token_id="console", name="console", role=Role.ADMIN)

COOKIE = "migratrack_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
#: a login code is good once, for this long
CODE_SECONDS = 600.0
#: a session ends this long after the login
IDLE_SECONDS = 12 * 3600.0
#: sessions with one-shot messages kept at most (all are dropped past it)
MAX_SESSIONS = 10_000


class Session:
    """One browser's session, as its cookie says and the store confirms on every request."""

    __slots__ = ("_flashes", "_nonce", "csrf", "id", "principal")

    def __init__(self, sid: str, principal: Principal, csrf: str, nonce: str,
                 flashes: dict[str, list[tuple[str, str]]]) -> None:
        self.id = sid
        self.principal = principal
        self.csrf = csrf
        self._nonce = nonce
        self._flashes = flashes

    @property
    def flash(self) -> list[tuple[str, str]]:
        """One-shot messages for the next page (the result of a form posted without JavaScript);
        kept by the server process that set them."""
        return self._flashes.setdefault(self._nonce, [])

    @flash.setter
    def flash(self, value: list[tuple[str, str]]) -> None:
        if value:
            self._flashes[self._nonce] = value
        else:
            self._flashes.pop(self._nonce, None)


#: the kind of the store's documents that name the sessions logged out (Storage.kv_*)
ENDED = "session-ended"


class Sessions:
    """Login codes (this process's) and sessions (signed cookies any server can check).

    A session cookie holds the token's id, when the session began and a random nonce, signed
    with HMAC-SHA256 under ``secret``: ``MIGRATRACK_SESSION_SECRET`` when set, so that every
    server given the same secret (instances behind a load balancer, a restarted server) accepts
    it; else a random secret of this process, and a restart logs browsers out. Nothing of the
    session is kept in the store but the nonces of sessions logged out (until they would have
    expired), and the token's record decides, at every request, whether the session still
    stands (revoked: it ends) and what it may do. The secret is never written to the store, so
    reading the store does not let anyone make a session."""

    def __init__(self, tokens: TokenManager | None, storage: Storage | None = None,
                 secret: str | None = None) -> None:
        self.tokens = tokens
        self.storage = storage
        self._key = (secret or secrets.token_urlsafe(32)).encode()
        self._codes: dict[str, tuple[float, Principal, str | None]] = {}
        self._flashes: dict[str, list[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """The server runs without authentication: every browser is admin."""
        return self.tokens is None

    def issue_code(self, principal: Principal, token: str | None = None) -> str:
        """A one-time login code for ``principal`` (``token``: the token it stands for, if any)."""
        code = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            self._codes = {c: v for c, v in self._codes.items() if v[0] > now}
            self._codes[code] = (now + CODE_SECONDS, principal, token)
        return code

    def redeem(self, code: str) -> Session | None:
        with self._lock:
            entry = self._codes.pop(code, None)
        if entry is None or entry[0] < time.monotonic():
            return None
        return self._new(entry[1])

    def login(self, token: str) -> Session | None:
        """A session for a pasted token, or None if the token is unknown or revoked."""
        if self.tokens is None:
            return self._new(ANONYMOUS)
        principal = self.tokens.authenticate(token.strip())
        return None if principal is None else self._new(principal)

    def anonymous(self) -> Session:
        return self._new(ANONYMOUS)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def _session(self, payload: str, principal: Principal, nonce: str) -> Session:
        sid = _b64(payload.encode()) + "." + self._sign(payload)
        return Session(sid, principal, self._sign("csrf|" + nonce), nonce, self._flashes)

    def _new(self, principal: Principal) -> Session:
        nonce = secrets.token_urlsafe(18)
        with self._lock:
            if len(self._flashes) >= MAX_SESSIONS:  # one-shot messages nobody came back for
                self._flashes.clear()
        # only the token's id is in the cookie: its name, role and scope come from its record at
        # every request; the console's and the open server's are fixed
        return self._session(f"{principal.token_id}|{int(time.time())}|{nonce}", principal, nonce)

    def get(self, sid: str | None) -> Session | None:
        """The session the cookie ``sid`` names, or None: forged, expired, logged out, or its token
        revoked. Reads the store: call it off the event loop."""
        if not sid or "." not in sid or len(sid) > 1000:
            return None
        encoded, signature = sid.rsplit(".", 1)
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            token_id, began, nonce = payload.split("|")
            started = int(began)
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(signature, self._sign(payload)) or time.time() - started > IDLE_SECONDS:
            return None
        if self.storage is not None and self.storage.kv_get(ENDED, nonce) is not None:
            return None
        principal = self._principal(token_id)
        return None if principal is None else self._session(payload, principal, nonce)

    def _principal(self, token_id: str) -> Principal | None:
        if self.tokens is None:
            return ANONYMOUS
        if token_id == CONSOLE.token_id:
            return CONSOLE
        return self.tokens.principal(token_id)

    def end(self, sid: str | None) -> None:
        """Log the session out on every server that shares the store (its nonce is kept as ended
        until the session would have expired)."""
        session = self.get(sid)
        if session is None:
            return
        session.flash = []
        if self.storage is not None:
            until = time.time() + IDLE_SECONDS
            self.storage.kv_put(ENDED, session._nonce, {"until": until})
            with contextlib.suppress(Exception):  # tidying only: a failure keeps a few small documents
                for key, doc in self.storage.kv_list(ENDED, limit=1000):
                    if doc.value.get("until", 0) < time.time():
                        self.storage.kv_delete(ENDED, key, expected=doc.version)


def _b64(raw: bytes) -> str:
    """URL-safe base64 without padding: a cookie value that needs no quoting."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def sessions_of(request: Request) -> Sessions:
    s: Sessions = request.app.state.sessions
    return s


def current(request: Request) -> Session | None:
    return sessions_of(request).get(request.cookies.get(COOKIE))


def set_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(COOKIE, session.id, max_age=int(IDLE_SECONDS), path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")


def same_origin(request: Request) -> bool:
    """No ``Origin`` (a non-browser client, or an old browser on a same-origin form), or one
    naming this server as the request reached it."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    # behind a proxy the browser's host may arrive as X-Forwarded-Host (the Host allowlist and the
    # proxy decide which hosts reach the server at all)
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "").split(",")[0].strip()}
    return any(origin in (f"http://{h}", f"https://{h}") for h in hosts if h)


def csrf_ok(request: Request, session: Session, submitted: str | None) -> bool:
    token = request.headers.get(CSRF_HEADER) or submitted or ""
    return same_origin(request) and secrets.compare_digest(token.encode(), session.csrf.encode())
