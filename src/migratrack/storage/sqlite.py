"""``sqlite:///path.db``: the embedded default store.

WAL journal, ``synchronous=NORMAL``, every write in ``BEGIN IMMEDIATE`` so several processes on
one file serialise their writes instead of losing them; readers never block writers. The schema
is versioned in ``mt_meta``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from migratrack.core.models import (
    Alert,
    Event,
    Metrics,
    MigrationState,
    NewEvent,
    PhaseState,
    SubTaskState,
)
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

#: 2 added mt_applied (operation ids), mt_requests (Idempotency-Keys) and the last_op columns; a
#: file opened by this version gets them and is marked 2
SCHEMA_VERSION = 2

#: columns version 2 added to existing tables (ALTER TABLE appends them, as CREATE TABLE has them)
_ADDED_COLUMNS = {"mt_phases": ("last_op TEXT", "last_op_at REAL"), "mt_sub_tasks": ("last_op TEXT", "last_op_at REAL")}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mt_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mt_migrations (
    id TEXT PRIMARY KEY,
    header TEXT NOT NULL,
    control TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    updated_at TEXT NOT NULL,
    successful_operations INTEGER NOT NULL DEFAULT 0,
    failed_operations INTEGER NOT NULL DEFAULT 0,
    total_data_migrated INTEGER NOT NULL DEFAULT 0,
    gauges TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mt_phases (
    migration_id TEXT NOT NULL,
    id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    status TEXT NOT NULL,
    progress REAL NOT NULL,
    done INTEGER NOT NULL,
    total INTEGER,
    data TEXT NOT NULL,
    last_ts TEXT,
    last_actor TEXT,
    last_op TEXT,
    last_op_at REAL,
    PRIMARY KEY (migration_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mt_sub_tasks (
    migration_id TEXT NOT NULL,
    phase_id TEXT NOT NULL,
    id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    status TEXT NOT NULL,
    progress REAL NOT NULL,
    data TEXT NOT NULL,
    last_ts TEXT,
    last_actor TEXT,
    last_op TEXT,
    last_op_at REAL,
    PRIMARY KEY (migration_id, phase_id, id)
) WITHOUT ROWID;
-- paged sub-task reads in plan order (created on open, also in files made before it)
CREATE INDEX IF NOT EXISTS mt_sub_tasks_pos ON mt_sub_tasks (migration_id, phase_id, pos);
CREATE TABLE IF NOT EXISTS mt_events (
    migration_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- 1: payload is plain JSON written by a hot-path trigger (ids and numbers only)
    plain INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (migration_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mt_alerts (
    migration_id TEXT NOT NULL,
    id TEXT NOT NULL,
    n INTEGER NOT NULL,
    level TEXT NOT NULL,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    PRIMARY KEY (migration_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mt_alerts_order ON mt_alerts (migration_id, n);
CREATE TABLE IF NOT EXISTS mt_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL
);
-- applied operation ids (epoch seconds of the write's ts), kept for the dedupe window
CREATE TABLE IF NOT EXISTS mt_applied (
    migration_id TEXT NOT NULL,
    op_id TEXT NOT NULL,
    applied_at REAL NOT NULL,
    PRIMARY KEY (migration_id, op_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mt_applied_at ON mt_applied (applied_at);
-- the server's Idempotency-Keys: the request that first used each, and its answer
CREATE TABLE IF NOT EXISTS mt_requests (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    response TEXT
);
CREATE INDEX IF NOT EXISTS mt_requests_at ON mt_requests (claimed_at);
-- the alert dispatcher's documents (deliveries, lease, silences, ...); added without a version
-- bump: CREATE ... IF NOT EXISTS runs at every open
CREATE TABLE IF NOT EXISTS mt_kv (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""

#: what the hot path's triggers write as plain JSON (see _TRIGGERS and SQLiteStorage._plain_payload)
_PLAIN_EVENT_TYPES = frozenset({"phase.progress", "subtask.progress"})
_PLAIN_EVENT_KEYS = frozenset({"phase", "sub_task", "progress", "done", "total"})

_TRIGGERS = """
-- Triggers are re-created at every open, so a file always has this version's.
-- The hot path is one UPDATE statement (its own transaction); these triggers append its event
-- in the same statement. Cold-path writes use INSERT OR REPLACE and never fire them. Progress is
-- printed with 17 digits: json_object() alone keeps 15 and the event would disagree with the state.
-- An event's time is never before the one it follows (see _LAST_EVENT). Two scalar lookups of
-- the last event, not one joined subquery: each is one seek on the primary key, and the join
-- made the hot path a third slower.
DROP TRIGGER IF EXISTS mt_phase_progress_event;
CREATE TRIGGER mt_phase_progress_event AFTER UPDATE OF last_ts ON mt_phases
BEGIN
    INSERT INTO mt_events (migration_id, seq, ts, actor, type, payload, plain) VALUES (
        NEW.migration_id,
        (SELECT COALESCE(MAX(seq), 0) + 1 FROM mt_events WHERE migration_id = NEW.migration_id),
        MAX(NEW.last_ts, COALESCE((SELECT ts FROM mt_events WHERE migration_id = NEW.migration_id
                                   ORDER BY seq DESC LIMIT 1), '')),
        NEW.last_actor, 'phase.progress',
        json_object('phase', NEW.id, 'progress', json(printf('%!.17g', NEW.progress)),
                    'done', NEW.done, 'total', NEW.total), 1);
