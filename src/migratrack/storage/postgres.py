"""``postgresql://`` (and ``postgres://``): the relational store many workers share.

psycopg 3 with a connection pool. Tables are prefixed ``mt_``; the schema version lives in
``mt_meta``. Each migration's row in ``mt_migrations`` carries its event counter (``seq``) and
is the migration's lock:

* hot path — one statement: lock the migration row (``FOR NO KEY UPDATE``), max-merge the
  phase or sub-task row (or add to the counters), bump ``seq``, insert the event and
  ``pg_notify`` the change feed — all in one autocommit statement, one round trip;
* cold path — one transaction that takes ``SELECT … FOR UPDATE`` on the migration row, loads,
  runs the pure rules and writes. Hot-path statements queue behind that lock, so a transition
  never overwrites a concurrent max-merge, and events stay gap-free.

Operation ids (``mt_applied``) ride in the same statement: the merge runs only if the id is not
recorded, and an applied merge inserts it (``ON CONFLICT``). A statement's snapshot is taken
before it waits for the migration's row lock, so a duplicate that committed during that wait is
invisible to the check; the insert still meets it (``ON CONFLICT`` reads the latest rows), and
the statement then fails on purpose (a division by the number of ids it recorded: zero) and is
rolled back whole, and is run again, which now sees the duplicate. The cold path checks the id
after taking its lock, when every earlier write is visible.

Time: the server's ``clock_timestamp()``, read inside the write's own statement (the hot path)
or once under the migration's lock (the cold path), unless the caller gives a time. Not
``now()``: that is the time the transaction began, before the statement waited for the
migration's row lock, so a write that queued behind another would be stamped before the write
it followed. ``mt_migrations.updated_at`` is the time of the migration's last event, and every
write stamps ``GREATEST(updated_at, its time)``: event times never go back, whoever's clock is
behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import ConnectionPool, PoolTimeout

from migratrack.core.models import Alert, Event, Metrics, MigrationState, NewEvent, PhaseState, SubTaskState
from migratrack.core.rules import Change
from migratrack.core.states import Control
from migratrack.errors import (
    AlertNotFound,
    ConfigurationError,
    MigrationAlreadyExists,
    MigrationNotFound,
    SchemaVersionError,
    StorageError,
    StorageUnavailable,
)
from migratrack.storage import retry
from migratrack.storage.base import (
    Codec,
    MergeResult,
    PhaseScope,
    ProgressMerge,
    RequestRecord,
    Storage,
    SubTaskScope,
    TokenRecord,
    Versioned,
    check_kv,
    check_op_id,
    parse_duration,
)
from migratrack.storage.url import StoreURL, store_url_for

#: 2 added mt_applied (operation ids) and mt_requests (Idempotency-Keys)
SCHEMA_VERSION = 2
NOTIFY_CHANNEL = "mt_events"

#: the alert dispatcher's documents (see Storage.kv_get)
_KV_TABLE = """
CREATE TABLE IF NOT EXISTS mt_kv (
    kind text NOT NULL,
    key text NOT NULL,
    version bigint NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (kind, key)
);
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mt_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS mt_migrations (
    id text PRIMARY KEY,
    header text NOT NULL,
    control text NOT NULL,
    created_at timestamptz NOT NULL,
    ended_at timestamptz,
    updated_at timestamptz NOT NULL,
    seq bigint NOT NULL DEFAULT 0,
    alert_n bigint NOT NULL DEFAULT 0,
    successful_operations bigint NOT NULL DEFAULT 0,
    failed_operations bigint NOT NULL DEFAULT 0,
    total_data_migrated bigint NOT NULL DEFAULT 0,
    gauges text NOT NULL
);
CREATE INDEX IF NOT EXISTS mt_migrations_ended ON mt_migrations (ended_at) WHERE ended_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS mt_phases (
    migration_id text NOT NULL REFERENCES mt_migrations (id) ON DELETE CASCADE,
    id text NOT NULL,
    pos integer NOT NULL,
    status text NOT NULL,
    progress double precision NOT NULL,
    done bigint NOT NULL,
    total bigint,
    data text NOT NULL,
    PRIMARY KEY (migration_id, id)
);
CREATE TABLE IF NOT EXISTS mt_sub_tasks (
    migration_id text NOT NULL REFERENCES mt_migrations (id) ON DELETE CASCADE,
    phase_id text NOT NULL,
    id text NOT NULL,
    pos integer NOT NULL,
    status text NOT NULL,
    progress double precision NOT NULL,
    data text NOT NULL,
    PRIMARY KEY (migration_id, phase_id, id)
);
-- paged sub-task reads in plan order (a store made before it gets it with upgrade-store)
CREATE INDEX IF NOT EXISTS mt_sub_tasks_pos ON mt_sub_tasks (migration_id, phase_id, pos);
CREATE TABLE IF NOT EXISTS mt_events (
    migration_id text NOT NULL REFERENCES mt_migrations (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    ts text NOT NULL,
    actor text NOT NULL,
    type text NOT NULL,
    payload text NOT NULL,
    extra jsonb,
    PRIMARY KEY (migration_id, seq)
);
CREATE TABLE IF NOT EXISTS mt_alerts (
    migration_id text NOT NULL REFERENCES mt_migrations (id) ON DELETE CASCADE,
    id text NOT NULL,
    n bigint NOT NULL,
    level text NOT NULL,
    acknowledged boolean NOT NULL DEFAULT false,
    data text NOT NULL,
    PRIMARY KEY (migration_id, id)
);
CREATE INDEX IF NOT EXISTS mt_alerts_order ON mt_alerts (migration_id, n);
CREATE TABLE IF NOT EXISTS mt_tokens (
    id text PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    data text NOT NULL
);
-- applied operation ids, at the epoch seconds of their write's ts (no foreign key: a key check on
-- every hot-path write would cost; the migration's deletion deletes them)
CREATE TABLE IF NOT EXISTS mt_applied (
    migration_id text NOT NULL,
    op_id text NOT NULL,
    applied_at double precision NOT NULL,
    PRIMARY KEY (migration_id, op_id)
);
CREATE INDEX IF NOT EXISTS mt_applied_at ON mt_applied (applied_at);
CREATE TABLE IF NOT EXISTS mt_requests (
    key text PRIMARY KEY,
    fingerprint text NOT NULL,
    claimed_at double precision NOT NULL,
    response text
);
CREATE INDEX IF NOT EXISTS mt_requests_at ON mt_requests (claimed_at);
""" + _KV_TABLE

_LOCK_ROW = "lk AS (SELECT id FROM mt_migrations WHERE id = %(m)s FOR NO KEY UPDATE)"

#: the write's time: the caller's (%(ts)s) or the server's clock when it is evaluated
_NOW = "COALESCE(%(ts)s::timestamptz, clock_timestamp())"
#: the same as epoch seconds (how operation ids are kept), and the dedupe window's start from it
_AT = f"extract(epoch FROM {_NOW})::float8"
_CUTOFF = f"({_AT} - %(window)s::float8)"
#: an event's time as the events table keeps it (UTC ISO text, as Python's isoformat() writes)
_ISO = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"

#: the operation id, if recorded within the window (none when %(op)s is NULL)
_DUP = f"""dup AS (
    SELECT 1 FROM mt_applied WHERE migration_id = %(m)s AND op_id = %(op)s::text AND applied_at >= {_CUTOFF}
)"""

#: record the operation id of an applied write; an expired record of it is replaced
_RECORD = f""", rec AS (
    INSERT INTO mt_applied (migration_id, op_id, applied_at)
    SELECT %(m)s, %(op)s::text, {_AT} FROM u WHERE %(op)s::text IS NOT NULL
    ON CONFLICT (migration_id, op_id) DO UPDATE SET applied_at = excluded.applied_at
        WHERE mt_applied.applied_at < {_CUTOFF}
    RETURNING 1
)"""

#: 1 / 0 (division_by_zero: the statement is rolled back) when the write was applied but its id
#: was recorded meanwhile by a duplicate this statement's snapshot could not see
_GUARD = ("(SELECT CASE WHEN %(op)s::text IS NOT NULL AND EXISTS (SELECT 1 FROM u) "
          "THEN 1 / (SELECT count(*) FROM rec) END)")

# the clock is read as the row is updated, under the migration's lock (lk): after any write
# this one queued behind
_SEQ_AND_EVENT = """
, mg AS (
    UPDATE mt_migrations SET seq = seq + 1, updated_at = GREATEST(updated_at, """ + _NOW + """)
    WHERE id = %(m)s AND EXISTS (SELECT 1 FROM u) RETURNING seq, updated_at
), ev AS (
    INSERT INTO mt_events (migration_id, seq, ts, actor, type, payload, extra)
    SELECT %(m)s, mg.seq, """ + _ISO.format("mg.updated_at") + """, %(actor)s, %(type)s, %(payload)s, {extra}
    FROM mg, u
    RETURNING seq
)
"""

#: sub-task progress tick: one statement
MERGE_SUB_SQL = (
    "WITH " + _LOCK_ROW + ", " + _DUP + """,
u AS (
    UPDATE mt_sub_tasks s SET progress = %(progress)s FROM lk
    WHERE s.migration_id = %(m)s AND s.phase_id = %(phase)s AND s.id = %(sub)s
      AND s.status = 'in_progress' AND s.progress < %(progress)s AND NOT EXISTS (SELECT 1 FROM dup)
    RETURNING s.progress
)""" + _RECORD + _SEQ_AND_EVENT.format(extra="NULL") + """
SELECT (SELECT seq FROM ev),
       (SELECT pg_notify('""" + NOTIFY_CHANNEL + """', %(m)s) FROM ev),
       (SELECT status FROM mt_sub_tasks WHERE migration_id = %(m)s AND phase_id = %(phase)s AND id = %(sub)s),
       (SELECT count(*) FROM lk),
       (SELECT count(*) FROM dup), """ + _GUARD + """
""")

# new done and new progress exactly as core.rules.merge_values computes them (float8 arithmetic)
_ND = "(GREATEST(p.done, %(done)s::bigint) + %(add)s::bigint)"
_NP = (f"GREATEST(p.progress, %(progress)s::float8, CASE WHEN p.total IS NULL OR NOT %(counted)s THEN 0.0::float8 "
       f"WHEN p.total = 0 THEN 100.0::float8 "
       f"ELSE LEAST(100.0::float8, ({_ND})::float8 * 100.0::float8 / p.total::float8) END)")

#: phase progress tick (percentage, done count or increment): one statement
MERGE_PHASE_SQL = (
    "WITH " + _LOCK_ROW + ", " + _DUP + f""",
u AS (
    UPDATE mt_phases p SET done = {_ND}, progress = {_NP} FROM lk
    WHERE p.migration_id = %(m)s AND p.id = %(phase)s AND p.status = 'in_progress'
      AND (p.total IS NULL OR NOT %(counted)s OR {_ND} <= p.total)
      AND ({_NP} <> p.progress OR {_ND} <> p.done) AND NOT EXISTS (SELECT 1 FROM dup)
    RETURNING p.progress, p.done, p.total
)""" + _RECORD + _SEQ_AND_EVENT.format(
        extra="jsonb_build_object('progress', u.progress, 'done', u.done, 'total', u.total)") + """
SELECT (SELECT seq FROM ev),
       (SELECT pg_notify('""" + NOTIFY_CHANNEL + """', %(m)s) FROM ev),
       (SELECT status FROM mt_phases WHERE migration_id = %(m)s AND id = %(phase)s),
       (SELECT count(*) FROM lk),
       (SELECT done FROM mt_phases WHERE migration_id = %(m)s AND id = %(phase)s),
       (SELECT total FROM mt_phases WHERE migration_id = %(m)s AND id = %(phase)s),
       (SELECT count(*) FROM dup), """ + _GUARD + """
""")

#: counter increment: one statement. Columns: the new counters (NULL for a duplicate), the
#: notification, the guard, then the counters as they were (a duplicate's answer)
INCREMENT_SQL = "WITH " + _DUP + """,
u AS (
    UPDATE mt_migrations SET successful_operations = successful_operations + %(so)s,
        failed_operations = failed_operations + %(fo)s, total_data_migrated = total_data_migrated + %(td)s,
        seq = seq + 1, updated_at = GREATEST(updated_at, """ + _NOW + """)
    WHERE id = %(m)s AND NOT EXISTS (SELECT 1 FROM dup)
    RETURNING seq, successful_operations, failed_operations, total_data_migrated, updated_at
)""" + _RECORD + """, ev AS (
    INSERT INTO mt_events (migration_id, seq, ts, actor, type, payload)
    SELECT %(m)s, u.seq, """ + _ISO.format("u.updated_at") + """, %(actor)s, 'metrics.updated', %(payload)s FROM u
    RETURNING seq
)
SELECT (SELECT successful_operations FROM u), (SELECT failed_operations FROM u),
       (SELECT total_data_migrated FROM u),
       (SELECT pg_notify('""" + NOTIFY_CHANNEL + """', %(m)s) FROM ev), """ + _GUARD + """,
       c.successful_operations, c.failed_operations, c.total_data_migrated
FROM mt_migrations c WHERE c.id = %(m)s
"""

_RETRYABLE = (pgerrors.AdminShutdown,)
#: a dropped connection is retried twice, after waits of up to 50 ms and 100 ms (full jitter):
#: the pool hands a fresh connection, and a fleet that lost its connections at once (a restart)
#: does not come back in step
_RECONNECT = retry.Backoff(first=0.05, cap=0.5, attempts=3)


def _epoch(value: datetime) -> float:
    return value.timestamp()


def _unavailable(exc: Exception) -> StorageUnavailable:
    return StorageUnavailable(f"PostgreSQL is unreachable or failed: {exc}; check the server and the storage URL")


class PostgresStorage(Storage):
    """The PostgreSQL store. URL options: ``?retention=30d`` (finished migrations are purged after
    this), ``?pool_size=10`` (connections per process); the rest goes to libpq."""

    schemes = ("postgresql", "postgres")
    embedded = False
    has_change_feed = True
    #: the server's clock_timestamp(), read inside the writes' statements (see the module docstring)
    has_clock = True

    def __init__(
        self,
        url: str | StoreURL = "postgresql://postgres@127.0.0.1/postgres",
        codec: Codec | None = None,
        *,
        retention: str | float | timedelta | None = None,
        pool_size: int | None = None,
        connect_timeout: float = 10.0,
        check_schema: bool = True,
        dedupe_window: str | float | timedelta | None = None,
        read_only: bool = False,
    ) -> None:
        location = store_url_for("postgresql", url)
        super().__init__(codec, dedupe_window=dedupe_window if dedupe_window is not None
                         else location.options.get("dedupe_window"), read_only=read_only)
        self.location = location
        #: the URL, its password masked: what messages show
        self.url = str(self.location)
        options = self.location.options
        if retention is None:
            retention = options.get("retention")
        self.retention = parse_duration(retention) if retention is not None else None
        size = pool_size or int(options.get("pool_size", "10"))
        self._purged_at = 0.0
        # the first prune of expired operation ids a minute after opening, not on the first write:
        # the hot path stays one statement
        self._ops_pruned_at = time.monotonic()
        self._conninfo = self.location.driver_url()
        self._pool = ConnectionPool(
            self._conninfo, min_size=1, max_size=max(1, size), open=False, timeout=connect_timeout,
            # read-only: every transaction is, so the server itself refuses a write
            kwargs={"autocommit": True, "options": "-c timezone=UTC" + (
                " -c default_transaction_read_only=on" if read_only else "")}, name="migratrack",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise StorageUnavailable(f"cannot connect to PostgreSQL at {self.url}: {exc}") from exc
        try:
            if check_schema and read_only:
                self._check_schema()
            elif check_schema:  # False only for `migratrack upgrade-store`
                self._migrate()
                self._maybe_purge()
        except BaseException:
            self._pool.close()
            raise

    # -- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise _unavailable(exc) from exc

    def _run(self, fn: Callable[[psycopg.Connection[Any]], Any], *,
             may_retry: Callable[[], bool] = lambda: True) -> Any:
        """Run ``fn`` on a pooled connection. A connection the server dropped (see
        ``_connection_dropped``) is replaced and ``fn`` retried, twice at most, after a back-off
        with full jitter, unless ``may_retry()`` says the attempt got far enough to have had
        effects (a transition whose rules ran)."""
        def attempt() -> Any:
            with self._conn() as conn:
                return fn(conn)

        def retry_if(exc: BaseException) -> bool:
            return isinstance(exc, psycopg.OperationalError) and may_retry() and (
                isinstance(exc, _RETRYABLE) or _connection_dropped(exc))

        try:
            return retry.call(attempt, _RECONNECT, retry_if=retry_if)
        except psycopg.OperationalError as exc:
            raise _unavailable(exc) from exc
        except pgerrors.ReadOnlySqlTransaction as exc:
            raise StorageError(f"the PostgreSQL store at {self.url} was opened read-only: it takes no writes") from exc

    def _check_schema(self) -> None:
        """Refuse a database without migratrack's tables, or with a newer schema (read-only: no DDL)."""
        def version(conn: psycopg.Connection[Any]) -> Any:
            found = conn.execute("SELECT to_regclass('mt_meta') IS NOT NULL").fetchone()
            if not (found and found[0]):
                return None
            return conn.execute("SELECT value FROM mt_meta WHERE key = 'schema_version'").fetchone()

        row = self._run(version)
        if row is None:
            raise ConfigurationError(f"no migratrack store in the PostgreSQL database at {self.url} "
                                     "(no mt_meta table); nothing was created")
        if int(row[0]) > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the PostgreSQL store has schema version {row[0]}, newer than this migratrack "
                f"understands ({SCHEMA_VERSION}); upgrade migratrack (pip install -U migratrack)")

    def _migrate(self) -> None:
        def go(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(7201)")  # one migrator at a time
                row = None
                found = conn.execute("SELECT to_regclass('mt_meta') IS NOT NULL").fetchone()
                if found and found[0]:
                    row = conn.execute("SELECT value FROM mt_meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    # DDL only on a store without a schema: CREATE INDEX locks its table, and run on
                    # every open it would deadlock with the writers of other processes
                    conn.execute(_SCHEMA)
                    conn.execute("INSERT INTO mt_meta VALUES ('schema_version', %s) ON CONFLICT (key) DO NOTHING",
                                 (str(SCHEMA_VERSION),))
                    return
                version = int(row[0])
                if version > SCHEMA_VERSION:
                    raise SchemaVersionError(
                        f"the PostgreSQL store has schema version {version}, newer than this migratrack "
                        f"understands ({SCHEMA_VERSION}); upgrade migratrack (pip install -U migratrack)"
                    )
                if version < SCHEMA_VERSION:
                    raise SchemaVersionError(
                        f"the PostgreSQL store has schema version {version}, older than this migratrack's "
                        f"({SCHEMA_VERSION}); run `migratrack upgrade-store --storage <url>` to upgrade it"
                    )
                # the dispatcher's documents came without a version bump: one table, no index
                # beside its key, made where missing (a catalog look-up, no lock, when present)
                kv = conn.execute("SELECT to_regclass('mt_kv') IS NOT NULL").fetchone()
                if not (kv and kv[0]):
                    conn.execute(_KV_TABLE)

        self._run(go)

    def upgrade(self) -> tuple[int, int]:
        """Bring an older schema to :data:`SCHEMA_VERSION`; returns (from, to)."""
        def go(conn: psycopg.Connection[Any]) -> tuple[int, int]:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(7201)")
                row = conn.execute("SELECT value FROM mt_meta WHERE key = 'schema_version'").fetchone()
                version = int(row[0]) if row else SCHEMA_VERSION
                if version > SCHEMA_VERSION:
                    raise SchemaVersionError(f"schema version {version} is newer than {SCHEMA_VERSION}; "
                                             f"upgrade migratrack")
                # version 0 (pre-release) lacked only the partial index on ended_at; version 1
                # lacked mt_applied and mt_requests: the schema script creates what is missing
                conn.execute(_SCHEMA)
                conn.execute("INSERT INTO mt_meta VALUES ('schema_version', %s) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))
                return version, SCHEMA_VERSION

        result: tuple[int, int] = self._run(go)
        return result

    def close(self) -> None:
        self._pool.close()

    # -- encode ----------------------------------------------------------------------------

    def _phase_row(self, migration_id: str, pos: int, p: PhaseState) -> tuple[Any, ...]:
        return (migration_id, p.id, pos, p.status.value, p.progress, p.done, p.total, self.phase_rest(migration_id, p))

    def _sub_row(self, migration_id: str, phase_id: str, pos: int, s: SubTaskState) -> tuple[Any, ...]:
        return (migration_id, phase_id, s.id, pos, s.status.value, s.progress,
                self.sub_task_rest(migration_id, phase_id, s))

    def _insert_events(self, conn: psycopg.Connection[Any], migration_id: str, first: int,
                       events: Sequence[NewEvent], last_time: datetime | None = None) -> int:
        """Append the events from seq ``first``, each stamped no earlier than the one before
        (``last_time``: the migration's last event time, read under its lock)."""
        if not events:
            return first - 1
        rows = []
        for i, e in enumerate(events):
            last_time = e.ts if last_time is None else max(last_time, e.ts)
            rows.append((migration_id, first + i, last_time.isoformat(), e.actor, e.type,
                         self.codec.dumps(e.payload, self.at_event(migration_id, e.type))))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO mt_events (migration_id, seq, ts, actor, type, payload) VALUES (%s, %s, %s, %s, %s, %s)",
                rows)
        last = first + len(events) - 1
        conn.execute("UPDATE mt_migrations SET seq = %s, updated_at = %s WHERE id = %s",
                     (last, last_time, migration_id))
        conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, migration_id))
        return last

    def _write_header(self, conn: psycopg.Connection[Any], state: MigrationState) -> None:
        conn.execute(
            "UPDATE mt_migrations SET header = %s, control = %s, ended_at = %s WHERE id = %s",
            (self.codec.dumps(state.header_dict(), self.at_header(state.id)), state.control.value,
             state.finished_at or state.cancelled_at, state.id),
        )

    def _write_metrics(self, conn: psycopg.Connection[Any], state: MigrationState) -> None:
        m = state.metrics
        conn.execute(
            "UPDATE mt_migrations SET successful_operations = %s, failed_operations = %s, "
            "total_data_migrated = %s, gauges = %s WHERE id = %s",
            (m.successful_operations, m.failed_operations, m.total_data_migrated,
             self.codec.dumps(m.gauges, self.at_gauges(state.id)), state.id),
        )

    # -- migrations ------------------------------------------------------------------------

    def create(self, state: MigrationState, events: Sequence[NewEvent], *, replace: bool = False) -> int:
        def go(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                if replace:
                    conn.execute("DELETE FROM mt_migrations WHERE id = %s", (state.id,))
                    conn.execute("DELETE FROM mt_applied WHERE migration_id = %s", (state.id,))
                m = state.metrics
                try:
                    conn.execute(
                        "INSERT INTO mt_migrations (id, header, control, created_at, updated_at, gauges, "
                        "successful_operations, failed_operations, total_data_migrated) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (state.id, self.codec.dumps(state.header_dict(), self.at_header(state.id)),
                         state.control.value, state.created_at, state.created_at,
                         self.codec.dumps(m.gauges, self.at_gauges(state.id)), m.successful_operations,
                         m.failed_operations, m.total_data_migrated),
                    )
                except pgerrors.UniqueViolation:
                    raise MigrationAlreadyExists(state.id) from None
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO mt_phases VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        [self._phase_row(state.id, i, p) for i, p in enumerate(state.phases.values())],
                    )
                    subs = [self._sub_row(state.id, p.id, j, s)
                            for p in state.phases.values() for j, s in enumerate(p.sub_tasks.values())]
                    if subs:
                        with cur.copy("COPY mt_sub_tasks (migration_id, phase_id, id, pos, status, progress, data) "
                                      "FROM STDIN") as copy:
                            for row in subs:
                                copy.write_row(row)
                return self._insert_events(conn, state.id, 1, events)

        result: int = self._run(go)
        return result

    def read_phases(self, ctx: Any, state: MigrationState, ids: Sequence[str] | None) -> None:
        sql = "SELECT id, status, progress, done, total, data FROM mt_phases WHERE migration_id = %s"
        args: list[Any] = [state.id]
        if ids is not None:
            if not ids:
                return
            sql += " AND id = ANY(%s)"
            args.append(list(ids))
        for pid, status, progress, done, total, data in ctx.execute(sql + " ORDER BY pos", args):
            state.phases[pid] = self.phase_of_row(state.id, pid, status, progress, done, total, data)

    def read_sub_tasks(self, ctx: Any, state: MigrationState, scope: str | tuple[str, str]) -> None:
        sql = "SELECT phase_id, id, status, progress, data FROM mt_sub_tasks WHERE migration_id = %s"
        args: tuple[str, ...] = (state.id,)
        if isinstance(scope, tuple):
            sql += " AND phase_id = %s AND id = %s"
            args += scope
        elif scope != "all":
            sql += " AND phase_id = %s"
            args += (scope,)
        with ctx.cursor() as cur:
            cur.execute(sql + " ORDER BY phase_id, pos", args)
            for pid, sid, status, progress, data in cur:
                phase = state.phases.get(pid)
                if phase is not None:
                    phase.sub_tasks[sid] = self.sub_task_of_row(state.id, pid, sid, status, progress, data)

    def _load(self, conn: psycopg.Connection[Any], migration_id: str, sub_tasks: SubTaskScope,
              *, for_update: bool = False, phases: PhaseScope = None) -> MigrationState:
        row = conn.execute(
            "SELECT header, successful_operations, failed_operations, total_data_migrated, gauges, seq, "
            "GREATEST(clock_timestamp(), updated_at) "
            "FROM mt_migrations WHERE id = %s" + (" FOR UPDATE" if for_update else ""), (migration_id,),
        ).fetchone()
        if row is None:
            raise MigrationNotFound(migration_id)
        state = MigrationState.from_header(self.codec.loads(row[0], self.at_header(migration_id)))
        state.metrics = Metrics(row[1], row[2], row[3], self.codec.loads(row[4], self.at_gauges(migration_id)))
        state.seq = row[5]
        state.as_of = row[6]  # a transition sets the write's own time, read under its lock
        self.assemble(conn, state, sub_tasks, phases)
        if state.partial:
            return state
        for level, n, unacked in conn.execute(
            "SELECT level, count(*), count(*) FILTER (WHERE NOT acknowledged) FROM mt_alerts "
            "WHERE migration_id = %s GROUP BY level", (migration_id,),
        ):
            state.alert_counts[level] = n
            state.unacknowledged_alerts += unacked
        return state

    def load(self, migration_id: str, *, sub_tasks: SubTaskScope = "all",
             phases: PhaseScope = None) -> MigrationState:
        def go(conn: psycopg.Connection[Any]) -> MigrationState:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                return self._load(conn, migration_id, sub_tasks, phases=phases)

        state: MigrationState = self._run(go)
        return state

    def exists(self, migration_id: str) -> bool:
        return bool(self._run(lambda c: c.execute("SELECT 1 FROM mt_migrations WHERE id = %s",
                                                  (migration_id,)).fetchone()))

    def list_ids(self) -> list[str]:
        rows = self._run(lambda c: c.execute("SELECT id FROM mt_migrations ORDER BY created_at, id").fetchall())
        return [r[0] for r in rows]

    def versions(self) -> dict[str, tuple[str, int]]:
        rows = self._run(lambda c: c.execute("SELECT id, created_at, seq FROM mt_migrations").fetchall())
        return {r[0]: (r[1].isoformat(), int(r[2])) for r in rows}

    def delete(self, migration_id: str) -> bool:
        n = self._run(lambda c: c.execute(
            "WITH a AS (DELETE FROM mt_applied WHERE migration_id = %(m)s) DELETE FROM mt_migrations WHERE id = %(m)s",
            {"m": migration_id}).rowcount)
        return bool(n)

    # -- writes ----------------------------------------------------------------------------

    def transact(
        self, migration_id: str, fn: Callable[[MigrationState], Change], *, sub_tasks: SubTaskScope = "all",
        op_id: str | None = None, ts: datetime | None = None, phases: PhaseScope = None,
    ) -> Change:
        ran = False  # the rules' callback may hold side effects: never run it twice
        if check_op_id(op_id) is not None:
            self._maybe_prune_ops(ts)
        # this process's transitions of the migration queue here, not each on a pooled connection
        # blocked in SELECT … FOR UPDATE: the connections stay free for the hot path and readers
        queue = self.queue_for(migration_id)

        def go(conn: psycopg.Connection[Any]) -> Change:
            nonlocal ran
            with conn.transaction():
                state = self._load(conn, migration_id, sub_tasks, for_update=True, phases=phases)
                # under the lock (and in a statement of its own, with a fresh snapshot): the
                # write's time after any write this one queued behind, and every earlier write
                # with this id visible
                row = conn.execute(
                    f"SELECT GREATEST({_NOW}, updated_at), updated_at, EXISTS (SELECT 1 FROM mt_applied "
                    f"WHERE migration_id = %(m)s AND op_id = %(op)s::text "
                    f"AND applied_at >= extract(epoch FROM GREATEST({_NOW}, updated_at)) - %(window)s::float8) "
                    f"FROM mt_migrations WHERE id = %(m)s",
                    {"ts": ts, "m": migration_id, "op": op_id, "window": self._window()}).fetchone()
                assert row is not None  # the row is locked: it exists
                at, last, seen = row
                if seen:
                    return Change(last_seq=state.seq)
                state.as_of = at
                ran = True
                change = fn(state)
                if change.empty:
                    change.last_seq = state.seq
                    return change
                if change.header:
                    self._write_header(conn, state)
                if change.metrics:
                    self._write_metrics(conn, state)
                with conn.cursor() as cur:
                    if change.phases:
                        cur.executemany(
                            "UPDATE mt_phases SET status = %s, progress = %s, done = %s, total = %s, data = %s "
                            "WHERE migration_id = %s AND id = %s",
                            [(r[3], r[4], r[5], r[6], r[7], migration_id, pid) for pid in change.phases
                             for r in [self._phase_row(migration_id, 0, state.phases[pid])]],
                        )
                    if change.sub_tasks:
                        cur.executemany(
                            "UPDATE mt_sub_tasks SET status = %s, progress = %s, data = %s "
                            "WHERE migration_id = %s AND phase_id = %s AND id = %s",
                            [(r[4], r[5], r[6], migration_id, pid, sid) for pid, sid in change.sub_tasks
                             for r in [self._sub_row(migration_id, pid, 0, state.phases[pid].sub_tasks[sid])]],
                        )
                    for a in change.new_alerts:
                        cur.execute(
                            "WITH n AS (UPDATE mt_migrations SET alert_n = alert_n + 1 WHERE id = %s "
                            "RETURNING alert_n) INSERT INTO mt_alerts (migration_id, id, n, level, acknowledged, "
                            "data) SELECT %s, %s, n.alert_n, %s, %s, %s FROM n",
                            (migration_id, migration_id, a.id, a.level.value, a.acknowledged_at is not None,
                             self.codec.dumps(a.to_dict(), self.at_alert(migration_id, a.id))),
                        )
                    if change.updated_alerts:
                        cur.executemany(
                            "UPDATE mt_alerts SET acknowledged = %s, data = %s WHERE migration_id = %s AND id = %s",
                            [(a.acknowledged_at is not None,
                              self.codec.dumps(a.to_dict(), self.at_alert(migration_id, a.id)), migration_id, a.id)
                             for a in change.updated_alerts],
                        )
                change.last_seq = self._insert_events(conn, migration_id, state.seq + 1, change.events, last)
                if op_id is not None:
                    conn.execute(
                        "INSERT INTO mt_applied (migration_id, op_id, applied_at) VALUES (%s, %s, %s) "
                        "ON CONFLICT (migration_id, op_id) DO UPDATE SET applied_at = excluded.applied_at",
                        (migration_id, op_id, _epoch(at)))
                return change

        with queue:
            change: Change = self._run(go, may_retry=lambda: not ran)
        if change.header:
            self._maybe_purge()
        return change

    def _window(self) -> float:
        return self.dedupe_window.total_seconds()

    def _op_params(self, op_id: str | None, ts: datetime | None) -> dict[str, Any]:
        return {"op": check_op_id(op_id), "ts": ts, "window": self._window()}

    def _sub_params(self, migration_id: str, phase_id: str, sub_task_id: str, progress: float,
                    ts: datetime | None, actor: str, op_id: str | None) -> dict[str, Any]:
        return {"m": migration_id, "phase": phase_id, "sub": sub_task_id, "progress": float(progress),
                "actor": actor, "type": "subtask.progress",
                "payload": self.codec.dumps({"phase": phase_id, "sub_task": sub_task_id, "progress": progress},
                                            self.at_event(migration_id, "subtask.progress")),
                **self._op_params(op_id, ts)}

    def _phase_params(self, migration_id: str, phase_id: str, progress: float | None, done: int | None,
                      add: int | None, ts: datetime | None, actor: str, op_id: str | None) -> dict[str, Any]:
        return {"m": migration_id, "phase": phase_id, "progress": float(progress or 0.0), "done": done or 0,
                "add": add or 0, "counted": done is not None or bool(add), "actor": actor,
                "type": "phase.progress",
                "payload": self.codec.dumps({"phase": phase_id}, self.at_event(migration_id, "phase.progress")),
                **self._op_params(op_id, ts)}

    @staticmethod
    def _sub_result(migration_id: str, row: Any) -> MergeResult:
        if not row[3]:
            raise MigrationNotFound(migration_id)
        if row[4]:  # the id was applied before
            return MergeResult.STALE
        if row[0] is not None:
            return MergeResult.APPLIED
        return MergeResult.STALE if row[2] == "in_progress" else MergeResult.FALLBACK

    @staticmethod
    def _phase_result(migration_id: str, row: Any, done: int | None, add: int | None) -> MergeResult:
        if not row[3]:
            raise MigrationNotFound(migration_id)
        if row[6]:  # the id was applied before
            return MergeResult.STALE
        if row[0] is not None:
            return MergeResult.APPLIED
        if row[2] != "in_progress":
            return MergeResult.FALLBACK
        counted = done is not None or bool(add)
        over = row[5] is not None and counted and max(row[4], done or 0) + (add or 0) > row[5]
        return MergeResult.FALLBACK if over else MergeResult.STALE

    def _hot_run(self, fn: Callable[[psycopg.Connection[Any]], Any], op_ids: bool) -> Any:
        """``_run`` for a hot-path write; when it carries operation ids, run it again after the
        guard rolled it back (a duplicate committed while it waited for the lock). At once, not
        after a back-off: the duplicate has committed, so the next run sees it and answers without
        writing; there is nothing to wait for and no contention to spread out."""
        if op_ids:
            for _ in range(4):
                try:
                    return self._run(fn)
                except pgerrors.DivisionByZero:
                    continue
        return self._run(fn)

    def _maybe_prune_ops(self, ts: datetime | None) -> None:
        """Drop the operation ids and Idempotency-Keys older than the window, at most once a
        minute, measured by the writes' clock as the check is; called by writes that carry an id."""
        if time.monotonic() - self._ops_pruned_at < 60:
            return
        self._ops_pruned_at = time.monotonic()
        self._run(lambda c: c.execute(
            f"WITH a AS (DELETE FROM mt_applied WHERE applied_at < {_CUTOFF}) "
            f"DELETE FROM mt_requests WHERE claimed_at < {_CUTOFF}", {"ts": ts, "window": self._window()}))

    def store_time(self) -> datetime:
        row = self._run(lambda c: c.execute("SELECT clock_timestamp()").fetchone())
        at: datetime = row[0]
        return at

    def merge_progress(
        self, migration_id: str, phase_id: str, sub_task_id: str | None, *,
        progress: float | None, done: int | None, add: int | None, ts: datetime | None, actor: str,
        op_id: str | None = None,
    ) -> MergeResult:
        if op_id is not None:
            self._maybe_prune_ops(ts)
        if sub_task_id is not None:
            if progress is None:
                return MergeResult.FALLBACK
            params = self._sub_params(migration_id, phase_id, sub_task_id, progress, ts, actor, op_id)
            row = self._hot_run(lambda c: c.execute(MERGE_SUB_SQL, params).fetchone(), op_id is not None)
            return self._sub_result(migration_id, row)
        params = self._phase_params(migration_id, phase_id, progress, done, add, ts, actor, op_id)
        row = self._hot_run(lambda c: c.execute(MERGE_PHASE_SQL, params).fetchone(), op_id is not None)
        return self._phase_result(migration_id, row, done, add)

    #: merge_many is one transaction: all its merges are written, or none
    atomic_merge_many = True

    def merge_many(
        self, migration_id: str, merges: Sequence[ProgressMerge], *, ts: datetime | None, actor: str
    ) -> list[MergeResult]:
        """Every merge in one transaction, the statements pipelined: one round trip."""
        todo = [m for m in merges if m.sub_task_id is None or m.progress is not None]
        if not todo:
            return [MergeResult.FALLBACK] * len(merges)
        with_ids = any(m.op_id is not None for m in todo)
        if with_ids:
            self._maybe_prune_ops(ts)

        def go(conn: psycopg.Connection[Any]) -> list[Any]:
            with conn.pipeline(), conn.transaction():  # BEGIN, the merges and COMMIT in one flight
                cursors = [
                    conn.execute(MERGE_SUB_SQL, self._sub_params(migration_id, m.phase_id, m.sub_task_id,
                                                                 m.progress, ts, actor, m.op_id))
                    if m.sub_task_id is not None and m.progress is not None else
                    conn.execute(MERGE_PHASE_SQL, self._phase_params(migration_id, m.phase_id, m.progress, m.done,
                                                                     m.add, ts, actor, m.op_id))
                    for m in todo
                ]
            return [cur.fetchone() for cur in cursors]

        rows = iter(self._hot_run(go, with_ids))
        out: list[MergeResult] = []
        for m in merges:
            if m.sub_task_id is not None and m.progress is None:
                out.append(MergeResult.FALLBACK)
            elif m.sub_task_id is not None:
                out.append(self._sub_result(migration_id, next(rows)))
            else:
                out.append(self._phase_result(migration_id, next(rows), m.done, m.add))
        return out

    def increment_counters(
        self, migration_id: str, deltas: Mapping[str, int], *, ts: datetime | None, actor: str,
        op_id: str | None = None,
    ) -> dict[str, int]:
        if op_id is not None:
            self._maybe_prune_ops(ts)
        params = {
            "m": migration_id, "so": deltas.get("successful_operations", 0),
            "fo": deltas.get("failed_operations", 0), "td": deltas.get("total_data_migrated", 0),
            "actor": actor,
            "payload": self.codec.dumps({"increment": dict(deltas)}, self.at_event(migration_id, "metrics.updated")),
            **self._op_params(op_id, ts),
        }
        row = self._hot_run(lambda c: c.execute(INCREMENT_SQL, params).fetchone(), op_id is not None)
        if row is None:
            raise MigrationNotFound(migration_id)
        if row[0] is None:  # a duplicate: the counters as they are
            return {"successful_operations": row[5], "failed_operations": row[6], "total_data_migrated": row[7]}
        return {"successful_operations": row[0], "failed_operations": row[1], "total_data_migrated": row[2]}

    # -- reads -----------------------------------------------------------------------------

    def page_sub_tasks(self, migration_id: str, phase_id: str, *, status: str | None = None,
                       after: str | None = None, limit: int = 100) -> list[SubTaskState]:
        sql = "SELECT id, status, progress, data FROM mt_sub_tasks WHERE migration_id = %s AND phase_id = %s"
        args: list[Any] = [migration_id, phase_id]
        if status is not None:
            sql += " AND status = %s"
            args.append(status)
        if after is not None:
            sql += " AND pos > (SELECT pos FROM mt_sub_tasks WHERE migration_id = %s AND phase_id = %s AND id = %s)"
            args += [migration_id, phase_id, after]
        rows = self._run(lambda c: c.execute(sql + " ORDER BY pos LIMIT %s", [*args, limit]).fetchall())
        return [self.sub_task_of_row(migration_id, phase_id, sid, st, progress, data)
                for sid, st, progress, data in rows]

    def control(self, migration_id: str) -> Control:
        row = self._run(lambda c: c.execute("SELECT control FROM mt_migrations WHERE id = %s",
                                            (migration_id,)).fetchone())
        if row is None:
            raise MigrationNotFound(migration_id)
        return Control(row[0])

    def _event(self, migration_id: str, seq: int, ts: str, actor: str, typ: str, payload: str,
               extra: Any) -> Event:
        data = self.codec.loads(payload, self.at_event(migration_id, typ))
        if extra is not None:
            data.update(extra)
            data["progress"] = float(data["progress"])
        return Event(migration_id, seq, typ, datetime.fromisoformat(ts), actor, data)

    def events(self, migration_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        rows = self._run(lambda c: c.execute(
            "SELECT seq, ts, actor, type, payload, extra FROM mt_events WHERE migration_id = %s AND seq > %s "
            "ORDER BY seq LIMIT %s", (migration_id, after, limit)).fetchall())
        return [self._event(migration_id, *r) for r in rows]

    def count_alerts(self, migration_id: str) -> int:
        row = self._run(lambda c: c.execute(
            "SELECT (SELECT count(*) FROM mt_alerts WHERE migration_id = %s), "
            "EXISTS (SELECT 1 FROM mt_migrations WHERE id = %s)", (migration_id, migration_id)).fetchone())
        if not row[1]:
            raise MigrationNotFound(migration_id)
        return int(row[0])

    def events_of_types(self, migration_id: str, after: int, upto: int, types: Collection[str]) -> list[Event]:
        types = list(types)
        if not types or upto <= after:
            return []
        rows = self._run(lambda c: c.execute(
            "SELECT seq, ts, actor, type, payload, extra FROM mt_events WHERE migration_id = %s AND seq > %s "
            "AND seq <= %s AND type = ANY(%s) ORDER BY seq", (migration_id, after, upto, types)).fetchall())
        return [self._event(migration_id, *r) for r in rows]

    def alerts(self, migration_id: str, *, limit: int = 50, unacknowledged_only: bool = False) -> list[Alert]:
        sql = "SELECT id, data FROM mt_alerts WHERE migration_id = %s"
        if unacknowledged_only:
            sql += " AND NOT acknowledged"
        rows = self._run(lambda c: c.execute(sql + " ORDER BY n DESC LIMIT %s", (migration_id, limit)).fetchall())
        return [Alert.from_dict(self.codec.loads(r[1], self.at_alert(migration_id, r[0]))) for r in rows]

    def get_alert(self, migration_id: str, alert_id: str) -> Alert:
        row = self._run(lambda c: c.execute("SELECT data FROM mt_alerts WHERE migration_id = %s AND id = %s",
                                            (migration_id, alert_id)).fetchone())
        if row is None:
            raise AlertNotFound(alert_id)
        return Alert.from_dict(self.codec.loads(row[0], self.at_alert(migration_id, alert_id)))

    async def subscribe(
        self, migration_id: str, after: int = 0, *, poll_interval: float = 0.25
    ) -> AsyncIterator[Event]:
        """Every event after ``after``, then new ones as they are written: the writers'
        ``pg_notify`` wakes a ``LISTEN`` connection; a timer catches anything missed while it
        reconnects."""
        seq = after
        aconn: psycopg.AsyncConnection[Any] | None = None
        delays = retry.Delays(first=poll_interval, cap=5.0)
        try:
            while True:
                if aconn is None or aconn.closed:
                    try:
                        aconn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                        await aconn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                        delays.reset()
                    except psycopg.OperationalError:
                        aconn = None
                # listening before reading: a write after the read still wakes us
                async for event in self.stored_events(migration_id, seq):
                    yield event
                    seq = event.seq
                if aconn is None:
                    # polling until LISTEN works again; every reader of every server reconnects
                    # after a restart: spread out
                    await asyncio.sleep(delays.next())
                    continue
                try:
                    async for note in aconn.notifies(timeout=5.0):
                        if note.payload == migration_id:
                            break
                except psycopg.OperationalError:
                    await aconn.close()
                    aconn = None
        finally:
            if aconn is not None:
                await aconn.close()

    # -- retention ---------------------------------------------------------------------------

    def _maybe_purge(self) -> None:
        if self.retention is None or time.monotonic() - self._purged_at < 60:
            return
        self._purged_at = time.monotonic()
        self.purge_finished(datetime.now(UTC) - self.retention)

    def purge_finished(self, older_than: datetime) -> list[str]:
        rows = self._run(lambda c: c.execute(
            "WITH gone AS (DELETE FROM mt_migrations WHERE ended_at IS NOT NULL AND ended_at < %s "
            "RETURNING id, created_at), a AS (DELETE FROM mt_applied WHERE migration_id IN (SELECT id FROM gone)) "
            "SELECT id, created_at FROM gone", (older_than,)).fetchall())
        return [r[0] for r in sorted(rows, key=lambda r: (r[1], r[0]))]

    # -- Idempotency-Keys ----------------------------------------------------------------------

    def claim_request(self, key: str, fingerprint: str, *, ts: datetime) -> RequestRecord:
        check_op_id(key)
        self._maybe_prune_ops(ts)
        # one statement: a concurrent claim of the same key waits on the row and then reads ours
        row = self._run(lambda c: c.execute(
            """
            INSERT INTO mt_requests AS r (key, fingerprint, claimed_at) VALUES (%(k)s, %(f)s, %(at)s)
            ON CONFLICT (key) DO UPDATE SET
                fingerprint = CASE WHEN r.claimed_at < %(cutoff)s THEN excluded.fingerprint ELSE r.fingerprint END,
                response = CASE WHEN r.claimed_at < %(cutoff)s THEN NULL ELSE r.response END,
                claimed_at = CASE WHEN r.claimed_at < %(cutoff)s THEN excluded.claimed_at ELSE r.claimed_at END
            RETURNING fingerprint, response
            """, {"k": key, "f": fingerprint, "at": _epoch(ts), "cutoff": _epoch(self.dedupe_cutoff(ts))}).fetchone())
        return RequestRecord(row[0], None if row[1] is None else self.codec.loads(row[1], self.at_request(key)))

    def finish_request(self, key: str, fingerprint: str, response: Any, *, ts: datetime) -> None:
        text = self.codec.dumps(response, self.at_request(key))
        self._run(lambda c: c.execute("UPDATE mt_requests SET response = %s WHERE key = %s AND fingerprint = %s",
                                      (text, key, fingerprint)))

    # -- tokens ----------------------------------------------------------------------------

    def save_token(self, token: TokenRecord) -> None:
        self._run(lambda c: c.execute(
            "INSERT INTO mt_tokens VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
            "token_hash = excluded.token_hash, created_at = excluded.created_at, data = excluded.data",
            (token.id, token.token_hash, token.created_at, json.dumps(token.to_dict()))))

    def find_token(self, token_hash: str) -> TokenRecord | None:
        row = self._run(lambda c: c.execute("SELECT data FROM mt_tokens WHERE token_hash = %s",
                                            (token_hash,)).fetchone())
        return TokenRecord.from_dict(json.loads(row[0])) if row else None

    def list_tokens(self) -> list[TokenRecord]:
        rows = self._run(lambda c: c.execute("SELECT data FROM mt_tokens ORDER BY created_at, id").fetchall())
        return [TokenRecord.from_dict(json.loads(r[0])) for r in rows]

    # -- the alert dispatcher's documents --------------------------------------------------------

    def kv_get(self, kind: str, key: str) -> Versioned | None:
        check_kv(kind, key)
        row = self._run(lambda c: c.execute("SELECT version, value FROM mt_kv WHERE kind = %s AND key = %s",
                                            (kind, key)).fetchone())
        return None if row is None else Versioned(self.codec.loads(row[1], self.at_kv(kind, key)), int(row[0]))

    def kv_put(self, kind: str, key: str, value: Any, *, expected: int | None = None) -> int | None:
        check_kv(kind, key)
        args = {"k": kind, "key": key, "v": self.codec.dumps(value, self.at_kv(kind, key)), "e": expected}
        if expected is None:
            sql = ("INSERT INTO mt_kv AS t VALUES (%(k)s, %(key)s, 1, %(v)s) ON CONFLICT (kind, key) DO UPDATE "
                   "SET version = t.version + 1, value = excluded.value RETURNING version")
        elif expected == 0:
            sql = ("INSERT INTO mt_kv VALUES (%(k)s, %(key)s, 1, %(v)s) ON CONFLICT (kind, key) DO NOTHING "
                   "RETURNING version")
        else:
            sql = ("UPDATE mt_kv SET version = version + 1, value = %(v)s "
                   "WHERE kind = %(k)s AND key = %(key)s AND version = %(e)s RETURNING version")
        row = self._run(lambda c: c.execute(sql, args).fetchone())
        return None if row is None else int(row[0])

    def kv_list(self, kind: str, prefix: str = "", *, limit: int = 1000) -> list[tuple[str, Versioned]]:
        rows = self._run(lambda c: c.execute(
            "SELECT key, version, value FROM mt_kv WHERE kind = %s AND left(key, %s) = %s "
            "ORDER BY key COLLATE \"C\" LIMIT %s", (kind, len(prefix), prefix, limit)).fetchall())
        return [(r[0], Versioned(self.codec.loads(r[2], self.at_kv(kind, r[0])), int(r[1]))) for r in rows]

    def kv_delete(self, kind: str, key: str, *, expected: int | None = None) -> bool:
        check_kv(kind, key)
        cur = self._run(lambda c: c.execute(
            "DELETE FROM mt_kv WHERE kind = %s AND key = %s AND (%s::bigint IS NULL OR version = %s::bigint) "
            "RETURNING 1", (kind, key, expected, expected)).fetchone())
        return cur is not None


def _connection_dropped(exc: psycopg.OperationalError) -> bool:
    """The server dropped the connection: one that died while it sat in the pool (the statement
    never reached the server), or one that died under the statement, which may have committed
    before it did. Retrying is safe for reads and for writes that carry an operation id (the
    store applies each id once); a hot-path write without an id is applied at least once, as the
    contract says; a transition does not run its rules twice (``may_retry``)."""
    text = str(exc)
    return "terminating connection due to administrator command" in text or "connection is closed" in text or (
        "server closed the connection unexpectedly" in text)
