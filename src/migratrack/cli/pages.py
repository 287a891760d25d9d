"""`migratrack summary` and `migratrack sub-tasks`: reads that cost what they show, for
migrations too big for the whole dashboard."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from migratrack.cli.common import (
    MigrationArg,
    PhaseArg,
    StorageOpt,
    console,
    json_safe,
    safe,
)
from migratrack.cli.readers import reader
from migratrack.core.states import Status

#: this module's commands; cli.main adds them to `migratrack`
app = typer.Typer()


@app.command()
def summary(
    ctx: typer.Context,
    migration: MigrationArg,
    storage: StorageOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Every phase with its sub-tasks counted by status (cheap on any size of migration).

    Example: migratrack summary orders-db --json"""
    with reader(ctx, storage) as svc:
        s = svc.summary(migration)
    if as_json:
        sys.stdout.write(json_safe(s.model_dump_json(indent=2)) + "\n")
        return
    table = Table(title=safe(f"{s.name} ({s.status.value})"))
    for column in ("phase", "status", "progress", "sub-tasks", "done", "running", "failed", "pending"):
        table.add_column(column)
    for p in s.phases:
        c = p.sub_task_counts
        table.add_row(safe(p.id), p.condition.value, f"{p.progress:.1f}%", str(p.sub_tasks),
                      str(c.get("completed", 0) + c.get("skipped", 0)), str(c.get("in_progress", 0)),
                      str(c.get("failed", 0)), str(c.get("pending", 0)))
    console.print(table)


@app.command("sub-tasks")
def sub_tasks(
    ctx: typer.Context,
    migration: MigrationArg,
    phase: PhaseArg,
    storage: StorageOpt = None,
    status: Annotated[Status | None, typer.Option(help="only sub-tasks in this status")] = None,
    after: Annotated[str | None, typer.Option(help="start after this sub-task (a page's next_after)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print the page as JSON")] = False,
) -> None:
    """One phase's sub-tasks, a page at a time, optionally only those in one status.

    Example: migratrack sub-tasks orders-db copy --status failed"""
    with reader(ctx, storage) as svc:
        page = svc.sub_tasks(migration, phase, status=None if status is None else status.value, after=after,
                             limit=limit)
    if as_json:
        sys.stdout.write(json_safe(page.model_dump_json(indent=2)) + "\n")
        return
    for s in page.items:
        error = f"  {s.error}" if s.error else ""
        sys.stdout.write(safe(f"{s.id:<32} {s.status.value:<12} {s.progress:6.1f}%{error}") + "\n")
    if page.next_after is not None:
        sys.stdout.write(safe(f"... more: --after {page.next_after}") + "\n")
