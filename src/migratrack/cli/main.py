"""The `migratrack` command."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.live import Live
from rich.markup import escape

from migratrack import __version__
from migratrack.cli import alerts, aws, errors, history, pages, postmortem, report, run, serve, store, verbs
from migratrack.cli.common import (
    CliContext,
    MigrationArg,
    StorageOpt,
    console,
    err_console,
    json_safe,
    remote_url,
    safe,
    shown,
    storage_url,
)
from migratrack.cli.display import headline, render_dashboard
from migratrack.cli.readers import read_only_service, reader  # noqa: F401  (read_only_service: kept importable here)
from migratrack.errors import MigrationNotFound, MigratrackError
from migratrack.storage import Storage
from migratrack.storage.url import parse_store_url

app = typer.Typer(
    name="migratrack",
    help="Track long, multi-phase migrations: progress, ETA, alerts, pause and resume.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=errors.Group,
)


def now() -> datetime:
    return datetime.now(UTC)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="print the version and exit")] = False,
    url: Annotated[str | None, typer.Option(
        "--url", envvar="MIGRATRACK_URL",
        help="a migratrack server to use instead of a store (a command's --storage wins)")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="MIGRATRACK_TOKEN", help="bearer token for --url")] = None,
) -> None:
    if version:
        console.print(f"migratrack {__version__}")
        raise typer.Exit()
    ctx.obj = CliContext(url, token)


@app.command()
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="the original design's short test script (a few seconds)")]
    = False,
    speed: Annotated[float, typer.Option("--speed", min=0.1, help="run the simulation N times faster")] = 1.0,
    storage: StorageOpt = None,
    dashboard: Annotated[bool, typer.Option(
        "--dashboard/--no-dashboard", help="serve the web dashboard beside the terminal view")] = True,
    port: Annotated[int, typer.Option(help="the dashboard's port on 127.0.0.1 (a free one if taken)")] = 8000,
    linger: Annotated[float | None, typer.Option(
        help="seconds the dashboard stays up after the migration ends (default: until Ctrl-C in a terminal, "
             "else none)")] = None,
) -> None:
    """Run a realistic simulated migration through the SDK and show it live.

    Example: migratrack demo --speed 4"""
    from migratrack.cli.demo import DEMO_ID, run_demo, run_quick
    from migratrack.cli.demo_web import DashboardServer, start_dashboard

    url = storage_url(storage)
    if quick:
        run_quick(url, console)
        return
    console.print(f"[bold]migratrack demo[/]: migration [cyan]{DEMO_ID}[/] in {shown(url)}")
    servers: list[DashboardServer] = []

    def serve(store: Storage) -> None:
        server = start_dashboard(store, console, port)
        if server is not None:
            servers.append(server)

    try:
        run_demo(url, speed=speed, console=console, on_ready=serve if dashboard else None)
        stay = linger if linger is not None else (float("inf") if sys.stdin.isatty() else 0.0)
        if servers and stay > 0:
            console.print(f"\nthe dashboard stays at {servers[0].base}/admin/migration/{DEMO_ID}; "
                          "press Ctrl-C to leave", highlight=False)
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(min(stay, 10 * 365 * 86400.0))
    finally:
        for server in servers:
            server.stop()
    if parse_store_url(url).kind != "memory":
        console.print(f"\nsee it again: [bold]migratrack status {DEMO_ID}[/]   "
                      f"the audit trail: [bold]migratrack events {DEMO_ID}[/]")


def known_ids(ctx: typer.Context) -> list[str]:
    """The migrations a command could have meant (for "did you mean" hints)."""
    with reader(ctx, ctx.params.get("storage")) as svc:
        return svc.list_ids()


errors.list_ids = known_ids


@app.command("list")
def list_(ctx: typer.Context, storage: StorageOpt = None) -> None:
    """List the migrations in the store (or on the server given by --url).

    Example: migratrack list --storage sqlite:///migratrack.db"""
    with reader(ctx, storage) as svc:
        ids = svc.list_ids()
        overviews = []
        for mid in ids:
            try:
                overviews.append(svc.overview(mid))
            except MigrationNotFound:  # dropped meanwhile
                continue
    if not overviews:
        where = remote_url(ctx, storage) or shown(storage_url(storage))
        console.print("no migrations in " + where, highlight=False, soft_wrap=True)
        return
    for o in overviews:
        if o.finished_at:
            when = "finished " + o.finished_at.astimezone().strftime("%Y-%m-%d %H:%M")
        elif o.estimated_completion and o.status.value not in ("cancelled", "paused"):
            when = "ETA " + o.estimated_completion.astimezone().strftime("%Y-%m-%d %H:%M")
        else:
            when = "ETA unknown" if o.status.value != "cancelled" else ""
        sys.stdout.write(f"{safe(o.migration_id):<32} {headline(o):<21} {o.overall_progress:6.1f}%  {when}".rstrip()
                         + "\n")


