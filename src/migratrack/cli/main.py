"""The `migratrack` command."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.live import Live
from rich.markup import escape

from migratrack import __version__
from migratrack.cli import alerts, report, serve, store, verbs
from migratrack.cli.common import (
    CliContext,
    MigrationArg,
    StorageOpt,
    cli_context,
    console,
    err_console,
    json_safe,
    remote_url,
    safe,
    shown,
    storage_url,
)
from migratrack.cli.display import render_dashboard
from migratrack.errors import ConfigurationError, MigratrackError
from migratrack.sdk.backend import Backend, close_backend
from migratrack.service import MigrationService
from migratrack.storage import open_storage
from migratrack.storage.url import parse_store_url

app = typer.Typer(
    name="migratrack",
    help="Track long, multi-phase migrations: progress, ETA, alerts, pause and resume.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@contextmanager
def reader(ctx: typer.Context, value: str | None) -> Iterator[Backend]:
    """The migration's backend for a command that only reads, closed afterwards: the named (or
    default) store, opened read-only (nothing is created, upgraded or written; a missing SQLite
    file is an error), or the server given by --url."""
    url = remote_url(ctx, value)
    if url:
        from migratrack.sdk.remote import RemoteBackend

        backend: Backend = RemoteBackend(url, token=cli_context(ctx).token, strict=True)
        owned = None
    else:
        backend = read_only_service(value)
        owned = backend.storage
    try:
        yield backend
    finally:
        close_backend(backend, owned)


def read_only_service(value: str | None) -> MigrationService:
    return MigrationService(open_storage(storage_url(value), read_only=True))


def now() -> datetime:
    return datetime.now(UTC)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="print the version and exit")] = False,
    url: Annotated[str | None, typer.Option(
        "--url", envvar="MIGRATRACK_URL",
        help="a migratrack server to use instead of a store [env MIGRATRACK_URL]; --storage wins")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="MIGRATRACK_TOKEN", help="bearer token for --url [env MIGRATRACK_TOKEN]")] = None,
) -> None:
    if version:
        console.print(f"migratrack {__version__}")
        raise typer.Exit()
    ctx.obj = CliContext(url, token)


@app.command()
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="the seed's short test script (a few seconds)")] = False,
    speed: Annotated[float, typer.Option("--speed", min=0.1, help="run the simulation N times faster")] = 1.0,
    storage: StorageOpt = None,
) -> None:
    """Run a realistic simulated migration through the SDK and show it live."""
    from migratrack.cli.demo import DEMO_ID, run_demo, run_quick

    url = storage_url(storage)
    if quick:
        run_quick(url, console)
        return
    console.print(f"[bold]migratrack demo[/]: migration [cyan]{DEMO_ID}[/] in {shown(url)}")
    run_demo(url, speed=speed, console=console)
    if parse_store_url(url).kind != "memory":
        console.print(f"\nsee it again: [bold]migratrack status {DEMO_ID}[/]   "
                      f"the audit trail: [bold]migratrack events {DEMO_ID}[/]")


@app.command("list")
def list_(ctx: typer.Context, storage: StorageOpt = None) -> None:
    """List the migrations in the store."""
    if remote_url(ctx, storage):
        raise ConfigurationError("list reads a store: give --storage (a server lists at GET /api/migrations)")
    svc = read_only_service(storage)
    try:
        ids = svc.list_ids()
        overviews = [svc.overview(mid) for mid in ids]
    finally:
        svc.storage.close()
    if not ids:
        console.print("no migrations in " + shown(storage_url(storage)), highlight=False)
        return
    for mid, o in zip(ids, overviews, strict=True):
        if o.finished_at:
            when = "finished " + o.finished_at.astimezone().strftime("%Y-%m-%d %H:%M")
        elif o.estimated_completion:
            when = "ETA " + o.estimated_completion.astimezone().strftime("%Y-%m-%d %H:%M")
        else:
            when = "ETA unknown"
        sys.stdout.write(f"{safe(mid):<32} {o.status.value:<10} {o.overall_progress:6.1f}%  {when}\n")


@app.command()
def status(
    ctx: typer.Context,
    migration: MigrationArg,
    storage: StorageOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the dashboard as JSON")] = False,
) -> None:
    """Show a migration's dashboard once."""
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
    """Follow a migration live until it finishes (Ctrl-C to leave)."""
    with reader(ctx, storage) as svc:
        try:
            with Live(console=console, refresh_per_second=4) as view:
                while True:
                    d = svc.dashboard(migration)
                    view.update(render_dashboard(d, now()))
                    if d.overview.status.value in ("completed", "cancelled"):
                        return
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
    """Print the migration's event log (the audit trail)."""
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
for _module in (verbs, report, serve, store, alerts):
    app.registered_commands.extend(_module.app.registered_commands)
    app.registered_groups.extend(_module.app.registered_groups)


def main() -> None:
    try:
        app()
    except MigratrackError as exc:
        err_console.print("[bold red]error:[/]", escape(safe(exc)), highlight=False)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
