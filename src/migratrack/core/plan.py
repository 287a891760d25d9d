"""The plan: one pydantic model validates it wherever it comes from — Python objects given to
the SDK, a YAML/JSON plan file, or the body of ``POST /api/migrations``.

The rules, the same on every way in:

- An id (of a migration, a phase or a sub-task) is 1 to 200 characters with no ``/``, no
  whitespace — not even an inner space — and no control, zero-width or text-direction
  characters (an id must print as what it is, in a terminal or a page). Ids travel in URL paths,
  command lines and store keys, where a space needs quoting and ``"copy "`` looks like ``"copy"``.
- A duration is minutes (a finite number ≥ 0, the seed's unit) or, in Python, a ``timedelta``;
  the model keeps minutes.
- The seed's camelCase names (``estimatedDuration``, ``subTasks``, ``requiresApproval``) are
  accepted, and so are the state fields of its ``MigrationPhase`` (``status``, ``progress``,
  ``actualDuration``, ``errors``, ``warnings``), which are ignored. Any other unknown field is an
  error, and so are duplicate ids, unknown dependencies and dependency cycles.

:func:`check_plan` turns pydantic's errors into one :class:`~migratrack.errors.InvalidPlan` that
lists every problem, each with where it is (``phases[2] ('copy').dependencies[0]``).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from migratrack.core.graph import find_cycles
from migratrack.core.values import Metadata as CheckedMetadata
from migratrack.errors import InvalidInput, InvalidPlan

ID_MAX = 200
#: the id rule as documented in the JSON schema; ``_ID`` applies it (``$`` in Python would
#: let a trailing newline through, so the check uses fullmatch)
ID_PATTERN = r"^[^/\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]+$"
_ID = re.compile(ID_PATTERN[1:-1])
_ID_SCHEMA: JsonSchemaValue = {"type": "string", "minLength": 1, "maxLength": ID_MAX, "pattern": ID_PATTERN}

#: a location inside the plan, as pydantic reports it: ("phases", 2, "dependencies", 0)
Loc = tuple[str | int, ...]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= ID_MAX and _ID.fullmatch(value) is not None


def _id(value: Any) -> str:
    if not isinstance(value, str):
        hint = " (quote it in YAML)" if isinstance(value, int | float) else ""
        raise PydanticCustomError("id_type", f"an id must be a string, not {type(value).__name__}{hint}")
    if not _is_id(value):
        raise PydanticCustomError(
            "id_format",
            f"{_short(value)} is not a valid id: use 1 to {ID_MAX} characters without '/', "
            "whitespace, control or text-direction characters",
        )
    return value


def check_id(value: Any, what: str = "id") -> str:
    """``value`` if it is a valid id; else InvalidInput naming ``what`` and the rule."""
    try:
        return _id(value)
    except PydanticCustomError as exc:
        raise InvalidInput(f"{what}: {exc.message()}") from None


#: the longest estimate taken, in minutes (about 19 years): beyond it, sums of estimates and dates
#: planned from them overflow
MAX_MINUTES = 10_000_000


def _minutes(value: Any) -> float:
    if isinstance(value, timedelta):
        minutes = value.total_seconds() / 60.0
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "duration_type", f"must be minutes (a number) or a timedelta, not {type(value).__name__}")
    else:
        try:
            minutes = float(value)
        except OverflowError:  # an int too large for a float
            minutes = math.inf
    shown = str(value) if isinstance(value, timedelta) else _short(value)
    if not math.isfinite(minutes) or minutes < 0:
        raise PydanticCustomError("duration_value", f"must be a finite, non-negative duration in minutes, got {shown}")
    if minutes > MAX_MINUTES:
        raise PydanticCustomError("duration_value", f"must be at most {MAX_MINUTES:,} minutes (about 19 years), "
                                                    f"got {shown}")
    return minutes


class _NullIsEmpty:
    """``null`` counts as not given: YAML reads ``dependencies:`` with nothing after it as null."""

    def __init__(self, empty: Callable[[], Any]) -> None:
        self.empty = empty

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            lambda v: self.empty() if v is None else v, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [handler(schema), {"type": "null"}]}


class _OrIdAlone:
    """Documents that a sub-task may be given as its id alone (``SubTaskSpec`` accepts it)."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [_ID_SCHEMA, handler(schema)]}


#: the one id type: migrations, phases, sub-tasks, dependencies
Id = Annotated[str, BeforeValidator(_id), WithJsonSchema(_ID_SCHEMA)]
Minutes = Annotated[float, Field(ge=0, le=MAX_MINUTES, allow_inf_nan=False), BeforeValidator(_minutes)]
Name = Annotated[str, Field(max_length=500)]
Metadata = Annotated[CheckedMetadata, _NullIsEmpty(dict)]

