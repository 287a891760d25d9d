"""`migratrack report ID`: the report a team sends after a migration (Markdown, HTML or JSON)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from migratrack.cli.common import (
    MigrationArg,
    StorageOpt,
    err_console,
    json_safe,
)
from migratrack.cli.readers import reader
from migratrack.errors import ConfigurationError

#: this module's commands; cli.main adds them to `migratrack`
app = typer.Typer()


class Format(str, Enum):
    md = "md"
    html = "html"
    json = "json"


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _write(path: Path, content: str) -> None:
    """Write the whole file or nothing: a temporary file beside it, then a rename."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ConfigurationError(f"cannot write {path}: the folder {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a report is an ordinary file
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}") from None


@app.command("report")
def report(
    ctx: typer.Context,
    migration: MigrationArg,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="md, html (one self-contained file) or json")]
    = Format.md,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to this file instead of stdout")]
    = None,
    storage: StorageOpt = None,
) -> None:
    """Write a migration's report: summary, timeline, durations against estimates, errors and alerts,
    data moved and throughput over time, cost, and the audit log.

    Example: migratrack report db-move-2026 --format html -o db-move-2026.html
    """
    from migratrack.render.report import as_html, as_json, as_markdown, collect

    with reader(ctx, storage) as backend:
        data = collect(backend, migration, datetime.now(UTC))
    if fmt is Format.json:
        content = json_safe(json.dumps(as_json(data), indent=2, default=_default, allow_nan=False)) + "\n"
    elif fmt is Format.html:
        content = as_html(data)
    else:
        content = as_markdown(data)
    if output is None:
        sys.stdout.write(content)
        return
    _write(output, content)
    err_console.print(f"wrote the {fmt.value} report of {migration} to {output}", highlight=False, markup=False)
