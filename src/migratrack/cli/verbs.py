"""The command line's verbs for the commands of ``core/commands.py``, built from its table.

Each verb takes the migration, the phase when the command has one, the command's arguments
(positional when the class lists them in ``cli_arguments``, options otherwise), and ``--sub``
when the verb also exists for a sub-task. It runs through a tracker, so it reaches a store or a
server (``--url``) alike and waits out a pause before it starts work, as a script would.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import typer
from pydantic.fields import FieldInfo
from rich.markup import escape

from migratrack.cli.common import MigrationArg, PhaseArg, StorageOpt, SubOpt, console, open_tracker, safe
from migratrack.core.commands import ADDRESS_FIELDS, COMMANDS, Command, Target

#: this module's commands; cli.main adds them to `migratrack`
app = typer.Typer()



def _help(f: Field[Any], hint: Any) -> str | None:
    metadata = get_args(hint)[1:] if get_origin(hint) is Annotated else ()
    return next((m.description for m in metadata if isinstance(m, FieldInfo) and m.description), None)


def _parameter(cls: type[Command], f: Field[Any], hints: dict[str, Any]) -> inspect.Parameter:
    hint = hints[f.name]
    base = get_args(hint)[0] if get_origin(hint) is Annotated else hint
    required = f.default is MISSING
    info: Any = (typer.Argument(help=_help(f, hint)) if f.name in cls.cli_arguments
                 else typer.Option(f"--{f.name.replace('_', '-')}", help=_help(f, hint)))
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[base, info],
                             default=inspect.Parameter.empty if required else f.default)


def _verb(main: type[Command], sub: type[Command] | None) -> Callable[..., None]:
    """One CLI verb: ``main`` (a phase or migration command), or ``sub`` with ``--sub``."""
    hints = get_type_hints(main, include_extras=True)
    own = [f for f in fields(main) if f.name not in ADDRESS_FIELDS]
    if sub is not None and [f.name for f in fields(sub) if f.name not in ADDRESS_FIELDS] != [f.name for f in own]:
        raise TypeError(f"{main.__name__} and {sub.__name__} must take the same arguments to share a verb")
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("ctx", kw, annotation=typer.Context),
              inspect.Parameter("migration", kw, annotation=MigrationArg)]
    if main.target is Target.PHASE:
        params.append(inspect.Parameter("phase", kw, annotation=PhaseArg))
    params += [_parameter(main, f, hints) for f in own if f.name in main.cli_arguments]
    params.append(inspect.Parameter("storage", kw, annotation=StorageOpt, default=None))
    if sub is not None:
        params.append(inspect.Parameter("sub", kw, annotation=SubOpt, default=None))
    params += [_parameter(main, f, hints) for f in own if f.name not in main.cli_arguments]

    def run(ctx: typer.Context, migration: str, storage: str | None = None, phase: str | None = None,
            sub_task: str | None = None, **arguments: Any) -> None:
        address = {} if phase is None else {"phase": phase}
        cls = main
        if sub_task is not None and sub is not None:
            cls, address["sub_task"] = sub, sub_task
        with open_tracker(ctx, migration, storage) as t:
            if "by" in arguments and arguments["by"] is None:
                arguments["by"] = t.actor  # said here, so that the reply can name who
            t.execute(cls(**address, **arguments))
            if cls.cli_reply:
                o = t.get_overview()
                eta = (o.estimated_completion.astimezone().strftime("%Y-%m-%d %H:%M")
                       if o.estimated_completion else "unknown")
                reply = cls.cli_reply.format(migration=migration, status=o.status.value, eta=eta, **address,
                                             **arguments)
                console.print(escape(safe(reply)), highlight=False)

    def verb(**kwargs: Any) -> None:
        run(sub_task=kwargs.pop("sub", None), **kwargs)

    verb.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    verb.__annotations__ = {p.name: p.annotation for p in params}
    verb.__doc__ = f"{main.cli_help or main.summary}\n\nExample: {_example(main)}"
    verb.__name__ = main.verb
    return verb


_SAMPLE = {"error": "'disk full'", "reason": "'not needed this time'", "minutes": "90", "by": "alice"}
#: where a verb's example reads better with its own value
_SAMPLE_OF = {("pause", "reason"): "'maintenance window'", ("cancel", "reason"): "'rolled back'",
              ("throttle", "reason"): "'S3 slow-down'"}


def _example(main: type[Command]) -> str:
    """A command line for the verb's --help, built from its fields."""
    words = ["migratrack", main.verb, "orders-2026"]
    if main.target is Target.PHASE:
        words.append("copy-orders")
    for f in fields(main):
        if f.name in ADDRESS_FIELDS:
            continue
        if f.name in main.cli_arguments:
            words.append(_SAMPLE_OF.get((main.verb, f.name)) or _SAMPLE.get(f.name, f.name.upper()))
        elif f.default is MISSING or f.name in ("by", "reason"):
            words += [f"--{f.name.replace('_', '-')}",
                      _SAMPLE_OF.get((main.verb, f.name)) or _SAMPLE.get(f.name, f.name.upper())]
    return " ".join(words)


def _register() -> None:
    by_verb: dict[str, list[type[Command]]] = {}
    for cls in COMMANDS:
        by_verb.setdefault(cls.verb, []).append(cls)
    for verb, classes in by_verb.items():
        main = next(c for c in classes if c.target is not Target.SUB_TASK)
        sub = next((c for c in classes if c.target is Target.SUB_TASK), None)
        app.command(verb)(_verb(main, sub))


_register()
