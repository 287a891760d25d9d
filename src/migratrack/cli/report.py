"""Commands for shell-script migrations: declare a plan, report progress, honour pause."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from migratrack.cli.common import MigrationArg, PhaseArg, StorageOpt, SubOpt, console, open_tracker, safe
from migratrack.errors import MigrationCancelled
from migratrack.sdk.plan import load_plan

#: this module's commands; cli.main adds them to `migratrack`
app = typer.Typer()



@app.command()
def init(
    ctx: typer.Context,
    migration: MigrationArg,
    plan: Annotated[Path, typer.Argument(help="YAML or JSON plan file")],
    storage: StorageOpt = None,
    name: Annotated[str | None, typer.Option(help="display name (default: the plan's name)")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="discard an existing migration of this id")] = False,
    estimates_from: Annotated[str | None, typer.Option(
        "--estimates-from", help="take each phase's estimate from a past run of the same plan (its active time)")]
    = None,
) -> None:
    """Create a migration from a plan file (resumes it if it exists with the same plan).

    Example: migratrack init orders-2026 plan.yaml --estimates-from rehearsal-1"""
    from migratrack.cli.history import estimates_from as past_estimates

    with open_tracker(ctx, migration, storage) as t:
        if estimates_from is None:
            created = t.initialize_migration(plan, name=name, replace=replace)
        else:
            p = load_plan(plan)
            phases, notes = past_estimates(p.phases, t.backend.dashboard(estimates_from, alerts=0))
            created = t.initialize_migration(phases, name=name or p.name, replace=replace, metadata=p.metadata)
            for note in notes:
                console.print(escape(safe(f"estimate from {estimates_from}: {note}")), highlight=False)
    console.print(escape(safe(f"{migration}: {'created' if created else 'exists with the same plan; resumed'}")),
                  highlight=False)


@app.command("check-plan")
def check_plan(
    plan: Annotated[Path, typer.Argument(help="YAML or JSON plan file")],
    graph: Annotated[bool, typer.Option("--graph", help="print the dependency graph and the critical path")] = False,
) -> None:
    """Validate a plan file without storing anything: every problem at once, each with its line.

    Example: migratrack check-plan plan.yaml --graph"""
    from migratrack.core.graph import critical_path, longest_finish
    from migratrack.core.models import build_state
    from migratrack.service import utc_now

    p = load_plan(plan)
    state = build_state("check", p.phases, utc_now(), p.name)
    deps = {pid: ph.dependencies for pid, ph in state.phases.items()}
    finish = longest_finish(deps, lambda pid: state.phases[pid].estimated_seconds or 0.0)
    path = critical_path(deps, finish)
    subs = sum(len(ph.sub_tasks) for ph in state.phases.values())
    console.print(escape(safe(f"{plan}: {len(state.phases)} phases, {subs} sub-tasks, valid")), highlight=False,
                  soft_wrap=True)
    if graph:
        from migratrack.cli.history import graph_lines

        sys.stdout.write("\n".join(graph_lines(p.phases)) + "\n")
    elif any(finish.values()):
        console.print(escape(safe(f"planned duration {max(finish.values()) / 60:g} min along {' -> '.join(path)}")),
                      highlight=False, soft_wrap=True)


@app.command()
def progress(
    ctx: typer.Context,
    migration: MigrationArg,
    phase: PhaseArg,
    value: Annotated[float | None, typer.Argument(help="percent, 0-100")] = None,
    storage: StorageOpt = None,
    sub: SubOpt = None,
    done: Annotated[int | None, typer.Option(help="items done so far")] = None,
    total: Annotated[int | None, typer.Option(help="items in all")] = None,
    metadata: Annotated[str | None, typer.Option(help="a JSON object merged into the phase's metadata")] = None,
) -> None:
    """Report progress as a percentage or as --done/--total counts.

    Example: migratrack progress orders-2026 copy-orders --done 1200 --total 50000"""
    try:
        meta = json.loads(metadata) if metadata else None
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON ({exc}); give an object such as '{{\"table\": \"orders\"}}'",
                                 param_hint="--metadata") from None
    if meta is not None and not isinstance(meta, dict):
        raise typer.BadParameter("must be a JSON object such as '{\"table\": \"orders\"}'", param_hint="--metadata")
    with open_tracker(ctx, migration, storage) as t:
        if sub:
            if value is None:
                raise typer.BadParameter("a sub-task takes a percentage")
            t.update_sub_task_progress(phase, sub, value)
        else:
            t.update_phase_progress(phase, value, meta, done=done, total=total)


@app.command()
def alert(
    ctx: typer.Context,
    migration: MigrationArg,
    level: Annotated[str, typer.Argument(help="info, warning, error or critical")],
    message: Annotated[str, typer.Argument(help="the alert's text")],
    storage: StorageOpt = None,
    phase: Annotated[str | None, typer.Option(help="the phase it concerns")] = None,
) -> None:
    """Record an alert (info, warning, error or critical).

    Example: migratrack alert orders-2026 warning "replica lag above 30s" --phase copy-orders"""
    with open_tracker(ctx, migration, storage) as t:
        t.create_alert(level, message, phase)
    console.print(escape(safe(f"{migration}: {level} alert recorded" + (f" (phase {phase})" if phase else ""))),
                  highlight=False, soft_wrap=True)


@app.command()
def checkpoint(
    ctx: typer.Context,
    migration: MigrationArg,
    storage: StorageOpt = None,
    poll: Annotated[float, typer.Option(help="seconds between looks while paused")] = 2.0,
) -> None:
    """Wait while the migration is paused; exit 3 if it was cancelled.

    Example: migratrack checkpoint orders-2026 || exit"""
    t = open_tracker(ctx, migration, storage, poll_interval=poll)
    try:
        t.backend.control(migration)  # an unreachable store or server is an error here, not "not paused"
        t.checkpoint()
    except MigrationCancelled as exc:
        console.print(f"[bold magenta]{escape(safe(exc))}[/]")
        raise typer.Exit(3) from None  # ExitCode.CANCELLED
    finally:
        t.close()
