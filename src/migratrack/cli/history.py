"""Past migrations for the next plan: `migratrack history`, the estimates a past run gives a new
one (`init --estimates-from`), and the plan's dependency graph (`check-plan --graph`)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer

from migratrack.cli.common import StorageOpt, console, safe
from migratrack.cli.display import human_duration
from migratrack.cli.readers import reader
from migratrack.core.graph import critical_path, longest_finish, topological_order
from migratrack.core.views import Dashboard
from migratrack.errors import InvalidInput, MigrationNotFound

#: this module's commands; cli.main adds them to `migratrack`
app = typer.Typer()


def _ratio(actual: float | None, planned: float | None) -> str:
    if actual is None or not planned:
        return "-"
    return f"{actual / planned:.2f}x"


def planned_seconds(d: Dashboard) -> float | None:
    """The plan's duration: the longest path of estimates through the dependency graph."""
    est = {p.id: p.estimated_seconds or 0.0 for p in d.phases}
    if not any(est.values()):
        return None
    return max(longest_finish({p.id: p.dependencies for p in d.phases}, lambda pid: est[pid]).values())


def migration_line(d: Dashboard) -> str:
    o = d.overview
    started = o.started_at.astimezone().strftime("%Y-%m-%d %H:%M") if o.started_at else "not started"
    planned = planned_seconds(d)
    return (f"{safe(o.migration_id):<28} {o.status.value:<10} {started:<16}  "
            f"took {human_duration(o.active_seconds if o.started_at else None):>9}  "
            f"planned {human_duration(planned):>9}  {_ratio(o.active_seconds if o.started_at else None, planned):>6}")


def phase_lines(d: Dashboard) -> list[str]:
    out = [f"{'phase':<28} {'status':<10} {'planned':>9} {'took':>9}  ratio  attempts"]
    for p in d.phases:
        out.append(f"{safe(p.id):<28} {p.status.value:<10} {human_duration(p.estimated_seconds):>9} "
                   f"{human_duration(p.actual_seconds):>9}  {_ratio(p.actual_seconds, p.estimated_seconds):>5}  "
                   f"{p.attempts}")
    return out


@app.command()
def history(
    ctx: typer.Context,
    migration: Annotated[str | None, typer.Argument(help="one migration: its phases, planned against taken")]
    = None,
    storage: StorageOpt = None,
) -> None:
    """List past migrations with their durations against their estimates (active time: paused
    time left out), or one migration's phases.

    Example: migratrack history rehearsal-1"""
    with reader(ctx, storage) as svc:
        if migration is not None:
            lines = [migration_line(svc.dashboard(migration, alerts=0)), "",
                     *phase_lines(svc.dashboard(migration, alerts=0))]
        else:
            lines = []
            for mid in svc.list_ids():
                try:
                    lines.append(migration_line(svc.dashboard(mid, alerts=0)))
                except MigrationNotFound:  # dropped meanwhile
                    continue
            if not lines:
                console.print("no migrations yet", highlight=False)
                return
    sys.stdout.write("\n".join(lines) + "\n")


def estimates_from(phases: Sequence[Mapping[str, Any]], past: Dashboard) -> tuple[list[dict[str, Any]], list[str]]:
    """The plan's phases with each estimate taken from the same phase's active time in a past
    run (a completed phase only), and one line per change."""
    taken = {p.id: p.actual_seconds for p in past.phases if p.status.value == "completed" and p.actual_seconds}
    out, notes = [], []
    for phase in phases:
        new = dict(phase)
        seconds = taken.get(str(phase["id"]))
        if seconds is not None:
            before = phase.get("estimated_duration")
            new["estimated_duration"] = seconds / 60.0
            notes.append(f"{phase['id']}: {'-' if before is None else f'{before:g} min'} -> {seconds / 60.0:.2f} min")
        out.append(new)
    if not notes:
        raise InvalidInput(f"migration {past.overview.migration_id!r} has no completed phase of this plan to take "
                           "estimates from")
    return out, notes


def graph_lines(phases: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each phase after the phases it waits for, its estimate, and the critical path marked."""
    deps = {str(p["id"]): [str(d) for d in p.get("dependencies") or []] for p in phases}
    minutes = {str(p["id"]): float(p.get("estimated_duration") or 0.0) for p in phases}
    gated = {str(p["id"]) for p in phases if p.get("requires_approval")}
    finish = longest_finish(deps, lambda pid: minutes[pid])
    path = critical_path(deps, finish) if any(minutes.values()) else []
    width = max(len(pid) for pid in deps)
    lines = ["dependency graph (* on the critical path):"]
    for pid in topological_order(deps):
        after = "after " + ", ".join(deps[pid]) if deps[pid] else "first"
        mark = "*" if pid in path else " "
        gate = "  [needs approval]" if pid in gated else ""
        lines.append(f"  {mark} {safe(pid):<{width}}  {minutes[pid]:>7g} min  {safe(after)}{gate}")
    if path:
        lines.append(f"critical path ({max(finish.values()):g} min): " + " -> ".join(safe(p) for p in path))
    return lines