_IGNORED = "a state field of the seed's shape: accepted and ignored"


def _problems_error(title: str, problems: Iterable[tuple[Loc, str, str, Any]],
                    earlier: ValidationError | None = None) -> ValidationError:
    """A ValidationError with ``earlier``'s errors and more (loc, type, message, input)."""
    details: list[InitErrorDetails] = []
    if earlier is not None:
        # re-raised as custom errors: from_exception_data() only rebuilds pydantic's own types
        # with their exact context, and the rendered message is all that is needed downstream
        details += [{"type": PydanticCustomError(e["type"], e["msg"]), "loc": e["loc"], "input": e["input"]}
                    for e in earlier.errors()]
    details += [{"type": PydanticCustomError(kind, message), "loc": loc, "input": value}
                for loc, kind, message, value in problems]
    return ValidationError.from_exception_data(title, details)


class SubTaskSpec(BaseModel):
    """A declared sub-task. An id string alone stands for ``{"id": ...}``."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    id: Id
    name: Name | None = Field(default=None, description="default: the id")
    estimated_duration: Minutes | None = Field(
        default=None, validation_alias=AliasChoices("estimated_duration", "estimatedDuration"), description="minutes")
    metadata: Metadata = Field(default_factory=dict)
    status: Any = Field(default=None, exclude=True, description=_IGNORED)
    progress: Any = Field(default=None, exclude=True, description=_IGNORED)
    description: Any = Field(default=None, exclude=True, description="accepted and ignored")

    @model_validator(mode="before")
    @classmethod
    def _id_alone(cls, data: Any) -> Any:
        return {"id": data} if isinstance(data, str) else data


class PhaseSpec(BaseModel):
    """A declared phase."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    id: Id
    name: Name | None = Field(default=None, description="default: the id")
    description: Annotated[str, Field(max_length=10_000), _NullIsEmpty(str)] = ""
    dependencies: Annotated[list[Id], _NullIsEmpty(list)] = Field(
        default_factory=list, description="ids of phases that must finish first")
    estimated_duration: Minutes | None = Field(
        default=None, validation_alias=AliasChoices("estimated_duration", "estimatedDuration"),
        description="minutes (the seed's unit)")
    sub_tasks: Annotated[list[Annotated[SubTaskSpec, _OrIdAlone()]], _NullIsEmpty(list)] = Field(
        default_factory=list, validation_alias=AliasChoices("sub_tasks", "subTasks"))
    metadata: Metadata = Field(default_factory=dict)
    requires_approval: bool = Field(
        default=False, validation_alias=AliasChoices("requires_approval", "requiresApproval"),
        description="the phase waits for an approval before it starts")
    status: Any = Field(default=None, exclude=True, description=_IGNORED)
    progress: Any = Field(default=None, exclude=True, description=_IGNORED)
    actual_duration: Any = Field(default=None, alias="actualDuration", exclude=True, description=_IGNORED)
    errors: Any = Field(default=None, exclude=True, description=_IGNORED)
    warnings: Any = Field(default=None, exclude=True, description=_IGNORED)

    @field_validator("sub_tasks")
    @classmethod
    def _unique_sub_tasks(cls, subs: list[SubTaskSpec]) -> list[SubTaskSpec]:
        seen: set[str] = set()
        problems: list[tuple[Loc, str, str, Any]] = []
        for k, s in enumerate(subs):
            if s.id in seen:
                problems.append(((k, "id"), "duplicate_id", f"duplicate sub-task id {s.id!r}", s.id))
            seen.add(s.id)
        if problems:
            raise _problems_error(cls.__name__, problems)
        return subs


