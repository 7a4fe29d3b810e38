"""guard.elapsed: periodic jobs keep their spacing on elapsed time while the wall clock steps.

A fake boot clock and wall-clock datetimes passed by hand drive the trigger and the job store
exactly as APScheduler's loop does (``get_due_jobs(now)`` at each wake-up, then the trigger for
the next run); one test runs a real scheduler for the wiring.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from guard.elapsed import TOLERANCE, ElapsedJobStore, ElapsedTrigger, add_elapsed_job

WALL = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


class Clocks:
    """A boot clock and a wall clock that advance together, and a wall clock that can step."""

    def __init__(self) -> None:
        self.elapsed = 1000.0
        self.shift = timedelta(0)
        self._wall_at_zero = WALL

    def __call__(self) -> float:
        return self.elapsed

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds

    def wall(self) -> datetime:
        return self._wall_at_zero + timedelta(seconds=self.elapsed - 1000.0) + self.shift


def due_names(store: ElapsedJobStore, now: datetime) -> list[str]:
    return [job.id for job in store.get_due_jobs(now)]


class Job:
    """What the store reads and writes of an APScheduler job."""

    def __init__(self, job_id: str, trigger: Any, next_run_time: datetime, coalesce: bool = True) -> None:
        self.id = job_id
        self.trigger = trigger
        self.next_run_time = next_run_time
        self.coalesce = coalesce


def take_run(store: ElapsedJobStore, job: Job, now: datetime) -> None:
    """What APScheduler does with a due job: list its run times, then ask for the next one."""
    runs = []
    nxt: datetime | None = job.next_run_time
    while nxt is not None and nxt <= now:
        runs.append(nxt)
        nxt = job.trigger.get_next_fire_time(nxt, now)
        assert len(runs) < 3, "missed runs were listed"
    nxt = job.trigger.get_next_fire_time(runs[-1], now)
    assert nxt is not None
    job.next_run_time = nxt
    store.update_job(job)


def test_trigger_fires_first_then_every_interval_and_skips_missed_periods() -> None:
    clock = Clocks()
    trigger = ElapsedTrigger(5.0, first=2.0, clock=clock)
    assert trigger.get_next_fire_time(None, clock.wall()) == clock.wall() + timedelta(seconds=2)
    clock.advance(2.0)
    assert trigger.get_next_fire_time(None, clock.wall()) == clock.wall() + timedelta(seconds=5)
    # Asked again at the same moment (APScheduler asks twice per run): the same answer.
    assert trigger.get_next_fire_time(None, clock.wall()) == clock.wall() + timedelta(seconds=5)
    # Suspended for an hour: the next run is the next period boundary ahead, one interval at most.
    clock.advance(3600.0 + 5.0 + 1.0)
    assert trigger.get_next_fire_time(None, clock.wall()) == clock.wall() + timedelta(seconds=4)
    assert trigger.due == pytest.approx(1000.0 + 2.0 + 5.0 * 722)


def test_trigger_rejects_a_zero_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        ElapsedTrigger(0)
    assert "every 5s" in str(ElapsedTrigger(5))
    assert "interval=5" in repr(ElapsedTrigger(5))


@pytest.mark.parametrize("step", [YEAR, -timedelta(hours=1)])
def test_store_keeps_elapsed_spacing_across_a_wall_clock_step(step: timedelta) -> None:
    clock = Clocks()
    store = ElapsedJobStore()
    check = Job("check", ElapsedTrigger(1.0, clock=clock), clock.wall())
    rotate_trigger = ElapsedTrigger(30.0, first=0.5, clock=clock)
    rotate = Job("rotate", rotate_trigger, rotate_trigger.get_next_fire_time(None, clock.wall()))
    check.trigger.get_next_fire_time(None, clock.wall())
    store.add_job(check)
    store.add_job(rotate)
    assert due_names(store, clock.wall()) == ["check"]
    take_run(store, check, clock.wall())
    clock.advance(0.5)
    clock.shift += step  # the wall clock steps between two wake-ups
    assert due_names(store, clock.wall()) == ["rotate"]  # on time; check is not "due" early
    take_run(store, rotate, clock.wall())
    runs = 0
    for _ in range(10):  # ten more seconds: ten checks, one per second, whatever the step was
        clock.advance(0.5)
        assert due_names(store, clock.wall()) == ["check"]
        take_run(store, check, clock.wall())
        runs += 1
        clock.advance(0.5)
        assert due_names(store, clock.wall()) == []
    assert runs == 10
    assert store.get_next_run_time() == clock.wall() + timedelta(seconds=0.5)


def test_a_run_taken_just_before_its_time_is_not_repeated() -> None:
    clock = Clocks()
    store = ElapsedJobStore()
    trigger = ElapsedTrigger(10.0, clock=clock)
    job = Job("check", trigger, trigger.get_next_fire_time(None, clock.wall()))
    store.add_job(job)
    take_run(store, job, clock.wall())
    clock.advance(10.0 - TOLERANCE / 2)  # woken a hair early: the stored time is within tolerance
    job.next_run_time = clock.wall()
    store.update_job(job)
    take_run(store, job, clock.wall())
    assert job.next_run_time > clock.wall() + timedelta(seconds=9)


def test_store_lists_one_run_of_a_calendar_job_far_behind() -> None:
    clock = Clocks()
    store = ElapsedJobStore()
    late = Job("restart-at", DateTrigger(run_date=clock.wall(), timezone=UTC), clock.wall())
    paused = Job("paused", DateTrigger(run_date=clock.wall(), timezone=UTC), clock.wall())
    store.add_job(late)
    store.add_job(paused)
    paused.next_run_time = None  # type: ignore[assignment]
    store.update_job(paused)
    clock.shift += YEAR
    assert due_names(store, clock.wall()) == ["restart-at"]
    assert late.next_run_time == clock.wall()  # one run, now: nothing to list


def test_real_scheduler_runs_elapsed_jobs() -> None:
    ran = threading.Event()
    scheduler = BackgroundScheduler(timezone=UTC, jobstores={"default": ElapsedJobStore()})
    trigger = add_elapsed_job(scheduler, ran.set, job_id="tick", every=0.05)
    scheduler.start()
    try:
        assert ran.wait(10)
        job = scheduler.get_job("tick")
        assert job.misfire_grace_time is None and job.coalesce
        assert trigger.due is not None
    finally:
        scheduler.shutdown(wait=True)
