"""Store maintenance commands: purge (on a store or through a server), keygen, and the store-only
rekey, encrypt-store, upgrade-store."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

import typer

from migratrack.admin import duration_of
from migratrack.cli.common import StorageOpt, administer, console, safe, storage_url
from migratrack.core.models import NewEvent
from migratrack.core.rules import Change
from migratrack.errors import ConfigurationError
from migratrack.storage import Storage, open_storage
from migratrack.storage.url import parse_store_url

#: this module's commands; cli.main adds them to `migratrack`
app = typer.Typer()


@app.command()
def purge(
    ctx: typer.Context,
    older_than: Annotated[str, typer.Option("--older-than", help="age of finished migrations to drop: 30d, 12h, 90m")],
    storage: StorageOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be dropped, drop nothing")] = False,
) -> None:
    """Drop finished (completed or cancelled) migrations that ended longer ago than --older-than.

    Active migrations are never dropped. Stores can also expire them by themselves: add
    ?retention=30d to the storage URL. Through --url it needs an admin token (not limited to
    migrations), and the server logs who purged what.

    Example: migratrack purge --older-than 30d --dry-run"""
    from migratrack.settings import Settings

    duration_of(older_than, "--older-than")  # checked before any store or server is opened
    with administer(ctx, storage) as admin:
        done = admin.purge(older_than, dry_run=dry_run, actor=Settings.from_env().actor)
    ids = done.migration_ids
    verb = "would drop" if dry_run else "dropped"
    console.print(safe(f"{verb} {len(ids)} finished migration(s) that ended before "
                       f"{done.cutoff.astimezone(UTC):%Y-%m-%d %H:%M} UTC" + (": " + ", ".join(ids) if ids else "")),
                  markup=False, highlight=False)


@app.command()
def keygen() -> None:
    """Print a new random key for MIGRATRACK_ENCRYPTION_KEY (AES-256, base64).

    Example: migratrack keygen > key.txt"""
    try:
        from migratrack.storage.crypto import generate_key
    except ImportError as exc:
        raise ConfigurationError("encryption needs the cryptography package: pip install 'migratrack[crypto]'") from exc
    typer.echo(generate_key())


@app.command()
def rekey(
    storage: StorageOpt = None,
    migration: Annotated[list[str] | None, typer.Option("--migration", help="only these (repeatable)")] = None,
) -> None:
    """Rewrite migrations with the first key of MIGRATRACK_ENCRYPTION_KEY (the end of a key rotation).

    Set MIGRATRACK_ENCRYPTION_KEY=new,old first. Run it while no worker writes to the migrations
    it rewrites: each one is replaced whole (state, event log and alerts, same sequence numbers).

    Example: MIGRATRACK_ENCRYPTION_KEY=new,old migratrack rekey --storage redis://127.0.0.1:6379/0"""
    store = open_storage(storage_url(storage))
    try:
        ids = migration or store.list_ids()
        for mid in ids:
            n = rewrite(store, mid)
            console.print(f"{mid}: rewritten ({n} events)", markup=False, highlight=False)
        if not migration:
            console.print(f"alert dispatcher: {rewrite_documents(store)} documents rewritten", markup=False,
                          highlight=False)
    finally:
        store.close()


@app.command("encrypt-store")
def encrypt_store(
    storage: StorageOpt = None,
    migration: Annotated[list[str] | None, typer.Option("--migration", help="only these (repeatable)")] = None,
) -> None:
    """Encrypt a store written before MIGRATRACK_ENCRYPTION_KEY was set: every migration is
    rewritten with the key (plain values are read only while this runs).

    Set MIGRATRACK_ENCRYPTION_KEY first (`migratrack keygen` makes a key). Run it while no
    worker writes to the store.

    Example: MIGRATRACK_ENCRYPTION_KEY="$(migratrack keygen)" migratrack encrypt-store"""
    from migratrack.settings import Settings

    setting = Settings.from_env().encryption_key
    if not setting:
        raise ConfigurationError("set MIGRATRACK_ENCRYPTION_KEY first (make a key with `migratrack keygen`)")
    try:
        from migratrack.storage.crypto import EncryptingCodec, parse_keys
    except ImportError as exc:
        raise ConfigurationError("encryption needs the cryptography package: pip install 'migratrack[crypto]'") from exc
    store = open_storage(storage_url(storage), codec=EncryptingCodec(parse_keys(setting), allow_plaintext=True))
    try:
        for mid in migration or store.list_ids():
            n = rewrite(store, mid)
            console.print(f"{mid}: encrypted ({n} events)", markup=False, highlight=False)
        if not migration:
            console.print(f"alert dispatcher: {rewrite_documents(store)} documents encrypted", markup=False,
                          highlight=False)
    finally:
        store.close()


def rewrite(store: Storage, mid: str) -> int:
    """Replace one migration by a copy of itself, so every value is re-encoded by the store's codec."""
    state = store.load(mid)
    events: list[Any] = []
    while batch := store.events(mid, len(events), 1000):
        events += batch
    alerts = store.alerts(mid, limit=10**9)
    alerts.reverse()  # oldest first, as they were created
    store.create(state, [NewEvent(e.type, e.ts, e.actor, e.payload) for e in events], replace=True)
    if alerts:
        store.transact(mid, lambda _s: Change(new_alerts=alerts))
    return len(events)


def rewrite_documents(store: Storage) -> int:
    """Re-encode the alert dispatcher's documents (deliveries, silences, leases...) by the store's
    codec, each by compare-and-set so that a dispatcher's concurrent write wins; their number."""
    from migratrack.alerts.clocked import ESCALATED
    from migratrack.alerts.dispatcher import WATCH
    from migratrack.alerts.groups import GROUP
    from migratrack.alerts.outbox import BY_ALERT, DELIVERY, DUE, LEASE
    from migratrack.alerts.records import HEARTBEAT, SILENCE

    n = 0
    for kind in (DELIVERY, DUE, BY_ALERT, LEASE, GROUP, WATCH, ESCALATED, SILENCE, HEARTBEAT):
        try:
            found = store.kv_list(kind, limit=10**9)
        except NotImplementedError:
            return 0
        for key, doc in found:
            n += store.kv_put(kind, key, doc.value, expected=doc.version) is not None
    return n


@app.command("upgrade-store")
def upgrade_store(storage: StorageOpt = None) -> None:
    """Upgrade an older Redis key layout or PostgreSQL schema in place.

    Example: migratrack upgrade-store --storage postgresql://127.0.0.1/migrations"""
    url = storage_url(storage)
    parse_store_url(url)  # an unknown scheme or a malformed URL is an error, not "nothing to do"
    store = open_storage(url, check_schema=False) if url.split("://", 1)[0].lower() in _VERSIONED else None
    if store is None or not hasattr(store, "upgrade"):
        console.print("this store upgrades itself when it is opened; nothing to do")
        return
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    console.print(f"{url}: layout version {before} -> {after}", markup=False, highlight=False)


_VERSIONED = ("redis", "rediss", "redis+cluster", "postgresql", "postgres")