class PlanSpec(BaseModel):
    """A migration's plan: its phases (at least one), and optionally its id, name and metadata."""

    model_config = ConfigDict(extra="forbid")

    id: Id | None = Field(default=None, description="the migration's id")
    name: Name | None = Field(default=None, description="default: the id")
    phases: list[PhaseSpec] = Field(min_length=1)
    metadata: Metadata = Field(default_factory=dict, description="e.g. error_rate_threshold (percent)")

    @field_validator("phases", mode="wrap")
    @classmethod
    def _graph(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> list[PhaseSpec]:
        try:
            phases: list[PhaseSpec] = handler(value)
        except ValidationError as exc:
            # check the graph of what is readable too: the author should see every problem at once
            problems = _graph_problems([(_loose_id(p), _loose_deps(p)) for p in value]
                                       if isinstance(value, list | tuple) else [])
            if not problems:
                raise
            raise _problems_error(cls.__name__, problems, exc) from None
        problems = _graph_problems([(p.id, p.dependencies) for p in phases])
        if problems:
            raise _problems_error(cls.__name__, problems)
        return phases


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _loose_id(item: Any) -> str | None:
    value = _field(item, "id")
    return value if _is_id(value) else None


def _loose_deps(item: Any) -> list[str]:
    value = _field(item, "dependencies")
    return [d for d in value if _is_id(d)] if isinstance(value, list | tuple) else []


def _graph_problems(nodes: Sequence[tuple[str | None, Sequence[str]]]) -> list[tuple[Loc, str, str, Any]]:
    """Duplicate phase ids, self- and unknown dependencies, and every cycle (as a closed path)."""
    problems: list[tuple[Loc, str, str, Any]] = []
    first: dict[str, int] = {}
    for i, (pid, _) in enumerate(nodes):
        if pid is None:
            continue
        if pid in first:
            problems.append(((i, "id"), "duplicate_id", f"duplicate phase id {pid!r} (phases[{first[pid]}] has it)",
                             pid))
        else:
            first[pid] = i
    graph: dict[str, list[str]] = {pid: [] for pid in first}
    for i, (pid, deps) in enumerate(nodes):
        for j, dep in enumerate(deps):
            if dep == pid:
                problems.append(((i, "dependencies", j), "dependency", f"phase {pid!r} depends on itself", dep))
            elif dep not in first:
                problems.append(((i, "dependencies", j), "dependency",
                                 f"depends on unknown phase {dep!r}; known phases: {', '.join(first)}", dep))
            elif pid is not None and first[pid] == i:
                graph[pid].append(dep)
    for cycle in find_cycles(graph):  # every knot of phases that wait on each other, each named
        problems.append(((first[cycle[0]], "dependencies"), "dependency_cycle",
                         "dependency cycle: " + " -> ".join(cycle), cycle))
    return problems


# -- from pydantic's errors to one InvalidPlan ---------------------------------------------------

_NESTED: dict[tuple[type[BaseModel], str], type[BaseModel]] = {
    (PlanSpec, "phases"): PhaseSpec, (PhaseSpec, "sub_tasks"): SubTaskSpec, (PhaseSpec, "subTasks"): SubTaskSpec,
}
_KIND = {PlanSpec: "plan", PhaseSpec: "phase", SubTaskSpec: "sub-task"}


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel]:
    model = root
    for key in loc:
        if isinstance(key, str):
            model = _NESTED.get((model, key), model)
    return model


def _where(loc: Loc, data: Any) -> str:
    """``phases[2] ('copy').dependencies[0]``: the path, with the id of each phase and sub-task."""
    out = ""
    node = data
    for n, key in enumerate(loc):
        if isinstance(key, int):
            node = node[key] if isinstance(node, list | tuple) and -len(node) <= key < len(node) else None
            out += f"[{key}]"
            if n and loc[n - 1] in ("phases", "sub_tasks", "subTasks"):
                ident = node if isinstance(node, str) else _field(node, "id") if node is not None else None
                out += f" ({_short(ident)})" if isinstance(ident, str) and ident else ""
        else:
            node = node.get(key) if isinstance(node, Mapping) else getattr(node, key, None)
            out += f".{key}" if out else key
    return out


def _message(error: Mapping[str, Any], root: type[BaseModel], loc: Loc) -> str:
    kind, value = error["type"], error.get("input")
    model = _model_at(root, loc[:-1])
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        fields = {name: f for name, f in model.model_fields.items() if not f.exclude}
        for name, f in fields.items():
            if isinstance(f.validation_alias, AliasChoices) and key in f.validation_alias.choices and key != name:
                return f"{key!r} repeats {name!r}; give only one of them"
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        what = "top-level key" if model is PlanSpec else "field"
        return f"unknown {what} {key!r}; {hint}allowed: {', '.join(fields)}"
    if loc == ("phases",) and kind in ("missing", "list_type"):
        return "'phases' must be a list of phases" + (f", not {type(value).__name__}" if kind == "list_type" else "")
    if kind == "missing":
        return f"missing; every {_KIND.get(model, 'item')} needs one" if loc else "missing"
    if kind in ("model_type", "model_attributes_type") and (not loc or isinstance(loc[-1], int)):
        alone = "an id or " if _model_at(root, loc) is SubTaskSpec else ""
        return f"must be {alone}a mapping with an 'id', not {type(value).__name__}"
    message = str(error["msg"])
    if kind not in _OURS and isinstance(value, str | int | float | None):  # pydantic's messages omit the value
        message += f", got {_short(value)}"
    return message


