"""Periodic jobs on elapsed time for APScheduler 3, whose own schedule is wall-clock datetimes.

APScheduler compares each job's next run (a wall-clock datetime) with ``datetime.now()``. When the
wall clock is stepped (NTP, ``date -s``, a VM resumed with an old clock), that goes wrong both ways:

- forward (+1 year): every interval job is "due", and listing its missed runs before coalescing
  them took minutes of CPU and gigabytes with a 1 s interval, holding the scheduler's lock; a
  one-shot job is "missed by 365 days" and dropped;
- backward (-1 hour): every job waits out the hour.

Its sleep itself is fine: ``threading.Event.wait`` counts on the monotonic clock. So the schedule of
an elapsed-time job lives in its :class:`ElapsedTrigger`, on the boot clock, and the wall-clock
datetime APScheduler sees is only a translation of it, made again with the current wall clock
whenever APScheduler looks (:class:`ElapsedJobStore`). A step then moves every translation with
it, and each job keeps its spacing in real time: no listing of missed runs, nothing dropped,
nothing waited out.

Calendar schedules (a restart at 03:00, a cron line) are the opposite case: they mean wall time,
and a step should move them. Give those APScheduler's own ``CronTrigger``/``DateTrigger``; the
store leaves their times alone, except that it never lets a coalescing job list its missed runs
(one run now stands for all of them, as coalescing would have made it anyway).

:func:`add_elapsed_job` is the one place that makes an elapsed-time job: use it for every period
(checks, rotation, pulls, health probes), and the calendar triggers only for calendar times.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.triggers.base import BaseTrigger

from guard import policy

# Translations closer than this to the stored time are left alone (NTP's slewing moves the wall
# clock by at most 0.5 ms per second), and a run this close to its time counts as on time.
TOLERANCE = 0.05


class ElapsedTrigger(BaseTrigger):  # type: ignore[misc]  # untyped base class
    """Fire ``first`` seconds after the job is scheduled, then every ``interval`` seconds, counted
    on ``clock`` (the boot clock: it never steps and counts through suspend).

    Unlike APScheduler's triggers it keeps state, the next due time on ``clock``, because the
    datetimes APScheduler hands it are wall-clock times and could only carry a step along.
    Missed periods (the machine was suspended, the pool was busy) are skipped, never listed:
    the next due time is the first one still ahead.
    """

    __slots__ = ("_clock", "_due", "first", "interval")

    def __init__(
        self, interval: float, *, first: float = 0.0, clock: policy.Clock = policy.boot_clock
    ) -> None:
        if interval <= 0:
            raise ValueError("an elapsed-time interval must be positive")
        self.interval = float(interval)
        self.first = max(0.0, float(first))
        self._clock = clock
        self._due: float | None = None

    @property
    def due(self) -> float | None:
        """When the next run is due, on the trigger's clock (None before the job is scheduled)."""
        return self._due

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        """The next run as a wall-clock datetime, translated with ``now`` (the current wall clock).

        Asked when the job is added (the first run is then scheduled) and after each run is taken;
        a run taken at (or within :data:`TOLERANCE` of) its due time moves the schedule on.
        """
        elapsed = self._clock()
        if self._due is None:
            self._due = elapsed + self.first
        elif self._due <= elapsed + TOLERANCE:
            periods = math.floor((elapsed + TOLERANCE - self._due) / self.interval) + 1
            self._due += periods * self.interval
        return self.wall_time(now, elapsed)

    def wall_time(self, now: datetime, elapsed: float | None = None) -> datetime:
        """The due time as a datetime on the wall clock that reads ``now`` at this moment."""
        elapsed = self._clock() if elapsed is None else elapsed
        due = elapsed if self._due is None else self._due
        return now + timedelta(seconds=due - elapsed)

    def __str__(self) -> str:
        return f"every {self.interval:g}s of elapsed time"

    def __repr__(self) -> str:
        return f"<ElapsedTrigger (interval={self.interval:g}, first={self.first:g})>"


class ElapsedJobStore(MemoryJobStore):  # type: ignore[misc]  # untyped base class
    """APScheduler's in-memory job store, translating elapsed-time jobs to the wall clock of the
    moment each time the scheduler asks what is due (at every wake-up, before anything runs)."""

    def get_due_jobs(self, now: datetime) -> list[Any]:
        for job in self.get_all_jobs():
            wanted = self._next_run(job, now)
            if wanted is not None:
                job.next_run_time = wanted
                self.update_job(job)  # keeps the store ordered by next run time
        due: list[Any] = super().get_due_jobs(now)
        return due

    @staticmethod
    def _next_run(job: Any, now: datetime) -> datetime | None:
        """The job's next run time if it must change, else None."""
        current: datetime | None = job.next_run_time
        if current is None:  # paused
            return None
        if isinstance(job.trigger, ElapsedTrigger):
            wanted = job.trigger.wall_time(now)
            return wanted if abs((wanted - current).total_seconds()) > TOLERANCE else None
        # A calendar job: its times are wall times and stay. But a coalescing job further behind
        # than a second would have every missed run listed (a cron line's every minute of a year
        # after a forward step) only to run once: make that one run the only one listed.
        if job.coalesce and (now - current).total_seconds() > 1.0:
            return now
        return None


def add_elapsed_job(
    scheduler: Any,
    func: Callable[..., object],
    *,
    job_id: str,
    every: float,
    first: float = 0.0,
    args: tuple[object, ...] = (),
    clock: policy.Clock = policy.boot_clock,
) -> ElapsedTrigger:
    """Schedule ``func(*args)`` ``first`` seconds from the scheduler's start (or from now, if it
    runs), then every ``every`` seconds of elapsed time; returns its trigger.

    The scheduler's job store must be an :class:`ElapsedJobStore`. A run is never dropped for
    being late (``misfire_grace_time=None``: late only means the pool was busy), and runs that
    were missed are one run (``coalesce``).
    """
    trigger = ElapsedTrigger(every, first=first, clock=clock)
    scheduler.add_job(
        func, trigger, args=list(args), id=job_id, coalesce=True, max_instances=1, misfire_grace_time=None
    )
    return trigger
