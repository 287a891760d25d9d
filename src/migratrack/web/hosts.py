"""The Host allowlist: a page on another site cannot reach the server through DNS rebinding.

A browser that resolved ``attacker.example`` to 127.0.0.1 still sends ``Host: attacker.example``;
a request whose Host is not one of the server's own names is refused before anything reads it.
Loopback names are allowed by default; ``migratrack serve --allowed-host NAME`` adds others
(``*`` allows any, for a server behind a proxy that checks the host itself).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from migratrack.web.errors import error_response

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def host_name(value: str) -> str:
    """The name in a Host header, without its port: ``[::1]:8000`` -> ``::1``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    name, sep, port = value.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else value


class HostCheck:
    def __init__(self, app: ASGIApp, *, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = {host_name(h) for h in allowed}
        self.any = "*" in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.any:
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            if host_name(host) not in self.allowed:
                response = error_response(
                    421, f"this server does not answer for host {host[:100]!r}; an operator can allow it with "
                         "'migratrack serve --allowed-host NAME'", "MisdirectedRequest")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


#: for HTML pages (the API docs): scripts, styles and data only from this server
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class SecurityHeaders:
    """``nosniff`` and, on HTML, a Content-Security-Policy, on the pages a browser shows (the JSON
    API under ``/api/`` is left as it is: its replies are never rendered, and it is the hot path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                # a page that sets its own (stricter) policy keeps it
                if any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers) and not any(
                        k == b"content-security-policy" for k, _ in headers):
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
