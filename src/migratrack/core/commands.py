"""Commands as values: one small frozen class per verb.

A command names its target (``phase``, ``sub_task``) and carries its arguments; ``apply(rules)``
is its rule. Every face dispatches through :data:`COMMANDS` instead of writing the verb out by
hand: ``MigrationService.execute`` runs any command under the migration's lock, the REST API
registers one route per class, the remote SDK posts a command to that route, and the CLI builds
its verbs from the same table. A new verb is one class here and one line in each SDK facade.

The field annotations carry their constraints (pydantic ``Field``), so the server validates a
request body from the class itself; ``apply`` checks the values again for in-process callers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum
from typing import Annotated, Any, ClassVar

from pydantic import Field

from migratrack.core.rules import MAX_TEXT, Rules
from migratrack.core.states import Control, Status
from migratrack.errors import InvalidInput, InvalidTransition

Error = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, description="what went wrong")]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, description="why it is skipped")]
Why = Annotated[str | None, Field(max_length=MAX_TEXT, description="why, for the audit trail")]
Who = Annotated[str | None, Field(min_length=1, max_length=200,
                                  description="who approves (recorded in the audit trail); default the caller's name")]


class Target(str, Enum):
    """What a command acts on; it decides the command's address (its path under a migration)."""

    MIGRATION = "migration"
    PHASE = "phase"
    SUB_TASK = "sub_task"


#: the fields that address a command (path parameters), as opposed to its arguments (body)
ADDRESS_FIELDS = ("phase", "sub_task")


@dataclass(frozen=True, slots=True)
class Command:
    """A request to change a migration. Subclasses set the class attributes and ``apply``."""

    #: the verb as spoken on every face: the last path segment, the CLI verb
    verb: ClassVar[str]
    target: ClassVar[Target]
    #: the least role that may send it: "operator" or "admin"
    role: ClassVar[str] = "operator"
    #: one line for the API's summary and the CLI's help
    summary: ClassVar[str]
    #: the SDK waits out a pause before sending it (it starts work)
    waits_on_pause: ClassVar[bool] = False
    #: the SDK writes the target's coalesced progress first, so the rule judges it
    flushes_progress: ClassVar[bool] = True
    #: the rule reads sub-tasks (the store loads them): a sub-task command its own, a phase
    #: command all of its phase's (completing a phase needs none: the rules' counts tell)
    reads_sub_tasks: ClassVar[bool] = False
    #: the control state the migration is in once the command is applied
    control_after: ClassVar[Control | None] = None
    #: fields given as positional arguments on the command line (the others are options)
    cli_arguments: ClassVar[tuple[str, ...]] = ()
    #: the command line's help, when it says more than ``summary``
    cli_help: ClassVar[str | None] = None
    #: what the command line prints once it is done: a format of the command's fields and
    #: ``migration``, ``status`` and ``eta`` (the migration's, after the command)
    cli_reply: ClassVar[str | None] = None

    def apply(self, rules: Rules) -> None:
        raise NotImplementedError

    @property
    def scope(self) -> str | tuple[str, str] | None:
        """The sub-tasks the store must load for the rule: its phase's (an id), its own (a
        ``(phase, sub-task)`` pair), or none."""
        phase: str | None = getattr(self, "phase", None)
        sub_task: str | None = getattr(self, "sub_task", None)
        if phase is None or not self.reads_sub_tasks:
            return None
        return (phase, sub_task) if sub_task is not None else phase

    @property
    def phase_scope(self) -> tuple[str, ...]:
        """The phases the rule reads (the store adds those they depend on); none: the
        migration's header alone. The rules' counts stand in for the rest."""
        phase: str | None = getattr(self, "phase", None)
        return () if phase is None else (phase,)

    @property
    def address(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in ADDRESS_FIELDS}

    @property
    def arguments(self) -> dict[str, Any]:
        """The command's arguments (what a request body carries), without unset optional ones."""
        return {f.name: v for f in fields(self) if f.name not in ADDRESS_FIELDS
                and (v := getattr(self, f.name)) is not None}

    @classmethod
    def path(cls) -> str:
        """The command's address under a migration, with ``{phase}``/``{sub_task}`` placeholders."""
        return {
            Target.MIGRATION: "{verb}",
            Target.PHASE: "phases/{{phase}}/{verb}",
            Target.SUB_TASK: "phases/{{phase}}/subtasks/{{sub_task}}/{verb}",
        }[cls.target].format(verb=cls.verb)


@dataclass(frozen=True, slots=True)
class PhaseCommand(Command):
    phase: str
    target: ClassVar[Target] = Target.PHASE


@dataclass(frozen=True, slots=True)
class SubTaskCommand(Command):
    phase: str
    sub_task: str
    target: ClassVar[Target] = Target.SUB_TASK
    reads_sub_tasks: ClassVar[bool] = True