END;
DROP TRIGGER IF EXISTS mt_sub_task_progress_event;
CREATE TRIGGER mt_sub_task_progress_event AFTER UPDATE OF last_ts ON mt_sub_tasks
BEGIN
    INSERT INTO mt_events (migration_id, seq, ts, actor, type, payload, plain) VALUES (
        NEW.migration_id,
        (SELECT COALESCE(MAX(seq), 0) + 1 FROM mt_events WHERE migration_id = NEW.migration_id),
        MAX(NEW.last_ts, COALESCE((SELECT ts FROM mt_events WHERE migration_id = NEW.migration_id
                                   ORDER BY seq DESC LIMIT 1), '')),
        NEW.last_actor, 'subtask.progress',
        json_object('phase', NEW.phase_id, 'sub_task', NEW.id, 'progress', json(printf('%!.17g', NEW.progress))), 1);
END;
-- A hot-path UPDATE that carries an operation id sets last_op (it runs only if the id is not
-- recorded and young: see _merge); these record the id in the same statement. An expired
-- record of the same id is replaced.
DROP TRIGGER IF EXISTS mt_phase_op;
CREATE TRIGGER mt_phase_op AFTER UPDATE OF last_op ON mt_phases WHEN NEW.last_op IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO mt_applied (migration_id, op_id, applied_at)
    VALUES (NEW.migration_id, NEW.last_op, NEW.last_op_at);
END;
DROP TRIGGER IF EXISTS mt_sub_task_op;
CREATE TRIGGER mt_sub_task_op AFTER UPDATE OF last_op ON mt_sub_tasks WHEN NEW.last_op IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO mt_applied (migration_id, op_id, applied_at)
    VALUES (NEW.migration_id, NEW.last_op, NEW.last_op_at);
END;
"""

_PHASE_COLUMNS = "(migration_id, id, pos, status, progress, done, total, data, last_ts, last_actor)"
_SUB_COLUMNS = "(migration_id, phase_id, id, pos, status, progress, data, last_ts, last_actor)"
#: the hot path's duplicate check, in the UPDATE's WHERE (a write statement reads the latest rows)
_NOT_SEEN = "NOT EXISTS (SELECT 1 FROM mt_applied WHERE migration_id = :m AND op_id = :op AND applied_at >= :cutoff)"

#: record an operation id, unless it is recorded and young (then changes nothing: rowcount 0)
_CLAIM_OP = (
    "INSERT INTO mt_applied (migration_id, op_id, applied_at) VALUES (?, ?, ?) "
    "ON CONFLICT (migration_id, op_id) DO UPDATE SET applied_at = excluded.applied_at WHERE applied_at < ?"
)

#: the migration's last event (its seq and time); none for a migration without events. Event
#: times are UTC text of one width (``_ts_text``), so text order is time order: each event is
#: stamped at the later of its write's time and the last event's, and times never go back
#: along the sequence, whoever's clock is behind
_LAST_EVENT = "SELECT seq, ts FROM mt_events WHERE migration_id = :m ORDER BY seq DESC LIMIT 1"
_INSERT_EVENT = (
    "INSERT INTO mt_events (migration_id, seq, ts, actor, type, payload) VALUES (:m, "
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM mt_events WHERE migration_id = :m), "
    f"MAX(:ts, COALESCE((SELECT ts FROM ({_LAST_EVENT})), '')), :actor, :type, :payload) RETURNING seq"
)


def _ts_text(ts: datetime) -> str:
    """How an event's time is kept: UTC, to the microsecond, always the same width."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def _ended(state: MigrationState) -> str | None:
    """The ``finished_at`` column: when the migration ended (completed or cancelled), UTC ISO."""
    ended = state.finished_at or state.cancelled_at
    return ended.astimezone(UTC).isoformat(timespec="microseconds") if ended is not None else None


