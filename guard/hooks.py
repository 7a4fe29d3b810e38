"""Alert hooks: ``--on-failure CMD`` (per process) and ``bgr-guard --on-event CMD`` (for all).

A hook is ``/bin/sh -c CMD`` with ``BGR_EVENT`` (crashed, fatal, unhealthy), ``BGR_NAME``,
``BGR_EXIT_CODE`` (empty when unknown or not an exit) and ``BGR_REASON`` in its environment, run
in the guard's directory. It never delays a restart: it is started and left to run, reaped by a
later look. It is bounded in time (``HOOK_TIMEOUT``, then its whole process group is killed), and
at most one hook runs per process and command: an event while one runs waits for it, and only
the latest such event does (it replaces an earlier one that waited), so a crash loop cannot
fork-bomb the machine with notifications, yet the last word (``fatal`` after ``unhealthy``) is
never lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping

from bgr.guard_api import Record

log = logging.getLogger(__name__)

HOOK_TIMEOUT = 30.0
EVENTS = ("crashed", "fatal", "unhealthy")


class _Event(Record):
    """What a hook is told."""

    event: str
    name: str
    exit_code: int | None
    reason: str


class _Running:
    """A hook on its way: its process and when it must be done."""

    def __init__(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        self.proc = proc
        self.deadline = deadline


class Hooks:
    """Runs the hooks of one guard; thread-safe (the watcher, the jobs and health checks fire them)."""

    def __init__(
        self,
        on_event: str | None = None,
        *,
        timeout: float = HOOK_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_event = on_event
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], _Running] = {}
        # The latest event that came while the hook of its (name, command) ran.
        self._waiting: dict[tuple[str, str], _Event] = {}

    def fire(
        self, event: str, name: str, *, exit_code: int | None, reason: str, on_failure: str | None
    ) -> list[str]:
        """Start the hooks for ``event`` on ``name`` (``on_failure``: the process's own); the
        commands started. Returns at once."""
        started = []
        for command in filter(None, (on_failure, self.on_event)):
            if self._start(command, event, name, exit_code, reason):
                started.append(command)
        return started

    def _start(self, command: str, event: str, name: str, exit_code: int | None, reason: str) -> bool:
        key = (name, command)
        with self._lock:
            self._collect()
            what = _Event(event, name, exit_code, reason)
            if key in self._running:
                replaced = self._waiting.get(key)
                self._waiting[key] = what
                skipped = f"; {replaced.event} is not run" if replaced else ""
                log.warning("%s: hook still running; %s waits for it%s: %s", name, event, skipped, command)
                return False
            return self._spawn(key, what)

    def _spawn(self, key: tuple[str, str], what: _Event) -> bool:
        """Start the hook ``key`` (name, command) now; the caller holds the lock, and none runs for it."""
        name, command = key
        env = _environment(*what)
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", command],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # A group of its own, so a timeout kills all of it; the guard's session, so its
                # reaper (which collects orphans of other sessions) leaves this exit to us.
                process_group=0,
            )
        except OSError as exc:
            log.error("%s: hook could not start (%s): %s", name, exc.strerror or exc, command)
            return False
        self._running[key] = _Running(proc, self._clock() + self.timeout)
        log.info("%s: hook started for %s (pid %d)", name, what.event, proc.pid)
        return True

    def collect(self) -> None:
        """Reap finished hooks and kill the ones past their time (called from the guard's passes)."""
        with self._lock:
            self._collect()

    def _collect(self) -> None:
        self._reap()
        for key in [k for k in self._waiting if k not in self._running]:
            self._spawn(key, self._waiting.pop(key))

    def _reap(self) -> None:
        now = self._clock()
        for key, running in list(self._running.items()):
            proc = running.proc
            if proc.poll() is not None:
                if proc.returncode:
                    log.warning("%s: hook exited with %d: %s", key[0], proc.returncode, key[1])
                del self._running[key]
            elif now >= running.deadline:
                log.warning("%s: hook killed after %gs: %s", key[0], self.timeout, key[1])
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # not reaped yet: the group id is still ours
                proc.wait()
                del self._running[key]

    def running(self) -> int:
        with self._lock:
            self._collect()
            return len(self._running)

    def close(self) -> None:
        """Wait briefly for the hooks still running, then kill them (the guard is stopping)."""
        deadline = self._clock() + 2.0
        while self.running() and self._clock() < deadline:
            time.sleep(0.05)
        with self._lock:
            for (name, command), what in self._waiting.items():
                log.warning("%s: the guard stops; the hook for %s is not run: %s", name, what.event, command)
            self._waiting.clear()
            for running in self._running.values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(running.proc.pid, signal.SIGKILL)
                running.proc.wait()
            self._running.clear()


def _environment(event: str, name: str, exit_code: int | None, reason: str) -> Mapping[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BGR_INSTANCE", "BGR_OWNER")}
    env.update(
        BGR_EVENT=event,
        BGR_NAME=name,
        BGR_EXIT_CODE="" if exit_code is None else str(exit_code),
        BGR_REASON=reason,
    )
    return env
