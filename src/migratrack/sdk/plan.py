"""Plan files: the phases of a migration in YAML or JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migratrack.errors import InvalidPlan


@dataclass(frozen=True, slots=True)
class Plan:
    phases: list[dict[str, Any]]
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def parse_plan(data: Any, source: str = "plan") -> Plan:
    """A plan is a list of phases, or a mapping with ``phases`` (and optional ``name``, ``metadata``)."""
    if isinstance(data, list):
        return Plan(phases=data)
    if isinstance(data, dict):
        unknown = set(data) - {"name", "phases", "metadata", "id"}
        if unknown:
            raise InvalidPlan(f"{source}: unknown top-level key(s) {sorted(unknown)}; use name, phases, metadata")
        phases = data.get("phases")
        if not isinstance(phases, list):
            raise InvalidPlan(f"{source}: 'phases' must be a list of phases")
        meta = data.get("metadata") or {}
        if not isinstance(meta, dict):
            raise InvalidPlan(f"{source}: 'metadata' must be a mapping")
        return Plan(phases=phases, name=data.get("name"), metadata=meta)
    raise InvalidPlan(f"{source}: a plan is a list of phases or a mapping with 'phases'")


def load_plan(path: str | Path) -> Plan:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidPlan(f"cannot read plan file {str(p)!r}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if p.suffix.lower() == ".json" else "YAML"
        raise InvalidPlan(f"plan file {str(p)!r} is not valid {kind}: {exc}") from exc
    return parse_plan(data, str(p))
