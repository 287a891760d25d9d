"""The exceptions migratrack raises.

Every error derives from :class:`MigratrackError`; each message says what to fix::

    MigratrackError
    ├── InvalidPlan                 the phase plan is malformed (cycle, unknown dependency, duplicate id…)
    ├── InvalidInput                a value is out of range or of the wrong kind (NaN progress, bad level…)
    │   └── IdempotencyKeyReused    an HTTP Idempotency-Key sent again with a different request
    ├── NotFound
    │   ├── MigrationNotFound
    │   ├── PhaseNotFound
    │   ├── SubTaskNotFound
    │   └── AlertNotFound
    ├── RuleViolation               the command is well-formed but the migration's state forbids it
    │   ├── InvalidTransition       e.g. completing a pending phase; carries current and requested state
    │   ├── DependencyNotMet        carries the blocking phases
    │   ├── ApprovalRequired        the phase needs approve_phase() first
    │   ├── PlanMismatch            initialize_migration() with a different plan for an existing id
    │   └── MigrationAlreadyExists
    ├── MigrationCancelled          raised by checkpoint()/track() once the migration is cancelled
    ├── StorageError                the store failed (I/O, connection); usually transient
    │   ├── StorageUnavailable      could not reach the store
    │   └── SchemaVersionError      the store's layout is newer/older than this version understands
    └── ConfigurationError          a setting or URL is wrong, or an optional driver is missing
"""

from __future__ import annotations

from collections.abc import Sequence


class MigratrackError(Exception):
    """Root of every migratrack error."""


class InvalidPlan(MigratrackError):
    pass


class InvalidInput(MigratrackError, ValueError):
    pass


class IdempotencyKeyReused(InvalidInput):
    """An HTTP ``Idempotency-Key`` sent again with another request than the one it was first used for."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"Idempotency-Key {key!r} was used for a different request; use a new key for a new request")


class LimitExceeded(InvalidInput):
    """A documented cap (phases, sub-tasks, alerts kept) would be passed; nothing was written."""


class NotFound(MigratrackError, LookupError):
    pass


class MigrationNotFound(NotFound):
    def __init__(self, migration_id: str) -> None:
        self.migration_id = migration_id
        super().__init__(
            f"migration {migration_id!r} does not exist; create it with initialize_migration(phases)"
        )


class PhaseNotFound(NotFound):
    def __init__(self, migration_id: str, phase_id: str, known: Sequence[str] = ()) -> None:
        self.migration_id = migration_id
        self.phase_id = phase_id
        hint = f"; known phases: {', '.join(known)}" if known else ""
        super().__init__(f"migration {migration_id!r} has no phase {phase_id!r}{hint}")


class SubTaskNotFound(NotFound):
    def __init__(self, phase_id: str, sub_task_id: str, known: Sequence[str] = ()) -> None:
        self.phase_id = phase_id
        self.sub_task_id = sub_task_id
        hint = f"; known sub-tasks: {', '.join(known)}" if known else ""
        super().__init__(f"phase {phase_id!r} has no sub-task {sub_task_id!r}{hint}")


class AlertNotFound(NotFound):
    def __init__(self, alert_id: str) -> None:
        self.alert_id = alert_id
        super().__init__(f"no alert {alert_id!r} in this migration")


class RuleViolation(MigratrackError):
    pass


class InvalidTransition(RuleViolation):
    def __init__(self, what: str, current: str, requested: str, hint: str = "") -> None:
        self.what = what
        self.current = current
        self.requested = requested
        msg = f"cannot {requested} {what}: it is {current}"
        super().__init__(f"{msg}; {hint}" if hint else msg)


class DependencyNotMet(RuleViolation):
    def __init__(self, phase_id: str, blocking: Sequence[str]) -> None:
        self.phase_id = phase_id
        self.blocking = list(blocking)
        super().__init__(
            f"cannot start phase {phase_id!r}: waiting for "
            f"{', '.join(repr(b) for b in self.blocking)} to complete or be skipped"
        )


class ApprovalRequired(RuleViolation):
    def __init__(self, phase_id: str) -> None:
        self.phase_id = phase_id
        super().__init__(
            f"phase {phase_id!r} requires approval before it starts; "
            f"call approve_phase({phase_id!r}, by=...) (or 'migratrack approve')"
        )


class PlanMismatch(RuleViolation):
    pass


class MigrationAlreadyExists(RuleViolation):
    def __init__(self, migration_id: str) -> None:
        self.migration_id = migration_id
        super().__init__(f"migration {migration_id!r} already exists")


class MigrationCancelled(MigratrackError):
    def __init__(self, migration_id: str) -> None:
        self.migration_id = migration_id
        super().__init__(f"migration {migration_id!r} was cancelled; stop work and exit")


class StorageError(MigratrackError):
    pass


class StorageUnavailable(StorageError):
    pass


class SchemaVersionError(StorageError):
    pass


class ConfigurationError(MigratrackError):
    pass
