"""What the command modules share: the consoles, the common options, and the store or server a
command works on."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from migratrack.errors import MigratrackError
from migratrack.settings import DEFAULT_STORAGE_URL, Settings

if TYPE_CHECKING:
    from migratrack.admin import Admin
    from migratrack.sdk.tracker import MigrationProgressTracker

console = Console()
err_console = Console(stderr=True)

StorageOpt = Annotated[
    str | None,
    typer.Option("--storage", envvar="MIGRATRACK_STORAGE_URL",
                 help=f"store URL (default: MIGRATRACK_STORAGE_URL, else REDIS_URL, else {DEFAULT_STORAGE_URL})"),
]
MigrationArg = Annotated[str, typer.Argument(help="migration id")]
PhaseArg = Annotated[str, typer.Argument(help="phase id")]
SubOpt = Annotated[str | None, typer.Option("--sub", help="a sub-task of the phase instead of the phase")]
AlertArg = Annotated[str, typer.Argument(help="alert id")]


@dataclass(frozen=True, slots=True)
class CliContext:
    """The root options (``ctx.obj`` of every command): a server to talk to instead of a store."""

    url: str | None = None
    token: str | None = None


def cli_context(ctx: typer.Context) -> CliContext:
    # a command invoked without the root callback (as a test may) sees no server
    return ctx.ensure_object(CliContext)


def safe(text: object) -> str:
    """``text`` as it may reach a terminal: control, zero-width and text-direction characters
    (which could retitle the window, clear the screen or reorder what the operator reads) are
    shown as escapes. Everything a user supplied goes through here before it is printed."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def json_safe(text: str) -> str:
    """JSON text with the characters JSON leaves raw but a terminal acts on (text direction,
    zero-width, line separators) written as ``\\u`` escapes: the same JSON to a parser."""
    return "".join(f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cf", "Zl", "Zp") else ch for ch in text)


def storage_url(value: str | None) -> str:
    return value or Settings.from_env().storage_url


def shown(url: str) -> str:
    """A store URL to print: its password masked (a banner or a log line must not leak it)."""
    from migratrack.storage.url import parse_store_url

    try:
        return parse_store_url(url).redacted()
    except MigratrackError:
        return "<an invalid store URL>"


def remote_url(ctx: typer.Context, storage: str | None) -> str | None:
    """The server to use: --url (or MIGRATRACK_URL) unless a store was named with --storage."""
    return None if storage else cli_context(ctx).url


def open_tracker(ctx: typer.Context, migration: str, storage: str | None, **options: Any) -> MigrationProgressTracker:
    """A tracker for one command: on the named (or default) store, or the server given by --url.
    Every call is written at once (no coalescing) and strict: a failure or a refusal is the
    command's error and exit code, never a log line behind a success."""
    from migratrack.sdk.tracker import MigrationProgressTracker

    url = remote_url(ctx, storage)
    if url:
        return MigrationProgressTracker(migration, url=url, token=cli_context(ctx).token, coalesce=0, strict=True,
                                        **options)
    return MigrationProgressTracker(migration, storage=storage_url(storage), coalesce=0, strict=True, **options)


@contextmanager
def administer(ctx: typer.Context, storage: str | None, *, alerts_config: Path | None = None) -> Iterator[Admin]:
    """What the alerts, token and purge commands work on (migratrack.admin.Admin), closed
    afterwards: the server given by --url (MIGRATRACK_URL), else the named (or default) store,
    with the alert routing file ``alerts_config`` for a channel test."""
    url = remote_url(ctx, storage)
    if url:
        from migratrack.sdk.remote import RemoteBackend

        remote = RemoteBackend(url, token=cli_context(ctx).token, strict=True)
        try:
            yield remote
        finally:
            remote.close()
        return
    from migratrack.admin import StoreAdmin
    from migratrack.service import MigrationService
    from migratrack.storage import open_storage

    svc = MigrationService(open_storage(storage_url(storage)))
    try:
        yield StoreAdmin(svc, alerts_config=alerts_config)
    finally:
        svc.storage.close()