# -- phases --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StartPhase(PhaseCommand):
    rerun: Annotated[bool, Field(strict=True, description=(
        "a script run again to resume: leave a completed or skipped phase as it is (recorded in the "
        "audit trail) and retry a failed one"))] = False
    verb: ClassVar[str] = "start"
    summary: ClassVar[str] = "Start a phase"
    cli_help: ClassVar[str | None] = "Start a phase (or one of its sub-tasks with --sub)."
    waits_on_pause: ClassVar[bool] = True

    def apply(self, rules: Rules) -> None:
        rules.start_phase(self.phase, self.rerun is True)


@dataclass(frozen=True, slots=True)
class CompletePhase(PhaseCommand):
    verb: ClassVar[str] = "complete"
    summary: ClassVar[str] = "Complete a phase"
    cli_help: ClassVar[str | None] = "Complete a phase (or a sub-task with --sub)."

    def apply(self, rules: Rules) -> None:
        rules.complete_phase(self.phase)


@dataclass(frozen=True, slots=True)
class FailPhase(PhaseCommand):
    error: Error
    verb: ClassVar[str] = "fail"
    summary: ClassVar[str] = "Fail a phase with an error"
    cli_help: ClassVar[str | None] = "Mark a phase (or a sub-task with --sub) failed."

    def apply(self, rules: Rules) -> None:
        rules.fail_phase(self.phase, self.error)


@dataclass(frozen=True, slots=True)
class SkipPhase(PhaseCommand):
    reason: Reason
    verb: ClassVar[str] = "skip"
    summary: ClassVar[str] = "Skip a phase"
    cli_help: ClassVar[str | None] = "Skip a pending or failed phase (or a sub-task with --sub)."

    def apply(self, rules: Rules) -> None:
        rules.skip_phase(self.phase, self.reason)


@dataclass(frozen=True, slots=True)
class RetryPhase(PhaseCommand):
    verb: ClassVar[str] = "retry"
    summary: ClassVar[str] = "Retry a failed phase"
    waits_on_pause: ClassVar[bool] = True
    reads_sub_tasks: ClassVar[bool] = True

    def apply(self, rules: Rules) -> None:
        rules.retry_phase(self.phase)


@dataclass(frozen=True, slots=True)
class ApprovePhase(PhaseCommand):
    by: Who = None
    verb: ClassVar[str] = "approve"
    role: ClassVar[str] = "admin"
    summary: ClassVar[str] = "Approve a phase that requires approval (admin)"
    cli_help: ClassVar[str | None] = "Approve a phase that requires approval (the go/no-go before a cut-over)."
    cli_reply: ClassVar[str | None] = "{migration}: phase {phase} approved by {by}"
    flushes_progress: ClassVar[bool] = False

    def apply(self, rules: Rules) -> None:
        rules.approve_phase(self.phase, self.by if self.by is not None else rules.actor)


@dataclass(frozen=True, slots=True)
class ReviseEstimate(PhaseCommand):
    """A phase's estimated duration, revised mid-run: the ETA uses the new figure from now on."""

    minutes: Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True,
                                    description="the phase's new estimated duration")]
    verb: ClassVar[str] = "estimate"
    summary: ClassVar[str] = "Revise a phase's estimated duration (minutes)"
    flushes_progress: ClassVar[bool] = False
    cli_arguments: ClassVar[tuple[str, ...]] = ("minutes",)
    cli_reply: ClassVar[str | None] = "{migration}: phase {phase} now estimated at {minutes:g} min; ETA {eta}"

    def apply(self, rules: Rules) -> None:
        minutes = self.minutes
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not math.isfinite(minutes) \
                or minutes <= 0:
            raise InvalidInput(f"minutes must be a positive number, not {minutes!r}")
        phase = rules.state.phase(self.phase)
        if phase.status in (Status.COMPLETED, Status.SKIPPED):
            raise InvalidTransition(f"phase {self.phase!r}", phase.status.value, "revise the estimate of",
                                    "its duration is known")
        before = phase.estimated_seconds
        phase.estimated_seconds = float(minutes) * 60.0
        rules.record(phase, "phase.estimate_revised", phase=self.phase, minutes=float(minutes),
                     previous_minutes=None if before is None else before / 60.0)


# -- sub-tasks -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StartSubTask(SubTaskCommand):
    rerun: Annotated[bool, Field(strict=True, description=(
        "a script run again to resume: leave a completed or skipped sub-task as it is (recorded in the "
        "audit trail)"))] = False
    verb: ClassVar[str] = "start"
    summary: ClassVar[str] = "Start a sub-task"
    waits_on_pause: ClassVar[bool] = True

    def apply(self, rules: Rules) -> None:
        rules.start_sub_task(self.phase, self.sub_task, self.rerun is True)


