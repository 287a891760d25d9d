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


def find_cycles(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle (a closed path) for each knot of phases that depend on each other (each
    strongly connected component of more than one phase), in declaration order. A phase that
    depends on itself is not included (it is reported on its own)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in deps:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:  # Tarjan's algorithm, iteratively
            node, i = work[-1]
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = [c for c in deps[node] if c in deps and c != node]
            if i < len(children):
                work[-1] = (node, i + 1)
                child = children[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    order = {n: k for k, n in enumerate(deps)}
    cycles = []
    for component in sorted(components, key=lambda c: min(order[n] for n in c)):
        members = set(component)
        start = min(component, key=lambda n: order[n])
        sub = {n: [c for c in deps[n] if c in members and c != n] for n in sorted(members, key=lambda n: order[n])}
        sub = {start: sub[start], **sub}
        cycle = find_cycle(sub)
        if cycle:
            cycles.append(cycle)
    return cycles


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
