"""guard.cron: schedules armed at the cron trigger's next time, re-armed after each, on wall time.

The scheduler's ``add_job`` is recorded instead of waiting for real minutes to pass, and the wall
clock is faked; the times themselves come from APScheduler's real cron trigger. The guard tests
run real schedules end to end.
"""

from __future__ import annotations

import datetime
from typing import Any

from bgr.models import Desired, ProcessRecord
from guard.cron import LATE_LIMIT, Schedules


class Recorded:
    """What was armed: (run time as a timestamp, args) per job id; remove() drops it."""

    def __init__(self) -> None:
        self.jobs: dict[str, tuple[float, tuple[Any, ...]]] = {}

    def add_job(
        self,
        func: Any,
        trigger: str,
        *,
        run_date: datetime.datetime,
        args: tuple[Any, ...],
        id: str,
        **_: Any,
    ) -> Any:
        assert trigger == "date"
        self.jobs[id] = (run_date.timestamp(), args)
        jobs = self.jobs

        class Job:
            def remove(self) -> None:
                jobs.pop(id, None)

        return Job()


def record(name: str, **schedule: str) -> ProcessRecord:
    return ProcessRecord(
        name=name, directory="/", command="true", stdout="/o", stderr="/e", schedule=schedule
    )


def at(hour: int, minute: int, second: int = 0) -> float:
    return datetime.datetime(2026, 7, 1, hour, minute, second).astimezone().timestamp()


def setup(
    now: float,
) -> tuple[Schedules, Recorded, list[tuple[str, str, float]], dict[str, float | None], list[float]]:
    recorded, wall = Recorded(), [now]
    acted: list[tuple[str, str, float]] = []
    nexts: dict[str, float | None] = {}
    schedules = Schedules(
        recorded.add_job,
        lambda name, kind, planned: acted.append((name, kind, planned)),
        nexts.__setitem__,
        on_missed=lambda name, kind, planned: acted.append((name, f"missed {kind}", planned)),
        wall=lambda: wall[0],
    )
    return schedules, recorded, acted, nexts, wall


def test_arms_the_next_time_and_again_after_each_run() -> None:
    schedules, recorded, acted, nexts, wall = setup(at(2, 59))
    schedules.sync([record("job", cron="0 3 * * *"), record("web", restart_at="*/30 * * * *")])
    assert {k: v[0] for k, v in recorded.jobs.items()} == {
        "cron:cron:job": at(3, 0),
        "cron:restart_at:web": at(3, 0),
    }
    assert nexts == {"job": at(3, 0), "web": at(3, 0)}
    wall[0] = at(3, 0, 1)
    key, expression, planned = recorded.jobs["cron:restart_at:web"][1]
    schedules._fire(key, expression, planned)
    assert acted == [("web", "restart_at", at(3, 0))]
    assert recorded.jobs["cron:restart_at:web"][0] == at(3, 30) and nexts["web"] == at(3, 30)


def test_a_time_the_clock_jumped_over_is_missed_not_run() -> None:
    schedules, recorded, acted, _nexts, wall = setup(at(2, 59))
    schedules.sync([record("job", cron="0 3 * * *")])
    wall[0] = at(3, 0) + LATE_LIMIT + 5
    schedules._fire(*recorded.jobs["cron:cron:job"][1])
    assert acted == [("job", "missed cron", at(3, 0))]  # recorded, not run
    assert recorded.jobs["cron:cron:job"][0] > wall[0]  # the next one, worked out from now


def test_changed_dropped_and_stopped_schedules() -> None:
    schedules, recorded, acted, _nexts, _wall = setup(at(2, 59))
    schedules.sync([record("job", cron="0 3 * * *")])
    stale = recorded.jobs["cron:cron:job"][1]
    schedules.sync([record("job", cron="0 4 * * *")])
    assert recorded.jobs["cron:cron:job"][0] == at(4, 0)
    schedules._fire(*stale)  # the old time fires anyway (a race with the change): nothing done
    assert acted == []
    schedules.sync([record("job", cron="0 4 * * *")._replace(desired=Desired.STOPPED)])
    assert recorded.jobs == {} and schedules.armed() == {}
