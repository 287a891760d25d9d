"""Free-form values users attach (metadata): checked once, in the core, for every way in.

Metadata is JSON: objects with string keys, arrays, strings, finite numbers, booleans and null.
It is bounded in depth and size, because it is stored, sent on every dashboard read and on the
event stream, and a value a browser's ``JSON.parse`` cannot read (``NaN``) or a serializer
cannot write (nesting hundreds deep) would break every reader of the migration afterwards.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from migratrack.errors import InvalidInput

#: deepest nesting of objects and arrays in a metadata value
MAX_DEPTH = 32
#: largest metadata value, as compact JSON
MAX_BYTES = 64 * 1024


def metadata_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as metadata (with where), or None if nothing is."""
    if not isinstance(value, Mapping):
        return f"metadata must be an object (a dict), not {type(value).__name__}"
    stack: list[tuple[Any, str, int]] = [(value, "metadata", 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, Mapping):
            if depth > MAX_DEPTH:
                return f"{where} is nested deeper than {MAX_DEPTH} levels"
            for k, v in item.items():
                if not isinstance(k, str):
                    return f"{where} has a key that is not a string: {k!r}"
                stack.append((v, f"{where}.{k}", depth + 1))
        elif isinstance(item, list | tuple):
            if depth > MAX_DEPTH:
                return f"{where} is nested deeper than {MAX_DEPTH} levels"
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{where} is {item}: only finite numbers are JSON"
        elif not (item is None or isinstance(item, str | int | bool)):
            return f"{where} is a {type(item).__name__}: metadata holds JSON values only"
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_BYTES:
        return f"metadata is {size} bytes as JSON; the limit is {MAX_BYTES}"
    return None


def check_metadata(value: Any) -> dict[str, Any]:
    """``value`` as a metadata dict; :class:`InvalidInput` naming the problem otherwise."""
    problem = metadata_problem(value)
    if problem is not None:
        raise InvalidInput(problem)
    return dict(value)


def _validated(value: dict[str, Any]) -> dict[str, Any]:
    problem = metadata_problem(value)
    if problem is not None:
        raise PydanticCustomError("metadata", problem)
    return value


#: metadata in a pydantic model: the same rule as :func:`check_metadata`
Metadata = Annotated[dict[str, Any], AfterValidator(_validated)]
