"""Alert commands: `migratrack alerts list|show|ack|silence|unsilence|silences|deadline|test`
and the `migratrack dispatch` daemon. The alerts commands work on a store (--storage) or through
a server (--url); `dispatch` is a store's daemon. See docs/alerts.md."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from typer._click.core import ParameterSource  # the click that Typer vendors

from migratrack.admin import duration_of
from migratrack.cli.common import (
    AlertArg,
    MigrationArg,
    StorageOpt,
    administer,
    cli_context,
    console,
    err_console,
    remote_url,
    safe,
    storage_url,
)
from migratrack.errors import InvalidInput
from migratrack.sdk.backend import Backend
from migratrack.service import MigrationService
from migratrack.settings import Settings
from migratrack.storage import open_storage

#: `migratrack dispatch`; cli.main adds it to `migratrack`
app = typer.Typer()
#: `migratrack alerts ...`
alerts_app = typer.Typer(help="Alerts: list, show where they went, acknowledge, silence, test a channel.",
                         no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", envvar="MIGRATRACK_ALERTS_CONFIG", help="alert routing file (YAML) [env MIGRATRACK_ALERTS_CONFIG]")]


@contextmanager
def service(storage: str | None, *, read_only: bool = False) -> Iterator[MigrationService]:
    svc = MigrationService(open_storage(storage_url(storage), read_only=read_only))
    try:
        yield svc
    finally:
        svc.storage.close()


def _p(text: object) -> None:
    console.print(escape(safe(text)), highlight=False)


@contextmanager
def backend(ctx: typer.Context, storage: str | None, *, read_only: bool = False) -> Iterator[Backend]:
    """The server given by --url (MIGRATRACK_URL), else the store: for the commands that both serve."""
    url = remote_url(ctx, storage)
    if not url:
        with service(storage, read_only=read_only) as svc:
            yield svc
        return
    from migratrack.sdk.remote import RemoteBackend

    remote = RemoteBackend(url, token=cli_context(ctx).token, strict=True)
    try:
        yield remote
    finally:
        remote.close()


@alerts_app.command("list")
def list_alerts(
    ctx: typer.Context,
    migration: MigrationArg,
    storage: StorageOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many, newest first")] = 50,
    unacknowledged: Annotated[bool, typer.Option("--unacknowledged", help="only those not acknowledged")] = False,
) -> None:
    """The migration's alerts, newest first (from the store, or the server given by --url)."""
    with backend(ctx, storage, read_only=True) as b:
        alerts = b.alerts(migration, limit=limit, unacknowledged_only=unacknowledged)
    table = Table("id", "time", "level", "phase", "message", "acknowledged by", box=None)
    for a in alerts:
        table.add_row(a.id, f"{a.created_at.astimezone():%Y-%m-%d %H:%M:%S}", a.level.value,
                      escape(safe(a.phase or "")), escape(safe(a.message)), escape(safe(a.acknowledged_by or "")))
    console.print(table)


@alerts_app.command()
def show(
    ctx: typer.Context,
    migration: MigrationArg,
    alert: AlertArg,
    storage: StorageOpt = None,
) -> None:
    """One alert and where it went: each channel's delivery with every attempt and the answer
    (from the store, or the server given by --url)."""
    with administer(ctx, storage) as admin:
        a = admin.alert(migration, alert)
        deliveries = admin.deliveries(migration, alert)
    _p(f"{a.id}  {a.level.value}  {a.created_at.isoformat()}  phase={a.phase or '-'}  source={a.source}")
    _p(f"  {a.message}")
    if a.acknowledged_at:
        _p(f"  acknowledged by {a.acknowledged_by} at {a.acknowledged_at.isoformat()}")
    if not deliveries:
        _p("  no deliveries (no channel takes it, or no dispatcher has seen it yet)")
    for d in deliveries:
        extra = f" ({d.reason})" if d.reason else ""
        nxt = f", next attempt {d.next_attempt_at.isoformat()}" if d.next_attempt_at else ""
        _p(f"  -> {d.channel} [{d.kind}] {d.status}{extra}{nxt}  key={d.id}")
        for at in d.attempts:
            _p(f"       {at['at']}  {'ok ' if at['ok'] else 'ERR'}  {at['detail']}")


@alerts_app.command()
def ack(
    ctx: typer.Context,
    migration: MigrationArg,
    alert: AlertArg,
    storage: StorageOpt = None,
    by: Annotated[str | None, typer.Option(help="who acknowledges (default MIGRATRACK_ACTOR, else user@host; "
                                                 "through --url, the token's name)")] = None,
) -> None:
    """Acknowledge an alert: it stops escalating. Through --url the server names the token too."""
    actor = Settings.from_env().actor
    remote = remote_url(ctx, storage) is not None
    with backend(ctx, storage) as b:
        a = b.acknowledge_alert(migration, alert, by or ("" if remote else actor), actor=actor)
    _p(f"{a.id}: acknowledged by {a.acknowledged_by}")


