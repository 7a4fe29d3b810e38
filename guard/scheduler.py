"""Run a guard: the lock, the exit watcher, the APScheduler jobs, and a clean stop on a signal.

One guard per target and registry: an flock under ``<state>/locks`` (the kernel frees it if the
guard dies). APScheduler (3.11, ``BlockingScheduler`` in the main thread) runs the periodic jobs
(check, rotate, pull, the health tick) in its thread pool, on elapsed time (guard/elapsed.py), so a
wall-clock step neither stalls nor floods them, and the calendar schedules on wall time
(guard/cron.py); probes run on their own small pool (guard/health.py), hooks as child processes
(guard/hooks.py). The exit watcher thread reacts to exits at once and owns the
backoff retries, on its own monotonic deadlines: a retry is never dropped as "missed" after a
forward step, never waits out a backward one, and arranging one never waits for the scheduler's
lock. Signal handlers only record the signal and wake the watcher thread, which shuts the
scheduler down (uvicorn's pattern: nothing lock-taking runs inside a handler). The managed
processes are left running: they live in sessions of their own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from types import FrameType

from bgr import guard_api as bgr
from bgr.guard_api import (
    BgrError,
    LockHeld,
    NoRegistry,
    NotFound,
    ProcessRecord,
    Registry,
    file_lock,
    open_registry,
)
from guard.cron import Schedules
from guard.health import HealthChecks
from guard.hooks import Hooks
from guard.jobs import Jobs
from guard.keeper import Keeper
from guard.options import GuardOptions, TargetKind
from guard.watcher import ExitWatcher

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HEALTH_TICK = 1.0  # seconds: how often due probes are started (the shortest --health-every)


@contextlib.contextmanager
def guard_lock(options: GuardOptions) -> Iterator[Path]:
    """Hold the one-guard-per-target lock; LockHeld names the guard that has it."""
    # Path(): bgr.paths hands out plain str paths (cheaper for the bgr CLI); wrap to use either.
    layout = bgr.layout(options.db)
    path = Path(layout.subdir("locks")) / options.target.lock_name(layout.db)
    try:
        with file_lock(path, timeout=0, held_by=f"bgr-guard for {options.target.describe()}"):
            path.write_text(f"{os.getpid()}\n")  # for the message a second guard prints
            yield path
    except LockHeld:
        raise LockHeld(
            f"another bgr-guard{_holder(path)} already guards {options.target.describe()}; "
            "stop it first (one guard per target)"
        ) from None


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        return f" (pid {int(path.read_text().strip())})"
    return ""


def check_target(reg: Registry, options: GuardOptions) -> None:
    """Refuse an unknown NAME at start (a group may still be empty: rows can come later)."""
    target = options.target
    if target.kind is TargetKind.NAME:
        reg.require(target.value)
    elif target.kind is TargetKind.GROUP and not reg.all(target.value):
        log.warning("group %s has no processes yet; waiting for some", target.value)


def run(options: GuardOptions) -> int:
    """Guard until a signal (or one pass with ``--once``). Returns the exit status."""
    # The guard opens short-lived registry connections all the time. Closing the last connection
    # to a WAL database checkpoints it and removes the WAL (fsync included): ~1 ms per close, 4 per
    # restart. One idle connection held open for the guard's life makes every other close cheap;
    # SQLite still checkpoints on its own once the WAL reaches 1000 pages.
    with contextlib.ExitStack() as stack:
        try:
            anchor = stack.enter_context(open_registry(options.db))
        except NoRegistry as exc:
            # NAME needs it now; --all and --group guard what the first start will register (a
            # guard started at boot may come first), and the checks pick it up.
            if options.target.kind is TargetKind.NAME:
                raise NotFound(f"no process named {options.target.value!r}; run `bgr` to list them") from exc
            log.warning("%s; guarding it once it exists", exc)
        else:
            check_target(anchor, options)
        with guard_lock(options):
            if options.once:
                return run_once(options)
            return GuardService(options).run()


def run_once(options: GuardOptions) -> int:
    """One check, rotation and pull pass, for cron; what is in backoff is left for the next run."""
    stopping = threading.Event()

    def record(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, record) for sig in _SIGNALS}
    try:
        keeper = Keeper(options)
        jobs = Jobs(keeper, stopping)
        for job in (jobs.check, jobs.rotate, jobs.pull):
            if not stopping.is_set():
                _safely(job)
        if keeper.restarted:
            # Report a restart that fails at once with its exit code, as `bgr` does at a start.
            time.sleep(0.05)
            for name in sorted(jobs.known):
                keeper.gate.poke(name)
        keeper.reap()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _safely(job: Callable[[], None]) -> None:
    """Run one pass; a failure is logged (one line for a BgrError) and the guard carries on."""
    try:
        job()
    except BgrError as exc:
        log.warning("%s", exc)
    except Exception:
        log.exception("guard job failed")


class GuardService:
    """The long-running guard: scheduler in the main thread, exit watcher in its own."""

    def __init__(self, options: GuardOptions) -> None:
        from apscheduler.schedulers.blocking import BlockingScheduler

        self.options = options
        self.stopping = threading.Event()
        self.signalled: int | None = None
        self._shutdown_lock = threading.Lock()
        self._shut_down = False
        from guard.elapsed import ElapsedJobStore

        self.scheduler = BlockingScheduler(
            timezone=UTC,
            jobstores={"default": ElapsedJobStore()},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self.watcher = ExitWatcher(
            self._exited,
            on_wake=self._woken,
            on_due=self._retry,
            on_burst=self._burst,
            poll_interval=options.poll_interval,
        )
        self.hooks = Hooks(options.on_event)
        self.keeper = Keeper(
            options,
            watcher=self.watcher,
            schedule=self._schedule_retry,
            cancel=self._cancel_retry,
            hooks=self.hooks,
        )
        # The health loop: probes on their own pool (a hanging one delays only its process), and
        # calendar schedules as APScheduler jobs in this scheduler (wall time, see guard/cron.py).
        self.health = HealthChecks(
            options.db, on_unhealthy=self.keeper.unhealthy, on_event=self._health_event
        )
        self.schedules = Schedules(
            self.scheduler.add_job, self.keeper.scheduled, self._note_next, on_missed=self.keeper.missed
        )
        self.jobs = Jobs(self.keeper, self.stopping, on_rows=self._sync)

    def run(self) -> int:
        from apscheduler.events import EVENT_SCHEDULER_STARTED

        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        options = self.options
        noticed = "at once" if hasattr(os, "pidfd_open") else f"within {options.poll_interval:g}s"
        log.info(
            "bgr-guard %d guarding %s: checks every %gs, exits noticed %s",
            os.getpid(),
            options.target.describe(),
            options.interval,
            noticed,
        )
        if bgr.cgroup_base() is None:
            # No cgroup to hold what an instance starts: a daemon that double-forks out of one the
            # guard (re)started becomes the guard's child instead of init's, so it is still seen.
            bgr.become_subreaper()
        elif bgr.slow_cgroup_joins():
            log.info(
                "cgroup2 is mounted without favordynmods: on most kernels each restart then waits "
                "~5-20 ms to join its cgroup (README, Performance)"
            )
        self.add_jobs()
        self.scheduler.add_listener(lambda _event: self._woken(), EVENT_SCHEDULER_STARTED)
        self.watcher.start()
        try:
            self.scheduler.start()
        finally:
            self.stopping.set()
            self.watcher.stop()
            self.health.close()
            self.hooks.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        why = signal.Signals(self.signalled).name if self.signalled else "shutdown"
        log.info("bgr-guard %d stopped (%s); the processes keep running", os.getpid(), why)
        return 0

    def add_jobs(self) -> None:
        """The periodic passes: check from the start on, rotate and pull staggered after it."""
        # The pool starts a worker thread for a job that finds none idle, and keeps it for good
        # (~170 KiB resident each). Jobs due at the same moment would each get one; staggered by a
        # half and a quarter of the shorter interval, check, rotate and pull never meet when one
        # interval divides the other (the defaults: 30 s, 30 s, 5 min), so one worker runs them
        # all. A slow job still gets company at once, up to the pool's 10 workers.
        from guard.elapsed import add_elapsed_job

        options = self.options
        phase = min(options.interval, options.rotation_interval)
        sched = self.scheduler
        add_elapsed_job(sched, _safely, job_id="check", args=(self.jobs.check,), every=options.interval)
        add_elapsed_job(sched, _safely, job_id="rotate", args=(self.jobs.rotate,),
                        every=options.rotation_interval, first=phase / 2)  # fmt: skip
        add_elapsed_job(sched, _safely, job_id="pull", args=(self.jobs.pull,),
                        every=options.pull_every, first=options.pull_every + phase / 4)  # fmt: skip
        # Probes fall due every --health-every (a second at the least); the tick hands the due ones
        # to the probe pool and returns at once, and reaps the alert hooks that are done. A tenth
        # of a second off the whole seconds, where the other passes fall due.
        add_elapsed_job(sched, _safely, job_id="health", args=(self._tick,), every=HEALTH_TICK, first=0.1)

    def _tick(self) -> None:
        self.health.tick()
        self.hooks.collect()

    def _sync(self, records: list[ProcessRecord]) -> None:
        if not self.stopping.is_set():
            self.health.sync(records)
            self.schedules.sync(records)

    def _health_event(self, record: ProcessRecord, event: str, detail: str) -> None:
        if event == "unhealthy":
            on_failure = record.on_failure
            self.hooks.fire("unhealthy", record.name, exit_code=None, reason=detail, on_failure=on_failure)

    def _note_next(self, name: str, when: float | None) -> None:
        try:
            bgr.set_next_run(name, when, db=self.options.db)
        except BgrError as exc:
            log.warning("%s: next scheduled time not recorded: %s", name, exc)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only record and wake: the watcher thread does the shutdown, outside the handler.
        self.signalled = signum
        self.watcher.wake()

    def _woken(self) -> None:
        if self.signalled is None:
            return
        self.stopping.set()
        from apscheduler.schedulers import SchedulerNotRunningError

        with self._shutdown_lock:
            if self._shut_down:
                return
            try:
                self.scheduler.shutdown(wait=False)
            except SchedulerNotRunningError:
                return  # not started yet: the STARTED listener calls us again
            self._shut_down = True

    def _exited(self, name: str) -> None:
        if not self.stopping.is_set():
            self.keeper.gate.poke(name)

    def _burst(self, names: list[str]) -> None:
        if not self.stopping.is_set():
            self.keeper.prepare(names)

    def _schedule_retry(self, name: str, delay: float) -> None:
        if not self.stopping.is_set():
            self.watcher.after(name, delay)

    def _retry(self, name: str) -> None:
        if not self.stopping.is_set():
            self.keeper.gate.poke(name)

    def _cancel_retry(self, name: str) -> None:
        self.watcher.cancel(name)