#: the error types raised here, whose messages already say what was wrong
_OURS = frozenset({"id_type", "id_format", "duration_type", "duration_value", "duplicate_id", "dependency",
                   "dependency_cycle"})


def _phase_index(loc: Loc) -> int:
    return loc[1] if len(loc) > 1 and loc[0] == "phases" and isinstance(loc[1], int) else -1


def invalid_plan(exc: ValidationError, data: Any, source: str = "plan", *, root: type[BaseModel] = PlanSpec,
                 line_of: Callable[[Loc], int | None] | None = None) -> InvalidPlan:
    """One InvalidPlan listing every problem, one a line: ``source[:line]: where: what to fix``.

    ``data`` is what was validated (to name the phases), ``line_of`` where a location is in the
    source file, if known."""
    found: list[tuple[int, int, str]] = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        line = line_of(loc) if line_of else None
        at = f"{source}:{line}" if line else source
        where = _where(loc, data)
        found.append((_phase_index(loc), line or 0, f"{at}: {where}: {_message(error, root, loc)}" if where
                      else f"{at}: {_message(error, root, loc)}"))
    # phase by phase, and in a file top to bottom; the graph's problems come last otherwise
    lines = list(dict.fromkeys(text for _, _, text in sorted(found, key=lambda f: f[:2])))
    if len(lines) == 1:
        return InvalidPlan(lines[0])
    return InvalidPlan(f"{source}: {len(lines)} problems\n" + "\n".join(lines))


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on a migration's size, so that one client cannot make a migration that every later
    read pays for (settings: MIGRATRACK_MAX_PHASES, MIGRATRACK_MAX_SUB_TASKS, MIGRATRACK_MAX_ALERTS)."""

    #: phases per migration
    max_phases: int = 10_000
    #: sub-tasks per phase
    max_sub_tasks: int = 100_000
    #: alerts a migration keeps: create_alert beyond it is refused (the automatic rules' own
    #: alerts, few and de-duplicated by fingerprint, are never refused)
    max_alerts: int = 10_000


DEFAULT_LIMITS = Limits()


def check_limits(spec: PlanSpec, limits: Limits, source: str = "plan") -> PlanSpec:
    problems = []
    if len(spec.phases) > limits.max_phases:
        problems.append(f"{len(spec.phases)} phases: at most {limits.max_phases} are allowed "
                        "(split the migration, or raise MIGRATRACK_MAX_PHASES on the server)")
    for p in spec.phases:
        if len(p.sub_tasks) > limits.max_sub_tasks:
            problems.append(f"phase {p.id!r} has {len(p.sub_tasks)} sub-tasks: at most {limits.max_sub_tasks} "
                            "are allowed (group them, or raise MIGRATRACK_MAX_SUB_TASKS on the server)")
    if problems:
        raise InvalidPlan(f"{source}: " + "; ".join(problems))
    return spec


def parse_plan_spec(data: Mapping[str, Any], source: str = "plan", *,
                    line_of: Callable[[Loc], int | None] | None = None,
                    limits: Limits = DEFAULT_LIMITS) -> PlanSpec:
    """Validate a plan document (``phases`` and optionally ``id``, ``name``, ``metadata``)."""
    try:
        spec = PlanSpec.model_validate(data)
    except ValidationError as exc:
        raise invalid_plan(exc, data, source, line_of=line_of) from None
    return check_limits(spec, limits, source)


def check_plan(migration_id: str, phases: Iterable[Any], name: str | None = None, *,
               limits: Limits = DEFAULT_LIMITS) -> PlanSpec:
    """Validate the SDK's input: a migration id and its phases (``Phase`` objects or mappings)."""
    if isinstance(phases, Iterable) and not isinstance(phases, str | bytes | Mapping | list | tuple):
        phases = list(phases)  # a generator is read twice: to validate, and to name phases in errors
    data: dict[str, Any] = {"id": migration_id, "phases": phases}
    if name is not None:
        data["name"] = name
    return parse_plan_spec(data, limits=limits)


def check_phase(value: Any) -> PhaseSpec:
    try:
        return PhaseSpec.model_validate(value)
    except ValidationError as exc:
        ident = _field(value, "id")
        raise invalid_plan(exc, value, f"phase {_short(ident)}" if isinstance(ident, str) else "phase",
                           root=PhaseSpec) from None


def check_sub_task(value: Any, phase_id: str) -> SubTaskSpec:
    try:
        return SubTaskSpec.model_validate(value)
    except ValidationError as exc:
        raise invalid_plan(exc, value, f"phase {phase_id!r} sub-task", root=SubTaskSpec) from None