@dataclass(frozen=True, slots=True)
class CompleteSubTask(SubTaskCommand):
    verb: ClassVar[str] = "complete"
    summary: ClassVar[str] = "Complete a sub-task"

    def apply(self, rules: Rules) -> None:
        rules.complete_sub_task(self.phase, self.sub_task)


@dataclass(frozen=True, slots=True)
class FailSubTask(SubTaskCommand):
    error: Error
    verb: ClassVar[str] = "fail"
    summary: ClassVar[str] = "Fail a sub-task"

    def apply(self, rules: Rules) -> None:
        rules.fail_sub_task(self.phase, self.sub_task, self.error)


@dataclass(frozen=True, slots=True)
class SkipSubTask(SubTaskCommand):
    reason: Reason
    verb: ClassVar[str] = "skip"
    summary: ClassVar[str] = "Skip a sub-task"

    def apply(self, rules: Rules) -> None:
        rules.skip_sub_task(self.phase, self.sub_task, self.reason)


# -- control -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Pause(Command):
    reason: Why = None
    verb: ClassVar[str] = "pause"
    target: ClassVar[Target] = Target.MIGRATION
    role: ClassVar[str] = "admin"
    summary: ClassVar[str] = "Pause a migration: its workers wait at their next checkpoint (admin)"
    cli_help: ClassVar[str | None] = "Pause a migration: its workers wait at their next checkpoint."
    flushes_progress: ClassVar[bool] = False
    control_after: ClassVar[Control | None] = Control.PAUSED
    cli_reply: ClassVar[str | None] = "{migration}: {status}"

    def apply(self, rules: Rules) -> None:
        rules.pause(self.reason)


@dataclass(frozen=True, slots=True)
class Resume(Command):
    verb: ClassVar[str] = "resume"
    target: ClassVar[Target] = Target.MIGRATION
    role: ClassVar[str] = "admin"
    summary: ClassVar[str] = "Resume a paused migration (admin)"
    cli_help: ClassVar[str | None] = "Resume a paused migration."
    flushes_progress: ClassVar[bool] = False
    control_after: ClassVar[Control | None] = Control.RUNNING
    cli_reply: ClassVar[str | None] = "{migration}: {status}"

    def apply(self, rules: Rules) -> None:
        rules.resume()


@dataclass(frozen=True, slots=True)
class Throttle(Command):
    reason: Why = None
    verb: ClassVar[str] = "throttle"
    target: ClassVar[Target] = Target.MIGRATION
    summary: ClassVar[str] = ("Say the migration is being throttled: the time until unthrottle is left out "
                              "of the estimate's rates")
    flushes_progress: ClassVar[bool] = False
    cli_reply: ClassVar[str | None] = "{migration}: throttled"

    def apply(self, rules: Rules) -> None:
        rules.throttle(self.reason)


@dataclass(frozen=True, slots=True)
class Unthrottle(Command):
    verb: ClassVar[str] = "unthrottle"
    target: ClassVar[Target] = Target.MIGRATION
    summary: ClassVar[str] = "Say the migration is no longer throttled"
    flushes_progress: ClassVar[bool] = False
    cli_reply: ClassVar[str | None] = "{migration}: no longer throttled"

    def apply(self, rules: Rules) -> None:
        rules.unthrottle()


@dataclass(frozen=True, slots=True)
class Cancel(Command):
    reason: Why = None
    verb: ClassVar[str] = "cancel"
    target: ClassVar[Target] = Target.MIGRATION
    role: ClassVar[str] = "admin"
    summary: ClassVar[str] = "Cancel a migration: its workers raise MigrationCancelled (admin)"
    cli_help: ClassVar[str | None] = ("Cancel a migration: its workers raise MigrationCancelled at their next "
                                      "checkpoint.")
    flushes_progress: ClassVar[bool] = False
    control_after: ClassVar[Control | None] = Control.CANCELLED
    cli_reply: ClassVar[str | None] = "{migration}: {status}"

    def apply(self, rules: Rules) -> None:
        rules.cancel(self.reason)


#: every command, in the order the API documents them
COMMANDS: tuple[type[Command], ...] = (
    StartPhase, CompletePhase, FailPhase, SkipPhase, RetryPhase, ApprovePhase, ReviseEstimate,
    StartSubTask, CompleteSubTask, FailSubTask, SkipSubTask,
    Pause, Resume, Cancel, Throttle, Unthrottle,
)

#: (target, verb) -> command class
BY_VERB: dict[tuple[Target, str], type[Command]] = {(c.target, c.verb): c for c in COMMANDS}
