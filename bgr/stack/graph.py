"""The dependency graph of a stack: checked (unknown names, cycles, conditions that cannot hold)
and ordered in waves, each wave depending only on earlier ones.

``waves`` is the order ``bgr --down`` stops in (reversed) and what ``--dry-run`` shows; ``--up``
itself starts each process as soon as its own dependencies hold, not wave by wave.
"""

from __future__ import annotations

from collections.abc import Iterable

from bgr.errors import StackError
from bgr.stack.files import COMPLETED, HEALTHY, Service, Stack


def check(stack: Stack) -> None:
    """StackError naming the file, the process and the key for a dependency that cannot work."""
    for service in stack.services:
        for dep in service.depends_on:
            where = f"{stack.path}: process {service.name}, key depends_on.{dep.name}"
            target = stack.get(dep.name)
            if dep.name == service.name:
                raise StackError(f"{where}: a process cannot depend on itself")
            if target is None:
                known = ", ".join(n for n in stack.names() if n != service.name) or "none"
                raise StackError(f"{where}: no process {dep.name} in the file (the others: {known})")
            if dep.condition == HEALTHY and not target.request.health:
                raise StackError(f"{where}: {dep.name} has no health check to pass; give it health = CHECK")
            if dep.condition == COMPLETED and target.request.cron:
                raise StackError(f"{where}: {dep.name} is a cron job; it never completes once for good")
    cycle = find_cycle(stack.services)
    if cycle:
        raise StackError(
            f"{stack.path}: process {cycle[0]}, key depends_on: a cycle, {' → '.join([*cycle, cycle[0]])}"
        )


def find_cycle(services: Iterable[Service]) -> list[str]:
    """One dependency cycle as a list of names (empty when there is none)."""
    edges = {s.name: [d.name for d in s.depends_on] for s in services}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = 1
        path.append(name)
        for nxt in edges.get(name, ()):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[name] = 2
        return []

    for name in edges:
        if name not in state and (found := visit(name)):
            return found
    return []


def waves(services: Iterable[Service]) -> list[list[str]]:
    """The names in dependency order: each wave depends only on earlier waves (file order within
    one). Dependencies outside ``services`` are taken as met."""
    pending = {s.name: {d.name for d in s.depends_on} for s in services}
    done: set[str] = set()
    order: list[list[str]] = []
    while pending:
        wave = [n for n, deps in pending.items() if not (deps & pending.keys())]
        assert wave, "check() refuses cycles"
        order.append(wave)
        done.update(wave)
        for name in wave:
            del pending[name]
    return order


def closure(stack: Stack, names: Iterable[str]) -> list[str]:
    """``names`` and everything they depend on, directly or not, in file order."""
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        service = stack.get(name)
        if service is not None:
            todo.extend(d.name for d in service.depends_on)
    return [n for n in stack.names() if n in wanted]
