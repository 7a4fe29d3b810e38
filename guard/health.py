"""Liveness: the guard checks each running process that has a probe, every ``--health-every``.

A tick (every second) hands the checks that are due to a small pool of threads, at most one check
per process at a time, so a probe that hangs (bounded by its timeout anyway) delays only its own
process, never another's check and never the exit watcher. Each check re-reads its row (one
indexed lookup) so it always judges the current instance: a restart starts the health of the new
instance afresh, with its start grace. The state machine is ``bgr.health.state``; a change is an
event in the registry (``unhealthy (reason)``, ``healthy again``) and, for ``unhealthy``, a call to
``on_unhealthy`` (the keeper's full restart under the restart policy) and the alert hooks.
The state is written when it changes, and otherwise at most once a minute (for ``last_check``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from bgr.guard_api import (
    BgrError,
    Desired,
    HealthProbe,
    HealthState,
    ProcessRecord,
    check_probe,
    instance_alive,
    observe_health,
    probe_environment,
    probe_from_dict,
    read_health_state,
)
from guard.connections import Connections

log = logging.getLogger(__name__)

WORKERS = 4
WRITE_AT_LEAST_EVERY = 60.0  # seconds: last_check is refreshed this often while nothing changes


class HealthChecks:
    """The liveness checks of one guard."""

    def __init__(
        self,
        db: str | None,
        *,
        on_unhealthy: Callable[[ProcessRecord, str], None],
        on_event: Callable[[ProcessRecord, str, str], None],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        workers: int = WORKERS,
    ) -> None:
        self.db = db
        # A connection per pool thread, kept: opening the registry for each check cost more than
        # the check itself (bench/health_load.py).
        self.connections = Connections(db)
        self.on_unhealthy = on_unhealthy
        self.on_event = on_event
        self.clock = clock
        self.wall = wall
        self._lock = threading.Lock()
        self._probes: dict[str, HealthProbe] = {}
        self._due: dict[str, float] = {}
        self._busy: set[str] = set()
        self._written: dict[str, float] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._workers = workers

    def sync(self, records: Iterable[ProcessRecord]) -> None:
        """Take the probes of the guarded rows (on each check pass)."""
        probes: dict[str, HealthProbe] = {}
        for record in records:
            if record.health and record.desired is Desired.RUNNING and not record.schedule.get("cron"):
                try:
                    probe = probe_from_dict(record.health)
                except BgrError as exc:
                    log.error("%s: unusable health check: %s", record.name, exc)
                    continue
                if probe is not None:
                    probes[record.name] = probe
        with self._lock:
            now = self.clock()
            for name in set(self._probes) - set(probes):
                self._due.pop(name, None)
                self._written.pop(name, None)
            for name, probe in probes.items():
                if name not in self._due or self._probes.get(name) != probe:
                    self._due[name] = now  # a new or changed probe: check soon
            self._probes = probes

    def tick(self) -> int:
        """Start the checks that are due; how many were started."""
        with self._lock:
            now = self.clock()
            due = [n for n, at in self._due.items() if at <= now and n not in self._busy]
            for name in due:
                self._busy.add(name)
                self._due[name] = now + self._probes[name].every
            if due and self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="health")
            pool = self._pool
        for name in due:
            assert pool is not None
            pool.submit(self._run, name)
        return len(due)

    def _run(self, name: str) -> None:
        try:
            self.check(name)
        except BgrError as exc:  # the registry was busy or gone: the next tick tries again
            log.warning("%s: health check not recorded: %s", name, exc)
        except Exception:  # a thread of the pool must never die silently
            log.exception("%s: health check failed", name)
        finally:
            with self._lock:
                self._busy.discard(name)

    def check(self, name: str) -> str | None:
        """Check ``name`` now; the event it made (None: no change, or nothing to check)."""
        with self.connections.use() as reg:
            record = reg.get(name)
        if record is None or not record.health or not instance_alive(record.identity):
            return None  # gone, or not running: the exit watcher's business
        probe = probe_from_dict(record.health)
        if probe is None:
            return None
        result = check_probe(probe, directory=record.directory, env=probe_environment(record))
        before = read_health_state(record.health_state)
        now = self.wall()
        after, event = observe_health(before, result, probe=probe, now=now, started_at=record.started_at)
        self._save(record, after, event, result.detail)
        if event is not None:
            level = logging.WARNING if event == "unhealthy" else logging.INFO
            log.log(level, "%s: %s (%s)", name, event, result.detail)
            self.on_event(record, event, result.detail)
            if event == "unhealthy":
                self.on_unhealthy(record, result.detail)
        return event

    def _save(self, record: ProcessRecord, after: HealthState, event: str | None, detail: str) -> None:
        now = self.clock()
        recent = now - self._written.get(record.name, -WRITE_AT_LEAST_EVERY) < WRITE_AT_LEAST_EVERY
        same = read_health_state(record.health_state)._replace(last_check=after.last_check) == after
        if event is None and recent and same:
            return  # nothing new but the time of the check
        # The event is appended inside the write, to the history as it is then (a restart may
        # have added to it since this probe read the row).
        noted = None if event is None else (event, detail if event == "unhealthy" else "")
        with self.connections.use() as reg:
            reg.update(record.name, instance=record.instance, event=noted, health_state=after.to_dict())
        self._written[record.name] = now

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
