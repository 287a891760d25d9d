"""Status enums and the table of allowed moves."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """Lifecycle of a phase or a sub-task."""

    #: declared, not started
    PENDING = "pending"
    #: started, reporting progress
    IN_PROGRESS = "in_progress"
    #: finished successfully (progress 100)
    COMPLETED = "completed"
    #: finished with an error; may be retried
    FAILED = "failed"
    #: deliberately not run; counts as done for dependencies and overall progress
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in (Status.COMPLETED, Status.SKIPPED)


class Control(str, Enum):
    """What an operator asked of the migration as a whole."""

    #: workers proceed
    RUNNING = "running"
    #: workers block at their next checkpoint until resumed
    PAUSED = "paused"
    #: workers raise MigrationCancelled at their next checkpoint; final
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class Condition(str, Enum):
    """What a phase is doing as an operator reads it at a glance: its status, refined by its
    dependencies, its approval gate and the migration's control state."""

    #: pending, and free to start now
    READY = "ready"
    #: pending, waiting on dependencies that have not completed
    BLOCKED = "blocked"
    #: pending, dependencies done, but gated until someone approves it
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    #: in progress
    RUNNING = "running"
    #: in progress, but its progress has not moved for too long (set by stall detection)
    STALLED = "stalled"
    #: in progress while the migration is paused
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    #: was pending or in progress when the migration was cancelled
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value.replace("_", " ")


class MigrationStatus(str, Enum):
    """The migration's status, derived from its phases and its control state."""

    #: no phase has started yet
    PENDING = "pending"
    #: at least one phase started, not all finished
    RUNNING = "running"
    #: an operator paused it
    PAUSED = "paused"
    #: every phase completed or skipped
    COMPLETED = "completed"
    #: a phase failed and nothing is running
    FAILED = "failed"
    #: an operator cancelled it
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class AlertLevel(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]


_LEVEL_RANK = {AlertLevel.INFO: 0, AlertLevel.WARNING: 1, AlertLevel.ERROR: 2, AlertLevel.CRITICAL: 3}

#: (from, to) -> the verb that makes the move. Anything else is an InvalidTransition.
TRANSITIONS: dict[tuple[Status, Status], str] = {
    (Status.PENDING, Status.IN_PROGRESS): "start",
    (Status.IN_PROGRESS, Status.COMPLETED): "complete",
    (Status.IN_PROGRESS, Status.FAILED): "fail",
    (Status.PENDING, Status.FAILED): "fail",
    (Status.PENDING, Status.SKIPPED): "skip",
    (Status.FAILED, Status.SKIPPED): "skip",
    (Status.FAILED, Status.IN_PROGRESS): "retry",
}

#: verb -> target status
VERB_TARGET: dict[str, Status] = {verb: to for (_, to), verb in TRANSITIONS.items()}


def allowed(current: Status, verb: str) -> bool:
    target = VERB_TARGET[verb]
    return TRANSITIONS.get((current, target)) == verb
