"""The dependency DAG: cycles, order, blocking phases and the longest path."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as a closed path [a, b, ..., a], or None. Iterative DFS."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(deps, white)
    for root in deps:
        if color[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        color[root] = grey
        while stack:
            node, i = stack[-1]
            children = deps[node]
            if i < len(children):
                stack[-1] = (node, i + 1)
                child = children[i]
                if color[child] == grey:
                    return [*path[path.index(child):], child]
                if color[child] == white:
                    color[child] = grey
                    stack.append((child, 0))
                    path.append(child)
            else:
                color[node] = black
                stack.pop()
                path.pop()
    return None


def topological_order(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Dependencies first; ties keep declaration order."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node: str) -> None:
        stack = [(node, iter(deps[node]))]
        while stack:
            current, it = stack[-1]
            child = next(it, None)
            if child is None:
                stack.pop()
                if current not in seen:
                    seen.add(current)
                    order.append(current)
            elif child not in seen:
                stack.append((child, iter(deps[child])))

    for n in deps:
        if n not in seen:
            visit(n)
    return order


def longest_finish(
    deps: Mapping[str, Sequence[str]], remaining: Callable[[str], float]
) -> dict[str, float]:
    """Earliest finish (seconds from now) of each phase if independent phases run side by side.

    A phase starts when all its dependencies have finished and then needs ``remaining(phase)``
    seconds. The maximum over all phases is the critical path's length.
    """
    finish: dict[str, float] = {}
    for node in topological_order(deps):
        start = max((finish[d] for d in deps[node]), default=0.0)
        finish[node] = start + remaining(node)
    return finish


def critical_path(deps: Mapping[str, Sequence[str]], finish: Mapping[str, float]) -> list[str]:
    """The chain of phases that determines the latest finish, first to last."""
    if not finish:
        return []
    node = max(finish, key=lambda n: finish[n])
    path = [node]
    while deps[node]:
        node = max(deps[node], key=lambda n: finish[n])
        path.append(node)
    return path[::-1]
