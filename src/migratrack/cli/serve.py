"""`migratrack serve` and `migratrack token create|list|revoke`."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import sys
from typing import Annotated

import typer

from migratrack.cli.common import StorageOpt, administer, console, err_console, safe, shown, storage_url
from migratrack.logs import configure_logging
from migratrack.storage import open_storage

#: this module's commands; cli.main adds them to `migratrack`
app = typer.Typer()
token_app = typer.Typer(help="API tokens for the server: create, list, revoke.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RedactTokens(logging.Filter):
    """Access-log lines never carry a token or a stream ticket: the server refuses ``?token=``,
    but a client may still send one, and a ticket opens a stream for a while."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


_TOKEN = re.compile(r"((?:^|[?&])(?:token|ticket|code)=)[^&\s]*")


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="MIGRATRACK_HOST", help="address to listen on")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="MIGRATRACK_PORT", min=1, max=65535,
                                      help="port")] = 8000,
    storage: StorageOpt = None,
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth", help="serve without tokens (loopback addresses only; every caller is admin)")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="a name clients use to reach the server, besides the loopback names "
                               "(repeatable; '*' for any, behind a proxy that checks it)")] = None,
    login_link: Annotated[bool, typer.Option(
        "--login-link/--no-login-link", help="print a one-time dashboard login link (admin, good for 10 minutes)")]
    = True,
) -> None:
    """Run the HTTP server: JSON API, the original design's routes, live event stream, OpenAPI docs at /docs.

    Example: migratrack serve --port 8765 --storage redis://127.0.0.1:6379/0"""
    try:
        import uvicorn

        from migratrack.web import create_app
        from migratrack.web.auth import TokenManager
    except ImportError as exc:
        err_console.print(f"[bold red]error:[/] the server needs its extra ({exc.name}): "
                          "pip install 'migratrack[server]'")
        raise typer.Exit(1) from None
    url = storage_url(storage)
    visible = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{'[' + visible + ']' if ':' in visible else visible}:{port}"
    if insecure_no_auth and not _loopback(host):
        err_console.print(f"[bold red]error:[/] --insecure-no-auth is allowed only on a loopback address "
                          f"(127.0.0.1, ::1, localhost), not {host!r}")
        raise typer.Exit(2)
    store = open_storage(url)
    created: str | None = None
    if insecure_no_auth:
        err_console.print("[bold yellow]WARNING:[/] serving WITHOUT authentication: anyone who can reach "
                          f"{base} can pause, cancel and rewrite migrations.")
    else:
        tokens = TokenManager(store)
        if not tokens.active():
            names = {t.name for t in tokens.records()}
            name = next(n for n in ("admin", *(f"admin-{i}" for i in range(2, 1000))) if n not in names)
            token, record = tokens.create(name, "admin")
            created = token
            console.print(f"[bold]No API token existed, so an admin token was created[/] ({record.name}, id "
                          f"{record.id}). It is shown only this once; store it now:\n", soft_wrap=True)
            sys.stdout.write(f"    {token}\n\n")
            sys.stdout.flush()
            console.print(f"  use it as [bold]Authorization: Bearer <token>[/] (the SDK reads MIGRATRACK_TOKEN)\n"
                          f"  API docs: [bold]{base}/docs[/]\n"
                          f"  more tokens: migratrack token create --role operator --name <name>", soft_wrap=True)
    hosts = list(allowed_host or [])
    if not _loopback(host) and not hosts:
        console.print(f"[yellow]note:[/] only requests that name this server by a loopback address are answered; "
                      f"add the names clients use with --allowed-host (e.g. --allowed-host {socket.gethostname()})",
                      highlight=False, soft_wrap=True)
    application = create_app(store, auth=not insecure_no_auth, allowed_hosts=hosts)
    if login_link:
        from migratrack.cli.dashboard_link import print_login_link

        print_login_link(application, base, created)
    console.print(f"migratrack serving {shown(url)} on [bold]{base}[/] (API docs: {base}/docs)", highlight=False,
                  soft_wrap=True)
    sys.stdout.flush()
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    configure_logging()  # MIGRATRACK_LOG_LEVEL, MIGRATRACK_LOG_JSON (docs/metrics.md)
    uvicorn.run(application, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5,
                proxy_headers=True)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="admin, operator or viewer")],
    name: Annotated[str, typer.Option("--name", help="a name for the audit trail, e.g. ci or alice")],
    migration: Annotated[list[str] | None, typer.Option(
        "--migration", help="limit the token to this migration (repeatable; default: every migration)")] = None,
    storage: StorageOpt = None,
) -> None:
    """Create a token and print it once (only its hash is stored). Through --url it needs an
    admin token (not limited to migrations), which the new token's record names as its creator.

    Example: migratrack token create --role operator --name ci-orders --migration orders-db"""
    from migratrack.core.plan import check_id

    scope = [check_id(m, "--migration") for m in migration] if migration else None
    with administer(ctx, storage) as admin:
        token, record = admin.create_token(name, role, migrations=scope)
    limited = f", limited to {', '.join(record.migrations)}" if record.migrations else ""
    err_console.print(safe(f"created {record.role} token {record.name!r} (id {record.id}{limited}); "
                           "it is shown only once:"), markup=False, highlight=False)
    sys.stdout.write(token + "\n")


@token_app.command("list")
def token_list(ctx: typer.Context, storage: StorageOpt = None) -> None:
    """List tokens (never the tokens themselves). Through --url it needs an admin token.

    Example: migratrack token list"""
    with administer(ctx, storage) as admin:
        records = admin.tokens()
    if not records:
        console.print("no tokens; `migratrack serve` creates an admin token on its first start")
        return
    for t in records:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M} by {t.revoked_by or '?'}" if t.revoked_at else "active"
        scope = f"  migrations: {', '.join(t.migrations)}" if t.migrations else ""
        console.print(safe(f"{t.id}  {t.name:<24} {t.role:<9} created {t.created_at:%Y-%m-%d %H:%M} by "
                           f"{t.created_by or '?'}  {state}{scope}"), highlight=False, markup=False,
                      soft_wrap=True)  # one line per token, whatever the terminal's width


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token: Annotated[str, typer.Argument(help="the token's id (or its name)")],
    storage: StorageOpt = None,
) -> None:
    """Revoke a token: the server refuses it within seconds. Through --url it needs an admin token.

    Example: migratrack token revoke ci"""
    with administer(ctx, storage) as admin:
        record = admin.revoke_token(token)
    console.print(safe(f"revoked token {record.name!r} (id {record.id})"), highlight=False, markup=False)