class SQLiteStorage(Storage):
    """The SQLite store. URL options: ``?retention=30d``, ``?dedupe_window=24h``,
    ``?synchronous=NORMAL`` and ``?mode=ro`` (or ``read_only=True``): open the file read-only
    (see ``_open_read_only``)."""

    schemes = ("sqlite",)
    atomic_merge_many = True
    embedded = True
    has_change_feed = False

    def __init__(self, url: str | StoreURL = "sqlite:///migratrack.db", codec: Codec | None = None,
                 *, busy_timeout: float = 30.0, retention: str | float | timedelta | None = None,
                 dedupe_window: str | float | timedelta | None = None, read_only: bool | None = None) -> None:
        location = store_url_for("sqlite", url)
        mode = location.options.get("mode", "rw").lower()
        if mode not in ("ro", "rw"):
            raise ConfigurationError(f"mode must be ro (read-only) or rw, got {mode!r}")
        super().__init__(codec, dedupe_window=dedupe_window if dedupe_window is not None
                         else location.options.get("dedupe_window"),
                         read_only=read_only if read_only is not None else mode == "ro")
        self.location = location
        self.url = str(self.location)
        assert self.location.path is not None  # the parser refuses a sqlite URL without a file
        self.path = self.location.path
        options = self.location.options
        if retention is None:
            retention = options.get("retention")
        #: finished migrations older than this are purged (on open, then at most once a minute)
        self.retention = parse_duration(retention) if retention is not None else None
        self._purged_at = 0.0
        self._ops_pruned_at = 0.0
        self._sync = options.get("synchronous", "NORMAL").upper()
        if self._sync not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigurationError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {self._sync!r}")
        self._lock = threading.RLock()
        if self.read_only:
            self._conn = self._open_read_only(busy_timeout)
            return
        parent = Path(self.path).parent
        if not parent.exists():
            raise ConfigurationError(f"directory {str(parent)!r} for the SQLite store does not exist")
        try:
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={self._sync}")
            self._conn.execute("PRAGMA foreign_keys=OFF")
            self._migrate()
            self._maybe_purge()
        except sqlite3.DatabaseError as exc:
            raise StorageUnavailable(f"cannot open SQLite store {self.path!r}: {exc}") from exc

    # -- plumbing --------------------------------------------------------------------------

    def _open_read_only(self, busy_timeout: float) -> sqlite3.Connection:
        """The file opened with SQLite's ``mode=ro``: no schema, no triggers, no journal-mode
        change, no purge, and every write refused by SQLite. The database file itself is never
        written. In a writable directory SQLite creates the ``-wal`` and ``-shm`` files beside
        it if they are missing (the index a WAL reader shares with the writers; any reader of a
        WAL database does). In a read-only directory it cannot, and then reads the file as
        immutable when no ``-wal`` file exists: with none, no writer has anything the file does
        not hold, and none can start, as a writer needs to create one in that directory."""
        path = Path(self.path)
        if not path.is_file():
            raise ConfigurationError(
                f"no SQLite store at {self.path!r}: the file does not exist (nothing was created); "
                "check --storage or MIGRATRACK_STORAGE_URL")
        uri = path.resolve().as_uri()

        def connect(query: str) -> sqlite3.Connection:
            conn = sqlite3.connect(f"{uri}?{query}", uri=True, timeout=busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            try:
                self._check_schema(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        try:
            try:
                return connect("mode=ro")
            except sqlite3.OperationalError as exc:
                wal = [Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm")]
                if exc.sqlite_errorname != "SQLITE_CANTOPEN" or any(wal):
                    raise
                return connect("mode=ro&immutable=1")
        except sqlite3.DatabaseError as exc:
            raise StorageUnavailable(f"cannot open SQLite store {self.path!r} read-only: {exc}") from exc

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        """Refuse a file this version cannot read: not a migratrack store, or a newer schema."""
        try:
            row = conn.execute("SELECT value FROM mt_meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            row = None
        if row is None:
            raise ConfigurationError(f"{self.path} is not a migratrack store (it has no schema version)")
        if int(row[0]) > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path} has schema version {row[0]}, newer than this migratrack "
                f"understands ({SCHEMA_VERSION}); upgrade migratrack"
            )

    def _migrate(self) -> None:
        # each step is idempotent, so processes opening one file at once each run them safely
        # (executescript commits whatever transaction is open: each script brings its own)
        with self._lock:
            self._conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        with self._write() as c:
            for table, columns in _ADDED_COLUMNS.items():
                have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column.split()[0] not in have:  # a file of an earlier version
                        c.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        with self._lock:
            self._conn.executescript("BEGIN IMMEDIATE;" + _TRIGGERS + "COMMIT;")
        with self._write() as c:
            row = c.execute("SELECT value FROM mt_meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                c.execute("INSERT INTO mt_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                self._check_schema(c)  # raises
            elif int(row[0]) < SCHEMA_VERSION:  # the schema script above made the new tables
                c.execute("UPDATE mt_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise StorageError(f"the SQLite store {self.path!r} was opened read-only (mode=ro): it takes no writes")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._check_writable()
            c = self._conn
            try:
                c.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StorageUnavailable(f"SQLite store {self.path!r} is busy or unwritable: {exc}") from exc
            try:
                yield c
            except sqlite3.Error as exc:  # disk full, I/O error, corruption: the store failed
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise StorageError(f"SQLite write to {self.path!r} failed: {exc}") from exc
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
            try:
                c.execute("COMMIT")
            except sqlite3.Error as exc:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise StorageError(f"SQLite commit to {self.path!r} failed: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._check_open()
            c = self._conn
            try:
                c.execute("BEGIN")
                try:
                    yield c
                finally:
                    c.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite read from {self.path!r} failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self._closed = True

    def _check_open(self) -> None:
        if getattr(self, "_closed", False):
            raise StorageError(f"the SQLite store {self.path!r} was closed (by close() on it or on its tracker); "
                               "open a new one")

    # -- encode ----------------------------------------------------------------------------

    def _phase_row(self, migration_id: str, pos: int, p: PhaseState) -> tuple[Any, ...]:
        return (migration_id, p.id, pos, p.status.value, p.progress, p.done, p.total, self.phase_rest(migration_id, p),
                None, None)

    def _sub_row(self, migration_id: str, phase_id: str, pos: int, s: SubTaskState) -> tuple[Any, ...]:
        return (migration_id, phase_id, s.id, pos, s.status.value, s.progress,
                self.sub_task_rest(migration_id, phase_id, s), None, None)

    def _insert_events(self, c: sqlite3.Connection, migration_id: str, events: Sequence[NewEvent]) -> int:
        seq = 0
        for e in events:
            payload = self.codec.dumps(e.payload, self.at_event(migration_id, e.type))
            seq = c.execute(_INSERT_EVENT, {"m": migration_id, "ts": _ts_text(e.ts), "actor": e.actor,
                                            "type": e.type, "payload": payload}).fetchone()[0]
        return seq

    def _last_event(self, c: sqlite3.Connection, migration_id: str) -> tuple[int, datetime | None]:
        """The migration's last event: its seq (0 if none) and time."""
        row = c.execute(_LAST_EVENT, {"m": migration_id}).fetchone()
        return (0, None) if row is None else (int(row[0]), datetime.fromisoformat(row[1]))

    def _last_seq(self, c: sqlite3.Connection, migration_id: str) -> int:
        return self._last_event(c, migration_id)[0]

    def _write_time(self, c: sqlite3.Connection, migration_id: str, ts: datetime | None) -> datetime:
        """A transition's time: ``ts`` (or this process's clock), never before the last event's."""
        at = ts or datetime.now(UTC)
        last = self._last_event(c, migration_id)[1]
        return at if last is None else max(at, last)

    def _write_metrics(self, c: sqlite3.Connection, state: MigrationState) -> None:
        m = state.metrics
        c.execute(
            "UPDATE mt_migrations SET successful_operations = ?, failed_operations = ?, "
            "total_data_migrated = ?, gauges = ? WHERE id = ?",
            (m.successful_operations, m.failed_operations, m.total_data_migrated,
             self.codec.dumps(m.gauges, self.at_gauges(state.id)), state.id),
        )

    def _write_header(self, c: sqlite3.Connection, state: MigrationState, now: str) -> None:
        c.execute(
            "UPDATE mt_migrations SET header = ?, control = ?, finished_at = ?, updated_at = ? WHERE id = ?",
            (self.codec.dumps(state.header_dict(), self.at_header(state.id)), state.control.value, _ended(state), now,
             state.id),
        )

    def _insert_alert(self, c: sqlite3.Connection, migration_id: str, a: Alert) -> None:
        c.execute(
            "INSERT INTO mt_alerts (migration_id, id, n, level, acknowledged, data) VALUES "
            "(?, ?, (SELECT COALESCE(MAX(n), 0) + 1 FROM mt_alerts WHERE migration_id = ?), ?, ?, ?)",
            (migration_id, a.id, migration_id, a.level.value, int(a.acknowledged_at is not None),
             self.codec.dumps(a.to_dict(), self.at_alert(migration_id, a.id))),
        )

    # -- migrations ------------------------------------------------------------------------

    def create(self, state: MigrationState, events: Sequence[NewEvent], *, replace: bool = False) -> int:
        with self._write() as c:
            exists = c.execute("SELECT 1 FROM mt_migrations WHERE id = ?", (state.id,)).fetchone()
            if exists and not replace:
                raise MigrationAlreadyExists(state.id)
            if exists:
                self._delete(c, state.id)
            now = state.created_at.isoformat()
            c.execute(
                "INSERT INTO mt_migrations (id, header, control, created_at, finished_at, updated_at, gauges) "
                "VALUES (?, ?, ?, ?, NULL, ?, ?)",
                (state.id, self.codec.dumps(state.header_dict(), self.at_header(state.id)), state.control.value, now,
                 now, self.codec.dumps(state.metrics.gauges, self.at_gauges(state.id))),
            )
            self._write_metrics(c, state)
            c.executemany(
                f"INSERT INTO mt_phases {_PHASE_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self._phase_row(state.id, i, p) for i, p in enumerate(state.phases.values())],
            )
            c.executemany(
                f"INSERT INTO mt_sub_tasks {_SUB_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self._sub_row(state.id, p.id, j, s)
                 for p in state.phases.values() for j, s in enumerate(p.sub_tasks.values())],
            )
            return self._insert_events(c, state.id, events)

    def read_phases(self, ctx: Any, state: MigrationState, ids: Sequence[str] | None) -> None:
        sql = "SELECT id, status, progress, done, total, data FROM mt_phases WHERE migration_id = ?"
        args: list[Any] = [state.id]
        if ids is not None:
            if not ids:
                return
            sql += f" AND id IN ({', '.join('?' * len(ids))})"
            args += ids
        for pid, status, progress, done, total, data in ctx.execute(sql + " ORDER BY pos", args):
            state.phases[pid] = self.phase_of_row(state.id, pid, status, progress, done, total, data)

    def read_sub_tasks(self, ctx: Any, state: MigrationState, scope: str | tuple[str, str]) -> None:
        sql = "SELECT phase_id, id, status, progress, data FROM mt_sub_tasks WHERE migration_id = ?"
        args: tuple[str, ...] = (state.id,)
        if isinstance(scope, tuple):
            sql += " AND phase_id = ? AND id = ?"
            args += scope
        elif scope != "all":
            sql += " AND phase_id = ?"
            args += (scope,)
        for pid, sid, status, progress, data in ctx.execute(sql + " ORDER BY phase_id, pos", args):
            phase = state.phases.get(pid)
            if phase is not None:
                phase.sub_tasks[sid] = self.sub_task_of_row(state.id, pid, sid, status, progress, data)

    def _load(self, c: sqlite3.Connection, migration_id: str, sub_tasks: SubTaskScope,
              phases: PhaseScope = None) -> MigrationState:
        row = c.execute(
            "SELECT header, successful_operations, failed_operations, total_data_migrated, gauges "
            "FROM mt_migrations WHERE id = ?", (migration_id,),
        ).fetchone()
        if row is None:
            raise MigrationNotFound(migration_id)
        state = MigrationState.from_header(self.codec.loads(row[0], self.at_header(migration_id)))
        state.metrics = Metrics(row[1], row[2], row[3], self.codec.loads(row[4], self.at_gauges(migration_id)))
        self.assemble(c, state, sub_tasks, phases)
        state.seq = self._last_seq(c, migration_id)
        if state.partial:
            return state
        for level, n, unacked in c.execute(
            "SELECT level, COUNT(*), SUM(1 - acknowledged) FROM mt_alerts WHERE migration_id = ? "
            "GROUP BY level", (migration_id,),
        ):
            state.alert_counts[level] = n
            state.unacknowledged_alerts += unacked
        return state

    def load(self, migration_id: str, *, sub_tasks: SubTaskScope = "all",
             phases: PhaseScope = None) -> MigrationState:
        with self._read() as c:
            return self._load(c, migration_id, sub_tasks, phases)

    def exists(self, migration_id: str) -> bool:
        with self._read() as c:
            row = c.execute("SELECT 1 FROM mt_migrations WHERE id = ?", (migration_id,)).fetchone()
        return row is not None

    def list_ids(self) -> list[str]:
        with self._read() as c:
            return [r[0] for r in c.execute("SELECT id FROM mt_migrations ORDER BY created_at, id")]

    def versions(self) -> dict[str, tuple[str, int]]:
        with self._read() as c:
            return {mid: (str(created), seq or 0) for mid, created, seq in c.execute(
                "SELECT m.id, m.created_at, (SELECT seq FROM mt_events e WHERE e.migration_id = m.id "
                "ORDER BY seq DESC LIMIT 1) FROM mt_migrations m")}

    def _delete(self, c: sqlite3.Connection, migration_id: str) -> int:
        n = c.execute("DELETE FROM mt_migrations WHERE id = ?", (migration_id,)).rowcount
        for table in ("mt_phases", "mt_sub_tasks", "mt_events", "mt_alerts", "mt_applied"):
            c.execute(f"DELETE FROM {table} WHERE migration_id = ?", (migration_id,))
        return n

    def delete(self, migration_id: str) -> bool:
        with self._write() as c:
            return self._delete(c, migration_id) > 0

    # -- writes ----------------------------------------------------------------------------

    # -- operation ids ------------------------------------------------------------------------

    def _claim_op(self, c: sqlite3.Connection, migration_id: str, op_id: str, ts: datetime) -> bool:
        """Record ``op_id`` in the open transaction; False when it is a duplicate (recorded and young)."""
        check_op_id(op_id)
        self._maybe_prune_ops(c, ts)
        return c.execute(_CLAIM_OP, (migration_id, op_id, ts.timestamp(),
                                     self.dedupe_cutoff(ts).timestamp())).rowcount > 0

    def _seen_op(self, c: sqlite3.Connection, migration_id: str, op_id: str, ts: datetime) -> bool:
        check_op_id(op_id)
        row = c.execute("SELECT applied_at FROM mt_applied WHERE migration_id = ? AND op_id = ?",
                        (migration_id, op_id)).fetchone()
        return row is not None and row[0] >= self.dedupe_cutoff(ts).timestamp()

    def _maybe_prune_ops(self, c: sqlite3.Connection, ts: datetime) -> None:
        # at most once a minute, inside a write that is under way anyway: no commit of its own
        if time.monotonic() - self._ops_pruned_at < 60:
            return
        self._ops_pruned_at = time.monotonic()
        cutoff = self.dedupe_cutoff(ts).timestamp()
        c.execute("DELETE FROM mt_applied WHERE applied_at < ?", (cutoff,))
        c.execute("DELETE FROM mt_requests WHERE claimed_at < ?", (cutoff,))

    def transact(
        self, migration_id: str, fn: Callable[[MigrationState], Change], *, sub_tasks: SubTaskScope = "all",
        op_id: str | None = None, ts: datetime | None = None, phases: PhaseScope = None,
    ) -> Change:
        with self._write() as c:
            at = self._write_time(c, migration_id, ts)
            if op_id is not None and self._seen_op(c, migration_id, op_id, at):
                return Change(last_seq=self._last_seq(c, migration_id))
            state = self._load(c, migration_id, sub_tasks, phases)
            state.as_of = at
            change = fn(state)
            if change.empty:
                change.last_seq = state.seq
                return change
            if op_id is not None:
                self._claim_op(c, migration_id, op_id, at)
            now = _ts_text(at)
            if change.header:
                self._write_header(c, state, now)
            else:
                c.execute("UPDATE mt_migrations SET updated_at = ? WHERE id = ?", (now, migration_id))
            if change.metrics:
                self._write_metrics(c, state)
            # rows are written by key: their position stays, and the hot path's columns (last_ts,
            # last_op) are not set, so its triggers do not fire
            for pid in change.phases:
                p = state.phases[pid]
                c.execute("UPDATE mt_phases SET status = ?, progress = ?, done = ?, total = ?, data = ? "
                          "WHERE migration_id = ? AND id = ?",
                          (p.status.value, p.progress, p.done, p.total, self.phase_rest(migration_id, p),
                           migration_id, pid))
            for pid, sid in change.sub_tasks:
                sub = state.phases[pid].sub_tasks[sid]
                c.execute("UPDATE mt_sub_tasks SET status = ?, progress = ?, data = ? "
                          "WHERE migration_id = ? AND phase_id = ? AND id = ?",
                          (sub.status.value, sub.progress, self.sub_task_rest(migration_id, pid, sub),
                           migration_id, pid, sid))
            for a in change.new_alerts:
                self._insert_alert(c, migration_id, a)
            for a in change.updated_alerts:
                c.execute("UPDATE mt_alerts SET acknowledged = ?, data = ? WHERE migration_id = ? AND id = ?",
                          (int(a.acknowledged_at is not None),
                           self.codec.dumps(a.to_dict(), self.at_alert(migration_id, a.id)), migration_id, a.id))
            change.last_seq = self._insert_events(c, migration_id, change.events) or state.seq
        if change.header:
            self._maybe_purge(change)
        return change

    def merge_progress(
        self, migration_id: str, phase_id: str, sub_task_id: str | None, *,
        progress: float | None, done: int | None, add: int | None, ts: datetime | None, actor: str,
        op_id: str | None = None,
    ) -> MergeResult:
        # One UPDATE statement, run as its own transaction; triggers append the event and record
        # the operation id.
        at = ts or datetime.now(UTC)
        with self._lock:
            self._check_writable()
            try:
                if op_id is not None:
                    self._maybe_prune_ops(self._conn, at)
                return self._merge(self._conn, migration_id, ProgressMerge(phase_id, sub_task_id, progress, done, add,
                                                                           op_id), at, _ts_text(at), actor)
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"SQLite store {self.path!r} is busy or unwritable: {exc}") from exc

    def merge_many(
        self, migration_id: str, merges: Sequence[ProgressMerge], *, ts: datetime | None, actor: str
    ) -> list[MergeResult]:
        # One transaction for the lot: one commit instead of one per update.
        at = ts or datetime.now(UTC)
        ts_text = _ts_text(at)
        with self._write() as c:
            if any(m.op_id is not None for m in merges):
                self._maybe_prune_ops(c, at)
            return [self._merge(c, migration_id, m, at, ts_text, actor) for m in merges]

    def _merge(self, c: sqlite3.Connection, migration_id: str, m: ProgressMerge, ts: datetime, ts_text: str,
               actor: str) -> MergeResult:
        phase_id, sub_task_id, progress, done, add = m.phase_id, m.sub_task_id, m.progress, m.done, m.add
        args: dict[str, Any] = {"m": migration_id, "p": phase_id, "ts": ts_text, "actor": actor}
        # with an operation id: the UPDATE runs only if the id is not recorded and young, and
        # sets last_op, whose trigger records it
        op_set = op_where = ""
        if m.op_id is not None:
            check_op_id(m.op_id)
            op_set, op_where = ", last_op = :op, last_op_at = :at", " AND " + _NOT_SEEN
            args.update(op=m.op_id, at=ts.timestamp(), cutoff=self.dedupe_cutoff(ts).timestamp())
        if sub_task_id is not None:
            if progress is None:
                return MergeResult.FALLBACK
            written = c.execute(
                f"UPDATE mt_sub_tasks SET progress = :progress, last_ts = :ts, last_actor = :actor{op_set} "
                f"WHERE migration_id = :m AND phase_id = :p AND id = :s AND status = 'in_progress' "
                f"AND progress < :progress{op_where}",
                {**args, "progress": progress, "s": sub_task_id},
            ).rowcount
        elif done is None and not add and progress is None:
            written = 0  # nothing to merge: the status check below tells STALE from FALLBACK
        elif done is None and not add:
            written = c.execute(
                f"UPDATE mt_phases SET progress = :progress, last_ts = :ts, last_actor = :actor{op_set} "
                f"WHERE migration_id = :m AND id = :p AND status = 'in_progress' AND progress < :progress{op_where}",
                {**args, "progress": progress},
            ).rowcount
        else:
            # new done and progress as in core.rules.merge_values; SET expressions see the old row
            written = c.execute(
                f"""
                UPDATE mt_phases SET done = MAX(done, :done) + :add, progress = MAX(progress, :progress,
                    CASE WHEN total IS NULL THEN 0.0 WHEN total = 0 THEN 100.0
                         ELSE MIN(100.0, (MAX(done, :done) + :add) * 100.0 / total) END),
                    last_ts = :ts, last_actor = :actor{op_set}
                WHERE migration_id = :m AND id = :p AND status = 'in_progress'
                  AND (total IS NULL OR MAX(done, :done) + :add <= total)
                  AND (MAX(done, :done) + :add <> done OR :progress > progress OR (total IS NOT NULL
                       AND MIN(100.0, (MAX(done, :done) + :add) * 100.0 / MAX(total, 1)) > progress)){op_where}
                """,
                {**args, "done": done or 0, "add": add or 0, "progress": progress or 0.0},
            ).rowcount
        if written:
            return MergeResult.APPLIED
        # nothing written: a repeated id, a stale value, or a case for the rules
        if m.op_id is not None and self._seen_op(c, migration_id, m.op_id, ts):
            return MergeResult.STALE
        if sub_task_id is not None:
            cur = c.execute(
                "SELECT status FROM mt_sub_tasks WHERE migration_id = ? AND phase_id = ? AND id = ?",
                (migration_id, phase_id, sub_task_id),
            ).fetchone()
            return MergeResult.STALE if cur and cur[0] == "in_progress" else MergeResult.FALLBACK
        row = c.execute(
            "SELECT status, done, total FROM mt_phases WHERE migration_id = ? AND id = ?",
            (migration_id, phase_id),
        ).fetchone()
        if row is None or row[0] != "in_progress":
            return MergeResult.FALLBACK
        over = row[2] is not None and (done is not None or add) and max(row[1], done or 0) + (add or 0) > row[2]
        return MergeResult.FALLBACK if over else MergeResult.STALE

    def increment_counters(
        self, migration_id: str, deltas: Mapping[str, int], *, ts: datetime | None, actor: str,
        op_id: str | None = None,
    ) -> dict[str, int]:
        ts = ts or datetime.now(UTC)
        with self._write() as c:
            if op_id is not None and not self._claim_op(c, migration_id, op_id, ts):
                row = c.execute("SELECT successful_operations, failed_operations, total_data_migrated "
                                "FROM mt_migrations WHERE id = ?", (migration_id,)).fetchone()
                if row is None:
                    raise MigrationNotFound(migration_id)
                return {"successful_operations": row[0], "failed_operations": row[1], "total_data_migrated": row[2]}
            row = c.execute(
                "UPDATE mt_migrations SET successful_operations = successful_operations + ?, "
                "failed_operations = failed_operations + ?, total_data_migrated = total_data_migrated + ? "
                "WHERE id = ? RETURNING successful_operations, failed_operations, total_data_migrated",
                (deltas.get("successful_operations", 0), deltas.get("failed_operations", 0),
                 deltas.get("total_data_migrated", 0), migration_id),
            ).fetchone()
            if row is None:
                raise MigrationNotFound(migration_id)
            c.execute(_INSERT_EVENT, {"m": migration_id, "ts": _ts_text(ts), "actor": actor, "type": "metrics.updated",
                                      "payload": self.codec.dumps({"increment": dict(deltas)},
                                                                  self.at_event(migration_id, "metrics.updated"))})
        return {"successful_operations": row[0], "failed_operations": row[1], "total_data_migrated": row[2]}

    # -- reads -----------------------------------------------------------------------------

    def page_sub_tasks(self, migration_id: str, phase_id: str, *, status: str | None = None,
                       after: str | None = None, limit: int = 100) -> list[SubTaskState]:
        sql = "SELECT id, status, progress, data FROM mt_sub_tasks WHERE migration_id = ? AND phase_id = ?"
        args: list[Any] = [migration_id, phase_id]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if after is not None:
            sql += " AND pos > (SELECT pos FROM mt_sub_tasks WHERE migration_id = ? AND phase_id = ? AND id = ?)"
            args += [migration_id, phase_id, after]
        with self._read() as c:
            rows = c.execute(sql + " ORDER BY pos LIMIT ?", [*args, limit]).fetchall()
        return [self.sub_task_of_row(migration_id, phase_id, sid, st, progress, data)
                for sid, st, progress, data in rows]

    def control(self, migration_id: str) -> Control:
        with self._read() as c:
            row = c.execute("SELECT control FROM mt_migrations WHERE id = ?", (migration_id,)).fetchone()
        if row is None:
            raise MigrationNotFound(migration_id)
        return Control(row[0])

    def events(self, migration_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        with self._read() as c:
            rows = c.execute(
                "SELECT seq, ts, actor, type, payload, plain FROM mt_events WHERE migration_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?", (migration_id, after, limit),
            ).fetchall()
        return [Event(migration_id, seq, typ, datetime.fromisoformat(ts), actor,
                      self._plain_payload(typ, payload) if plain
                      else self.codec.loads(payload, self.at_event(migration_id, typ)))
                for seq, ts, actor, typ, payload, plain in rows]

    @staticmethod
    def _plain_payload(event_type: str, payload: str) -> Any:
        """The payload of an event a hot-path trigger wrote (plain JSON: ids and numbers). Anything
        else marked plain was not written by migratrack, and is refused rather than shown: with a
        key set, it would be unencrypted text slipped in around the codec."""
        data = json.loads(payload)
        if (event_type not in _PLAIN_EVENT_TYPES or not isinstance(data, dict) or not set(data) <= _PLAIN_EVENT_KEYS
                or not all(v is None or isinstance(v, str | int | float) for v in data.values())):
            raise ConfigurationError(f"an event of type {event_type!r} is marked as written by the hot path, but "
                                     "does not look like one: someone wrote to the store around migratrack")
        return data

    def count_alerts(self, migration_id: str) -> int:
        with self._read() as c:
            row = c.execute("SELECT (SELECT COUNT(*) FROM mt_alerts WHERE migration_id = :m), "
                            "EXISTS (SELECT 1 FROM mt_migrations WHERE id = :m)", {"m": migration_id}).fetchone()
        if not row[1]:
            raise MigrationNotFound(migration_id)
        return int(row[0])

    def events_of_types(self, migration_id: str, after: int, upto: int, types: Collection[str]) -> list[Event]:
        types = list(types)
        if not types or upto <= after:
            return []
        with self._read() as c:
            rows = c.execute(
                "SELECT seq, ts, actor, type, payload, plain FROM mt_events WHERE migration_id = ? AND seq > ? "
                f"AND seq <= ? AND type IN ({', '.join('?' * len(types))}) ORDER BY seq",
                (migration_id, after, upto, *types),
            ).fetchall()
        return [Event(migration_id, seq, typ, datetime.fromisoformat(ts), actor,
                      self._plain_payload(typ, payload) if plain
                      else self.codec.loads(payload, self.at_event(migration_id, typ)))
                for seq, ts, actor, typ, payload, plain in rows]

    def alerts(self, migration_id: str, *, limit: int = 50, unacknowledged_only: bool = False) -> list[Alert]:
        sql = "SELECT id, data FROM mt_alerts WHERE migration_id = ?"
        if unacknowledged_only:
            sql += " AND acknowledged = 0"
        with self._read() as c:
            rows = c.execute(sql + " ORDER BY n DESC LIMIT ?", (migration_id, limit)).fetchall()
        return [Alert.from_dict(self.codec.loads(r[1], self.at_alert(migration_id, r[0]))) for r in rows]

    def get_alert(self, migration_id: str, alert_id: str) -> Alert:
        with self._read() as c:
            row = c.execute("SELECT data FROM mt_alerts WHERE migration_id = ? AND id = ?",
                                     (migration_id, alert_id)).fetchone()
        if row is None:
            raise AlertNotFound(alert_id)
        return Alert.from_dict(self.codec.loads(row[0], self.at_alert(migration_id, alert_id)))

    # -- retention ---------------------------------------------------------------------------

    def _maybe_purge(self, change: Change | None = None) -> None:
        if self.retention is None or time.monotonic() - self._purged_at < 60:
            return
        self._purged_at = time.monotonic()
        self.purge_finished(datetime.now(UTC) - self.retention)

    def purge_finished(self, older_than: datetime) -> list[str]:
        cutoff = older_than.astimezone(UTC).isoformat(timespec="microseconds")
        with self._write() as c:
            ids = [r[0] for r in c.execute(
                "SELECT id FROM mt_migrations WHERE finished_at IS NOT NULL AND finished_at < ? ORDER BY created_at",
                (cutoff,))]
            for mid in ids:
                self._delete(c, mid)
        return ids

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {t: self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    for t in ("mt_migrations", "mt_phases", "mt_sub_tasks", "mt_events", "mt_alerts")}

    # -- Idempotency-Keys ----------------------------------------------------------------------

    def claim_request(self, key: str, fingerprint: str, *, ts: datetime) -> RequestRecord:
        check_op_id(key)
        with self._write() as c:
            self._maybe_prune_ops(c, ts)
            c.execute(
                "INSERT INTO mt_requests (key, fingerprint, claimed_at) VALUES (?, ?, ?) ON CONFLICT (key) DO "
                "UPDATE SET fingerprint = excluded.fingerprint, claimed_at = excluded.claimed_at, response = NULL "
                "WHERE claimed_at < ?", (key, fingerprint, ts.timestamp(), self.dedupe_cutoff(ts).timestamp()))
            found, response = c.execute("SELECT fingerprint, response FROM mt_requests WHERE key = ?",
                                        (key,)).fetchone()
        return RequestRecord(found, None if response is None else self.codec.loads(response, self.at_request(key)))

    def finish_request(self, key: str, fingerprint: str, response: Any, *, ts: datetime) -> None:
        with self._write() as c:
            c.execute("UPDATE mt_requests SET response = ? WHERE key = ? AND fingerprint = ?",
                      (self.codec.dumps(response, self.at_request(key)), key, fingerprint))

    # -- tokens ----------------------------------------------------------------------------

    def save_token(self, token: TokenRecord) -> None:
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO mt_tokens VALUES (?, ?, ?, ?)",
                      (token.id, token.token_hash, token.created_at.isoformat(), json.dumps(token.to_dict())))

    def find_token(self, token_hash: str) -> TokenRecord | None:
        with self._read() as c:
            row = c.execute("SELECT data FROM mt_tokens WHERE token_hash = ?", (token_hash,)).fetchone()
        return TokenRecord.from_dict(json.loads(row[0])) if row else None

    def list_tokens(self) -> list[TokenRecord]:
        with self._read() as c:
            rows = c.execute("SELECT data FROM mt_tokens ORDER BY created_at, id").fetchall()
        return [TokenRecord.from_dict(json.loads(r[0])) for r in rows]

    # -- the alert dispatcher's documents --------------------------------------------------------

    def kv_get(self, kind: str, key: str) -> Versioned | None:
        check_kv(kind, key)
        with self._read() as c:
            row = c.execute("SELECT version, value FROM mt_kv WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return None if row is None else Versioned(self.codec.loads(row[1], self.at_kv(kind, key)), int(row[0]))

    def kv_put(self, kind: str, key: str, value: Any, *, expected: int | None = None) -> int | None:
        check_kv(kind, key)
        text = self.codec.dumps(value, self.at_kv(kind, key))
        with self._write() as c:
            row = c.execute("SELECT version FROM mt_kv WHERE kind = ? AND key = ?", (kind, key)).fetchone()
            version = int(row[0]) if row else 0
            if expected is not None and expected != version:
                return None
            c.execute("INSERT INTO mt_kv VALUES (?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET "
                      "version = excluded.version, value = excluded.value", (kind, key, version + 1, text))
        return version + 1

    def kv_list(self, kind: str, prefix: str = "", *, limit: int = 1000) -> list[tuple[str, Versioned]]:
        with self._read() as c:
            # substr rather than LIKE: a key may hold % or _
            rows = c.execute("SELECT key, version, value FROM mt_kv WHERE kind = ? AND substr(key, 1, ?) = ? "
                             "ORDER BY key LIMIT ?", (kind, len(prefix), prefix, limit)).fetchall()
        return [(r[0], Versioned(self.codec.loads(r[2], self.at_kv(kind, r[0])), int(r[1]))) for r in rows]

    def kv_delete(self, kind: str, key: str, *, expected: int | None = None) -> bool:
        check_kv(kind, key)
        with self._write() as c:
            if expected is None:
                cur = c.execute("DELETE FROM mt_kv WHERE kind = ? AND key = ?", (kind, key))
            else:
                cur = c.execute("DELETE FROM mt_kv WHERE kind = ? AND key = ? AND version = ?",
                                (kind, key, expected))
            return cur.rowcount > 0
