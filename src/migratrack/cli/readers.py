"""The backend of a command that only reads: a store opened read-only, or the server (--url)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from migratrack.cli.common import cli_context, remote_url, storage_url
from migratrack.sdk.backend import Backend, close_backend
from migratrack.service import MigrationService
from migratrack.storage import open_storage


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