@alerts_app.command()
def silence(
    ctx: typer.Context,
    storage: StorageOpt = None,
    duration: Annotated[str | None, typer.Option("--for", help="how long: 30m, 2h, 1d")] = None,
    until: Annotated[str | None, typer.Option(help="or until this ISO time (with its zone)")] = None,
    migration: Annotated[str | None, typer.Option(help="only this migration")] = None,
    phase: Annotated[str | None, typer.Option(help="only this phase")] = None,
    max_level: Annotated[str, typer.Option(help="mute alerts at this level or below")] = "critical",
    contains: Annotated[str | None, typer.Option(help="only alerts whose message contains this")] = None,
    comment: Annotated[str, typer.Option(help="why")] = "",
) -> None:
    """Mute matching alerts until an end time (they are kept, only not sent). Through --url it
    needs an operator token; the server names the token as the silence's author."""
    from migratrack.alerts.rules import check_deadline

    if (duration is None) == (until is None):
        raise InvalidInput("give one of --for 2h or --until 2026-12-01T06:00:00+00:00")
    ends = check_deadline(until) if until else None
    if duration is not None:
        duration_of(duration, "--for")  # checked here, so the message names the option
    with administer(ctx, storage) as admin:
        s = admin.add_silence(duration=duration, ends_at=ends, migration_id=migration, phase=phase,
                              max_level=max_level, contains=contains, comment=comment,
                              actor=Settings.from_env().actor)
    _p(f"silence {s.id} until {s.ends_at.isoformat()}")


@alerts_app.command()
def unsilence(ctx: typer.Context, silence_id: Annotated[str, typer.Argument(help="silence id")],
              storage: StorageOpt = None) -> None:
    """End a silence now."""
    with administer(ctx, storage) as admin:
        admin.remove_silence(silence_id, actor=Settings.from_env().actor)
    _p(f"silence {silence_id} ended")


@alerts_app.command()
def silences(ctx: typer.Context, storage: StorageOpt = None) -> None:
    """The silences in force (through --url, those the token may see)."""
    with administer(ctx, storage) as admin:
        found = admin.silences()
    if not found:
        _p("no silences in force")
    for s in found:
        what = ", ".join(f"{k}={v}" for k, v in (("migration", s.migration_id), ("phase", s.phase),
                                                 ("contains", s.contains)) if v) or "everything"
        _p(f"{s.id}  until {s.ends_at.isoformat()}  {what}  level<={s.max_level.value}  by {s.created_by}"
           + (f"  ({s.comment})" if s.comment else ""))


@alerts_app.command()
def deadline(
    ctx: typer.Context,
    migration: MigrationArg,
    at: Annotated[str | None, typer.Argument(help="ISO time with its zone; omit with --clear")] = None,
    storage: StorageOpt = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove the deadline")] = False,
) -> None:
    """Set the migration's deadline: an alert goes out when the estimate passes it."""
    from migratrack.alerts.rules import check_deadline

    if (at is not None) != clear:
        when = None if clear else check_deadline(at)
    else:
        raise InvalidInput("give a time (2026-12-01T06:00:00+00:00) or --clear")
    with administer(ctx, storage) as admin:
        admin.set_deadline(migration, when, actor=Settings.from_env().actor)
    _p(f"{migration}: deadline {'cleared' if when is None else when.isoformat()}")


@alerts_app.command()
def test(
    ctx: typer.Context,
    channel: Annotated[str, typer.Option("--channel", help="the channel's name in the configuration")],
    storage: StorageOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Send a test alert through a channel now and print the receiver's answer; exit 1 unless
    it was delivered. Through --url the server sends it, through the channel of its own
    configuration (an admin token is needed)."""
    remote = remote_url(ctx, storage) is not None
    if remote and ctx.get_parameter_source("config") is ParameterSource.COMMANDLINE:
        raise InvalidInput("--config names a local routing file, but through --url the server sends the test "
                           "with its own configuration: drop --config, or give --storage to send it from here")
    with administer(ctx, storage, alerts_config=None if remote else config) as admin:
        d = admin.test_channel(channel, actor=Settings.from_env().actor)
    _p(f"{channel}: {d.status}: {d.answer}")
    if not d.delivered:
        raise typer.Exit(1)


@app.command()
def dispatch(
    storage: StorageOpt = None,
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="one round, then exit")] = False,
) -> None:
    """Deliver alerts and watch for stalls: the daemon for fleets reporting straight to Redis or
    PostgreSQL. Any number may run; one at a time holds the store's lease and works.

    Example: SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... migratrack dispatch --storage redis://db:6379/0"""
    from migratrack.alerts.config import load_config
    from migratrack.alerts.dispatcher import Dispatcher
    from migratrack.alerts.runner import run, safe_tick

    cfg = load_config(Settings.from_env(), config)
    store = open_storage(storage_url(storage))
    d = Dispatcher(store, cfg)
    try:
        if once:
            safe_tick(d)
            d.release()
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        names = ", ".join(cfg.channels) or "none (alerts are kept in the store; stalls are still detected)"
        err_console.print(escape(safe(f"migratrack dispatch: {d.holder}; channels: {names}")), highlight=False)
        state: dict[str, bool | None] = {"leader": None}

        def note(leader: bool) -> None:
            if state["leader"] is not leader:
                state["leader"] = leader
                err_console.print("holding the dispatcher lease" if leader else "waiting: another dispatcher "
                                  "holds the lease", highlight=False)

        run(d, stop, note)
    finally:
        store.close()

