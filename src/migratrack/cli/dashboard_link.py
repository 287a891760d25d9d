"""The dashboard's login link, as `serve` and `demo` print it: a one-time code, never a token."""

from __future__ import annotations

import sys

from fastapi import FastAPI

from migratrack.cli.common import console
from migratrack.web.session import CODE_SECONDS, CONSOLE, Sessions


def login_link(app: FastAPI, base: str, token: str | None = None) -> str:
    """A link that logs a browser in once: as ``token``'s holder when given, else as the console's
    admin (whoever reads the server's console could read its store, and so make a token)."""
    sessions: Sessions = app.state.sessions
    if sessions.open:
        return f"{base}/admin/migration"
    principal = None
    if token is not None and app.state.tokens is not None:
        principal = app.state.tokens.authenticate(token)
    code = sessions.issue_code(principal or CONSOLE, token if principal else None)
    return f"{base}/login?code={code}"


def print_login_link(app: FastAPI, base: str, token: str | None = None) -> str:
    link = login_link(app, base, token)
    console.print(f"dashboard: [bold]{link}[/]", highlight=False, soft_wrap=True)
    if "code=" in link:
        console.print(f"  (a one-time login link, good for {int(CODE_SECONDS // 60)} minutes; or log in at "
                      f"{base}/login with a token)", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    return link
