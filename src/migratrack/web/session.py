"""Browser sessions for the dashboard: one-time login codes, session cookies and CSRF tokens.

A browser never holds an API token. It logs in either with a one-time code (the link that
``migratrack serve`` prints: the code is good once, for ten minutes) or by pasting a token into
the login form; either way it gets a random session id in a cookie (HttpOnly, SameSite=Strict,
Secure over HTTPS). The session remembers the principal and, when it came from a token, that
token, so a revoked token ends its sessions within seconds. Sessions live in the server
process: a restart logs browsers out.

Every state-changing request from a page carries the session's CSRF token (a form field or the
``X-CSRF-Token`` header) and, when the browser sends one, an ``Origin`` naming this server.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from migratrack.web.auth import ANONYMOUS, Principal, TokenManager

COOKIE = "migratrack_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
#: a login code is good once, for this long
CODE_SECONDS = 600.0
#: a session ends after this long without a request
IDLE_SECONDS = 12 * 3600.0
#: sessions kept at most (the oldest are dropped first)
MAX_SESSIONS = 10_000


@dataclass(eq=False)
class Session:
    id: str
    principal: Principal
    csrf: str
    #: the token this session was made from, kept on the server only: revoking it ends the session
    token: str | None
    seen: float = field(default_factory=time.monotonic)
    #: one-shot messages for the next page (the result of a form posted without JavaScript)
    flash: list[tuple[str, str]] = field(default_factory=list)


class Sessions:
    """Login codes and sessions of one server process."""

    def __init__(self, tokens: TokenManager | None) -> None:
        self.tokens = tokens
        self._codes: dict[str, tuple[float, Principal, str | None]] = {}
        self._sessions: dict[str, Session] = {}
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
        return self._new(entry[1], entry[2])

    def login(self, token: str) -> Session | None:
        """A session for a pasted token, or None if the token is unknown or revoked."""
        if self.tokens is None:
            return self._new(ANONYMOUS, None)
        principal = self.tokens.authenticate(token.strip())
        return None if principal is None else self._new(principal, token.strip())

    def anonymous(self) -> Session:
        return self._new(ANONYMOUS, None)

    def _new(self, principal: Principal, token: str | None) -> Session:
        s = Session(id=secrets.token_urlsafe(32), principal=principal, csrf=secrets.token_urlsafe(32), token=token)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda x: x.seen)
                del self._sessions[oldest.id]
            self._sessions[s.id] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            s = self._sessions.get(sid)
            now = time.monotonic()
            if s is None or now - s.seen > IDLE_SECONDS:
                self._sessions.pop(sid, None)
                return None
            s.seen = now
        if s.token is not None and self.tokens is not None:
            principal = self.tokens.authenticate(s.token)
            if principal is None:  # revoked since
                self.end(sid)
                return None
            s.principal = principal
        return s

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)


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
