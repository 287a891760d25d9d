"""The Host allowlist: a page on another site cannot reach the server through DNS rebinding.

A browser that resolved ``attacker.example`` to 127.0.0.1 still sends ``Host: attacker.example``;
a request whose Host is not one of the server's own names is refused before anything reads it.
Loopback names are allowed by default; ``migratrack serve --allowed-host NAME`` adds others
(``*`` allows any, for a server behind a proxy that checks the host itself).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

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
