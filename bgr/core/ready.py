"""Readiness: a start of a process with a probe returns once the probe first passes.

The new instance is watched as the start window does (an exit fails the start with its code and
stderr tail; a launcher that leaves a daemon behind hands over to it), and checked, quickly at
first (50 ms, growing to 0.5 s), until a check passes or ``window`` seconds (``--wait``; 30 by
default) have gone by since the spawn. Then the start fails with the probe's last answer and the
stderr tail, and the process keeps running: it may just be slow, and the guard's liveness checks
take it from there. Probes run here, in the CLI, never inside the managed process.
"""

from __future__ import annotations

import os
import time

from bgr.core import startup
from bgr.errors import SpawnError
from bgr.health import probes, state
from bgr.models import ProcessRecord
from bgr.proc import identity, spawn
from bgr.store import Registry

READY_WINDOW = 30.0
_FIRST_DELAY, _MAX_DELAY = 0.05, 0.5


def probe_environment(record: ProcessRecord) -> dict[str, str]:
    """The environment a ``cmd:`` probe runs in: the process's, without bgr's instance markers (a
    stop must not take a probe for part of the instance)."""
    env = {k: v for k, v in os.environ.items() if k not in spawn.MARKER_KEYS}
    env.update(record.child_env())
    path = spawn.child_path(record.child_env(), record.search_path)
    if path is not None:
        env["PATH"] = path
    env["BGR_NAME"] = record.name
    return env


def watch(reg: Registry, record: ProcessRecord, probe: probes.Probe, window: float) -> startup.Outcome:
    """Wait until ``record``'s new instance passes ``probe`` (see the module docstring)."""
    began = record.started_at or time.time()
    deadline = began + window
    env = probe_environment(record)
    current, daemonized = record, False
    delay = _FIRST_DELAY
    while True:
        code = spawn.wait_exit(current.pid, 0) if current.pid is not None else None
        if code is not None or (daemonized and not identity.leader_alive(current.identity)):
            # As in the start window: follow a daemon through each step of its fork.
            outcome = startup.exited(reg, current, code, time.time() - began)  # raises on failure
            if outcome.how == "finished":
                return outcome
            current, daemonized = outcome.record, True
            continue
        left = deadline - time.time()
        result = probes.check(
            probe._replace(timeout=max(0.05, min(probe.timeout, left))), directory=current.directory, env=env
        )
        now = time.time()
        if result.ok:
            return _healthy(reg, current, now - began, daemonized)
        if now >= deadline:
            _note(reg, current, state.fresh(began)._replace(last_check=now, last_error=result.detail))
            raise _not_ready(current, window, result.detail)
        time.sleep(min(delay, max(0.0, deadline - now)))
        delay = min(delay * 1.5, _MAX_DELAY)


def _healthy(reg: Registry, record: ProcessRecord, after: float, daemonized: bool) -> startup.Outcome:
    now = time.time()
    healthy = state.HealthState(state.HEALTHY, now, "", 0, now)
    event = (state.BECAME_HEALTHY, f"ready after {after:.2f}s")
    updated = reg.update(record.name, instance=record.instance, event=event, health_state=healthy.to_dict())
    return startup.Outcome(updated or record, "daemonized" if daemonized else "healthy", after)


def _note(reg: Registry, record: ProcessRecord, found: state.HealthState) -> None:
    reg.update(record.name, instance=record.instance, health_state=found.to_dict())


def _not_ready(record: ProcessRecord, window: float, detail: str) -> SpawnError:
    from bgr.logfiles import reading

    tail = "".join(reading.tail(record.stderr, startup.TAIL_LINES)).rstrip("\n")
    return SpawnError(
        f"{record.name} did not pass its health check within {window:g}s (last: {detail}); it keeps "
        f"running: bgr {record.name} --logs, or bgr stop {record.name}",
        details=tail,
    )


def probe_of(record: ProcessRecord) -> probes.Probe | None:
    """The record's probe, if it has one."""
    return probes.from_dict(record.health) if record.health else None