@app.command()
def status(
    ctx: typer.Context,
    migration: MigrationArg,
    storage: StorageOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the dashboard as JSON")] = False,
) -> None:
    """Show a migration's dashboard once.

    Example: migratrack status orders-2026 --json"""
    with reader(ctx, storage) as svc:
        d = svc.dashboard(migration)
    if as_json:
        sys.stdout.write(json_safe(d.model_dump_json(indent=2)) + "\n")
    else:
        console.print(render_dashboard(d, now()))


@app.command()
def watch(
    ctx: typer.Context,
    migration: MigrationArg,
    storage: StorageOpt = None,
    interval: Annotated[float, typer.Option(help="seconds between refreshes")] = 1.0,
) -> None:
    """Follow a migration live until it completes or is cancelled (exit 3); Ctrl-C to leave.

    Example: migratrack watch orders-2026 --interval 2"""
    with reader(ctx, storage) as svc:
        try:
            with Live(console=console, refresh_per_second=4) as view:
                while True:
                    d = svc.dashboard(migration)
                    view.update(render_dashboard(d, now()))
                    if d.overview.status.value == "completed":
                        return
                    if d.overview.status.value == "cancelled":
                        raise typer.Exit(errors.ExitCode.CANCELLED)
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass


@app.command()
def events(
    ctx: typer.Context,
    migration: MigrationArg,
    storage: StorageOpt = None,
    after: Annotated[int, typer.Option(help="only events after this sequence number")] = 0,
    limit: Annotated[int, typer.Option(help="at most this many")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Print the migration's event log (the audit trail).

    Example: migratrack events orders-2026 --after 100 --json"""
    with reader(ctx, storage) as svc:
        events = svc.events(migration, after, limit)
    for e in events:
        if as_json:
            sys.stdout.write(json_safe(json.dumps(e.to_dict(), allow_nan=False)) + "\n")
        else:
            payload = " ".join(f"{k}={v}" for k, v in e.payload.items() if k not in ("id", "created_at"))
            sys.stdout.write(f"{e.seq:>6} {e.ts.astimezone():%H:%M:%S} {e.type:<20} {safe(e.actor):<20} "
                             f"{safe(payload)}\n")


# the commands' verbs, the shell-script commands, the server and tokens, store maintenance: after this
# module's own
# commands in --help
for _module in (verbs, report, run, history, serve, store, pages, postmortem, alerts):
    app.registered_commands.extend(_module.app.registered_commands)
    app.registered_groups.extend(_module.app.registered_groups)
app.add_typer(aws.app, name="aws")
errors.use_everywhere(app)  # after every module's commands: errors and --help the same for all


def main() -> None:
    try:
        app()
    except MigratrackError as exc:  # raised before a command ran
        err_console.print("[bold red]error:[/]", escape(safe(exc)), highlight=False, soft_wrap=True)
        raise SystemExit(errors.exit_code(exc)) from None


if __name__ == "__main__":
    main()
