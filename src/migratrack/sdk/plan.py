"""Plan files: the phases of a migration in YAML or JSON, validated by the plan's model
(``core/plan.py``) like plans given to the SDK or the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migratrack.core.plan import Loc, parse_plan_spec
from migratrack.errors import InvalidPlan


@dataclass(frozen=True, slots=True)
class Plan:
    phases: list[dict[str, Any]]
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def parse_plan(data: Any, source: str = "plan", *, line_of: Callable[[Loc], int | None] | None = None) -> Plan:
    """A plan is a list of phases, or a mapping with ``phases`` (and optional ``id``, ``name``,
    ``metadata``). Raises InvalidPlan listing every problem, each with where it is."""
    if isinstance(data, list):
        data = {"phases": data}
    elif not isinstance(data, dict):
        raise InvalidPlan(f"{source}: a plan is a list of phases or a mapping with 'phases'")
    spec = parse_plan_spec(data, source, line_of=line_of)
    return Plan(phases=[p.model_dump(exclude_none=True) for p in spec.phases], name=spec.name,
                metadata=spec.metadata)


def load_plan(path: str | Path) -> Plan:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidPlan(f"cannot read plan file {str(p)!r}: {exc.strerror}") from exc
    is_json = p.suffix.lower() == ".json"
    try:
        data = json.loads(text) if is_json else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if is_json else "YAML"
        raise InvalidPlan(f"plan file {str(p)!r} is not valid {kind}: {exc}") from exc
    return parse_plan(data, str(p), line_of=None if is_json else _yaml_lines(text))


def _yaml_lines(text: str) -> Callable[[Loc], int | None]:
    """The line of a location in the YAML source, composed only when a plan has errors."""
    root: list[yaml.Node | None] = []

    def line_of(loc: Loc) -> int | None:
        if not root:
            root.append(yaml.compose(text, Loader=yaml.SafeLoader))
        node = root[0]
        if isinstance(node, yaml.SequenceNode) and loc[:1] == ("phases",):
            loc = loc[1:]  # the plan is a bare list of phases
        line = None
        for key in loc:
            if node is None:
                break
            line = node.start_mark.line + 1
            node = _child(node, key)
        return node.start_mark.line + 1 if node is not None else line

    return line_of


def _child(node: yaml.Node, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int):
        return node.value[key] if 0 <= key < len(node.value) else None
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                return v  # type: ignore[no-any-return]
    return None
