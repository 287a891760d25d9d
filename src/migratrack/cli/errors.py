"""How the command line ends: its exit codes, and errors told in its own words.

The core's messages are shared by the SDK and the CLI, so they name Python calls
(``start_phase('copy')``). Here, at the CLI's edge, such a hint is put as the command the user
would type, unknown ids get close matches, and every error ends the command with an exit code
that says what kind of failure it was — never with a traceback.

The Typer app's group and command classes (:class:`Group`, :class:`Command`) do this for every
command, whichever module registered it; they also render ``--help`` without Typer's
``<bool>`` and ``{argument}`` decorations.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from typing import Any

import typer
from rich.markup import escape
from typer._click.core import Context  # the click that Typer vendors
from typer._click.exceptions import ClickException
from typer.core import TyperArgument as Argument
from typer.core import TyperCommand, TyperGroup
from typer.core import TyperOption as Option
from typer.models import DefaultPlaceholder

from migratrack.errors import (
    LimitExceeded,
    MigrationCancelled,
    MigrationNotFound,
    MigratrackError,
    NotFound,
    PhaseNotFound,
    RuleViolation,
    StorageError,
)


class ExitCode(IntEnum):
    """What ``migratrack`` exits with (docs/cli.md)."""

    #: done
    OK = 0
    #: the migration's state forbids the command (a rule refused it)
    REFUSED = 1
    #: bad usage: a wrong argument, option, plan file or id
    USAGE = 2
    #: the migration was cancelled (``checkpoint``, ``run``)
    CANCELLED = 3
    #: the store or the server could not be reached (or failed)
    UNREACHABLE = 4


def exit_code(exc: BaseException) -> ExitCode:
    if isinstance(exc, MigrationCancelled):
        return ExitCode.CANCELLED
    if isinstance(exc, StorageError):
        return ExitCode.UNREACHABLE
    if isinstance(exc, RuleViolation | LimitExceeded):  # a cap met is the migration's state, like a rule
        return ExitCode.REFUSED
    return ExitCode.USAGE


_ID = r"'((?:[^'\\]|\\.)*)'"
#: the core's Python hints and what a CLI user types instead ({m} is the migration)
_HINTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"create it with initialize_migration\(phases\)"), "create it with: migratrack init {m} PLAN.yaml"),
    (re.compile(rf"call start_phase\({_ID}\) first"), r"start it first: migratrack start {m} \1"),
    (re.compile(rf"call start_sub_task\({_ID}, {_ID}\) first"), r"start it first: migratrack start {m} \1 --sub \2"),
    (re.compile(r"use retry_phase\(\) for a failed phase"), "retry a failed phase: migratrack retry {m} {p}"),
    (re.compile(rf"call approve_phase\({_ID}, by=\.\.\.\) \(or 'migratrack approve'\)"),
     r"approve it first: migratrack approve {m} \1"),
    (re.compile(r"initialize_migration\(\.\.\., replace=True\)"), "migratrack init {m} PLAN.yaml --replace"),
]


def cli_message(exc: BaseException, params: Mapping[str, Any], ids: Callable[[], Sequence[str]] | None = None) -> str:
    """``exc`` as a CLI user reads it: the command to type, close matches for an unknown id."""
    m = str(params.get("migration") or "ID")
    p = str(params.get("phase") or "PHASE")
    text = str(exc)
    for pattern, replacement in _HINTS:
        text = pattern.sub(replacement.replace("{m}", m.replace("\\", "\\\\")).replace("{p}", p.replace("\\", "\\\\")),
                           text)
    if isinstance(exc, MigrationNotFound) or (isinstance(exc, NotFound) and "does not exist" in text
                                               and "migration" in text):
        missing = getattr(exc, "migration_id", None) or m
        known: Sequence[str] = []
        if ids is not None:
            try:
                known = ids()
            except Exception:  # a hint must never hide the error itself
                known = []
        close = difflib.get_close_matches(str(missing), list(known), n=3, cutoff=0.6)
        if close:
            text += "\ndid you mean " + " or ".join(repr(c) for c in close) + "?"
        text += "\n`migratrack list` shows the migrations in this store"
        if "migratrack init" not in text:
            text += f"; `migratrack init {missing} PLAN.yaml` creates one"
    elif isinstance(exc, PhaseNotFound) or "has no phase" in text:
        known_phases = re.search(r"known phases: (.*)$", text)
        missing = getattr(exc, "phase_id", None) or p
        if known_phases:
            close = difflib.get_close_matches(str(missing), known_phases.group(1).split(", "), n=3, cutoff=0.6)
            if close:
                text += "\ndid you mean " + " or ".join(repr(c) for c in close) + "?"
        text += f"\n`migratrack status {m}` shows its phases"
    return text


def _report(message: str) -> None:
    from migratrack.cli.common import err_console, safe

    # soft_wrap: a long message stays one line for a log or a pipe, never cut mid-sentence at 80 columns
    first, *more = message.split("\n")
    err_console.print("[bold red]error:[/]", escape(safe(first)), highlight=False, soft_wrap=True)
    for line in more:
        err_console.print("  " + escape(safe(line)), highlight=False, soft_wrap=True)


#: how a command lists the migrations it could have meant (set by cli.main: it knows the store)
list_ids: Callable[[Any], Sequence[str]] | None = None
#: commands that by nature administer a store or run a process on one, and why --url does not apply
#: (every other command works on a store or through a server alike)
STORE_ONLY: dict[str, str] = {
    "serve": "it runs a server on a store",
    "rekey": "it rewrites every record of a store with a new key",
    "encrypt-store": "it rewrites every record of a store with a key",
    "upgrade-store": "it upgrades a store's layout in place",
    "dispatch": "it is the alert daemon of a store; a server dispatches its own alerts",
    "demo": "it runs a simulated migration in a store of its own",
}


def command_path(ctx: Context) -> str:
    """The command as the user typed it after ``migratrack`` (``token list``), however the program
    was started (``migratrack``, ``python -m migratrack.cli``: the root's name may be several words)."""
    names: list[str] = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


def _plain_params(params: Sequence[Any]) -> None:
    for param in params:
        if isinstance(param, Option) and (param.is_flag or param.name in ("install_completion", "show_completion")):
            param.metavar = ""  # a flag takes no value: no "<bool>" beside it
        elif isinstance(param, Argument) and param.metavar is None and param.name:
            param.metavar = param.name.upper()


class Command(TyperCommand):
    """Every ``migratrack`` command: errors end it with a message and an exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_params(self.params)

    def get_help_option(self, ctx: Context) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, Argument):
                name = param.metavar or (param.name or "").upper()
                name += "..." if param.nargs != 1 else ""
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def invoke(self, ctx: Context) -> Any:
        path = command_path(ctx)
        server = getattr(ctx.find_root().obj, "url", None)
        if path in STORE_ONLY and server and not ctx.params.get("storage"):
            # not silently the default store while the user named a server
            _report(f"`migratrack {path}` works on a store, not through the server {server} ({STORE_ONLY[path]}): "
                    "give --storage (the store's URL), or run it without --url and MIGRATRACK_URL")
            raise typer.Exit(int(ExitCode.USAGE))
        try:
            return super().invoke(ctx)
        except MigratrackError as exc:
            ids = (lambda: list_ids(ctx)) if list_ids is not None else None
            _report(cli_message(exc, ctx.params, ids))
            raise typer.Exit(int(exit_code(exc))) from None


class Group(TyperGroup):
    """The ``migratrack`` group: usage errors as one plain line when stderr is not a terminal."""

    def get_params(self, ctx: Context) -> Any:
        params = super().get_params(ctx)
        _plain_params(params)  # Typer adds its completion options after __init__
        return params

    def get_help_option(self, ctx: Context) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError" or sys.stderr.isatty():
                raise
            exc.show()
            raise typer.Exit(exc.exit_code) from None
        except MigratrackError as exc:  # raised outside a command (a group's callback)
            _report(cli_message(exc, ctx.params))
            raise typer.Exit(int(exit_code(exc))) from None


def use_everywhere(app: Any) -> None:
    """Make every command registered on ``app`` (and its sub-groups) a :class:`Command`."""
    for info in app.registered_commands:
        if _unset(info.cls, TyperCommand):  # a module's own command class is left as it is
            info.cls = Command
    for group in app.registered_groups:
        if _unset(group.cls, TyperGroup):
            group.cls = Group
        sub = group.typer_instance
        if sub is not None:
            if _unset(sub.info.cls, TyperGroup):
                sub.info.cls = Group
            use_everywhere(sub)


def _unset(cls: Any, default: type) -> bool:
    # Typer marks a class not given with a DefaultPlaceholder (or None), or names its own default
    return cls is None or cls is default or isinstance(cls, DefaultPlaceholder)
