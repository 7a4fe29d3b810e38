"""What ``bgr --up`` would do, as data: one step per process, with the reason.

A process is started when it is not registered or not running, restarted when the definition the
file gives differs from the one stored (compared by :func:`fingerprint`, stored with the row), and
kept when it is unchanged and running (or, a one-off job, finished with exit code 0). Processes the
registry has from this file that the file no longer lists are reported, and stopped with
``--prune``. The plan is pure: the caller reads the registry and carries it out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence

from bgr.record import Record
from bgr.stack import graph
from bgr.stack.files import Service, Stack

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

START, RESTART, KEEP, REMOVED, PRUNE = "start", "restart", "keep", "removed", "prune"
_DEFAULT_CONFIG = ".config.toml"
# Statuses in which an unchanged process is left alone.
_LEFT_RUNNING = ("running", "starting", "scheduled")


class Current(Record):
    """What the registry says about one name right now."""

    name: str
    status: str  # a bgr.models.Status value
    pid: int | None = None
    exit_code: int | None = None
    stack: Mapping[str, Any] = {}


class Step(Record):
    """One process's part of the plan."""

    name: str
    action: str  # START, RESTART, KEEP, REMOVED or PRUNE
    reason: str


class Plan(Record):
    """The steps, in dependency order (removed ones last)."""

    stack: Stack
    steps: tuple[Step, ...]

    def acting(self) -> tuple[Step, ...]:
        """The steps that start, restart or keep a process of the file."""
        return tuple(s for s in self.steps if s.action in (START, RESTART, KEEP))


def fingerprint(service: Service) -> str:
    """A hash of everything that makes up the process's definition: what the file says (its
    ``.env`` files already read in) and the bytes of its config file. ``depends_on`` is left out:
    it orders starts but changes nothing about the process itself."""
    request = service.request
    fields = {k: v for k, v in request._asdict().items() if k not in ("name", "force", "stack")}
    fields = {k: dict(v) if isinstance(v, Mapping) else v for k, v in fields.items()}
    # Left out when unset, so that the hashes stored before these keys existed still match:
    # adding them must not restart every stack on the next --up.
    for key in ("max_memory", "restart_every"):
        if not fields.get(key):
            fields.pop(key, None)
    config = request.config or os.path.join(request.directory or ".", _DEFAULT_CONFIG)
    try:
        with open(config, "rb") as fh:
            fields["config_digest"] = hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        fields["config_digest"] = None
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def membership(stack: Stack, service: Service) -> dict[str, Any]:
    """What the row keeps about the stack it came from (``ProcessRecord.stack``)."""
    return {
        "file": stack.path,
        "name": stack.name,
        "hash": fingerprint(service),
        "depends_on": {d.name: d.condition for d in service.depends_on},
    }


def make(
    stack: Stack, current: Mapping[str, Current], *, names: Sequence[str] = (), prune: bool = False
) -> Plan:
    """The plan for bringing ``names`` (and what they depend on; all by default) up."""
    chosen = graph.closure(stack, names) if names else list(stack.names())
    services = [s for s in stack.services if s.name in chosen]
    order = [name for wave in graph.waves(services) for name in wave]
    steps = [_step(stack, service, current.get(service.name)) for service in _ordered(services, order)]
    for name, row in sorted(current.items()):
        if row.stack.get("file") == stack.path and stack.get(name) is None:
            action = PRUNE if prune else REMOVED
            why = f"no longer in {os.path.basename(stack.path)}"
            steps.append(Step(name, action, why if prune else f"{why}; bgr --up --prune stops it"))
    return Plan(stack, tuple(steps))


def _ordered(services: list[Service], order: list[str]) -> list[Service]:
    by_name = {s.name: s for s in services}
    return [by_name[name] for name in order]


def _step(stack: Stack, service: Service, row: Current | None) -> Step:
    if row is None:
        return Step(service.name, START, "new")
    running = row.status in _LEFT_RUNNING
    stored = row.stack.get("hash")
    if stored != fingerprint(service):
        why = _why_changed(stack, row)
        return Step(service.name, RESTART if running else START, why)
    if running:
        pid = f" (pid {row.pid})" if row.pid else ""
        return Step(service.name, KEEP, f"unchanged, {row.status}{pid}")
    if row.status == "exited" and row.exit_code == 0:
        return Step(service.name, KEEP, "unchanged, finished with exit code 0")
    return Step(service.name, START, f"unchanged, {row.status}")


def _why_changed(stack: Stack, row: Current) -> str:
    origin = row.stack.get("file")
    if origin is None:
        return "defined outside a stack file until now"
    if origin != stack.path:
        return f"was defined by {origin}"
    if not row.stack.get("hash"):
        return "changed outside the file since the last --up"
    return "changed"
