"""What bgr-guard does at a scheduled time: run a ``--cron`` job, restart a ``--restart-at`` process,
and book each run (start, duration, exit code) in the row's ``runs``.

A job never runs twice at once: a run still going when the next time comes makes that time a
skipped run (recorded, with why). The guard is the parent of the runs it starts, so it knows their
exit codes. Times missed while no guard ran are not made up for: the next time is always worked out
from now.
"""

from __future__ import annotations

import time

from bgr.core import definition
from bgr.core.launch import launch_instance, recover, restart
from bgr.core.queries import is_running
from bgr.errors import BgrError
from bgr.models import Desired, ProcessRecord
from bgr.proc.locks import name_lock
from bgr.proc.stopper import DEFAULT_GRACE
from bgr.store import open_registry

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, TypeVar

    R = TypeVar("R", bound=Mapping[str, Any])

RUNS_KEPT = 20
# How long noting the next time waits for a name's lock (a launch takes milliseconds; a stop can
# take its grace period, and the guard's schedule thread should not wait that long).
NOTE_LOCK_WAIT = 2.0


def _with_run(record: ProcessRecord, run: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    return (*(dict(r) for r in record.runs), run)[-RUNS_KEPT:]


def run_job(name: str, planned: float, *, db: str | None = None) -> ProcessRecord | None:
    """Start ``name``'s scheduled run for the time ``planned``; the new row, or None when it was
    skipped (still running from the last time, stopped by the user, or no longer a job)."""
    with open_registry(db) as reg, name_lock(reg.layout, name):
        current = recover(reg, reg.get(name))
        if current is None or not current.schedule.get("cron") or current.desired is not Desired.RUNNING:
            return None
        if is_running(current):
            skipped = {
                "started": planned,
                "took": None,
                "exit_code": None,
                "skipped": "the last run is still going",
            }
            events = definition.with_event(current, "run skipped", "the last run is still going")
            reg.update(name, runs=_with_run(current, skipped), events=events)
            return None
        run = {"started": time.time(), "took": None, "exit_code": None}
        return launch_instance(
            reg,
            current._replace(runs=_with_run(current, run)),
            current,
            reason="run by schedule",
            backup_logs=False,  # a job's runs append to its logs: one history, bounded by rotation
            counts_as_restart=False,  # runs are the job working, not restarts
            by="bgr-guard",
        )


def finish_run(
    name: str,
    instance: str | None,
    exit_code: int | None,
    *,
    db: str | None = None,
    took: float | None = None,
) -> ProcessRecord | None:
    """Book the end of a job's run (when the guard saw the instance ``instance`` exit); the row,
    or None when there was no run of that instance to finish. ``took``: the run's length as the
    caller measured it on an elapsed-time clock (else the wall clock's difference, which a clock
    step distorts)."""
    with open_registry(db) as reg:
        current = reg.get(name)
        if current is None or current.instance != instance or not current.runs:
            return None
        runs = [dict(r) for r in current.runs]
        last = unfinished(runs)
        if last is None:
            return None
        started = float(last.get("started") or current.started_at or time.time())
        last.update(took=max(0.0, time.time() - started if took is None else took), exit_code=exit_code)
        return reg.update(
            name, instance=instance, runs=tuple(runs), exit_code=exit_code, stopped_at=time.time()
        )


def last_run(runs: Sequence[R]) -> R | None:
    """The latest run that was started (times skipped while it went are booked after it)."""
    return next((r for r in reversed(runs) if not r.get("skipped")), None)


def unfinished(runs: Sequence[R]) -> R | None:
    """The run still going, if the latest one started has not ended yet."""
    last = last_run(runs)
    return last if last is not None and last.get("took") is None else None


def restart_on_schedule(name: str, *, db: str | None = None, grace: float = DEFAULT_GRACE) -> bool:
    """A ``--restart-at`` time: restart ``name`` when it runs (a stopped one stays stopped)."""
    with open_registry(db) as reg:
        current = reg.get(name)
    if current is None or current.desired is not Desired.RUNNING or not is_running(current):
        return False
    try:
        with open_registry(db) as reg:
            reg.add_event(name, "scheduled restart", f"--restart-at {current.schedule.get('restart_at')}")
        restart(name, db=db, grace=grace, startup_window=0, pull=False)
    except BgrError:
        return False
    return True


def set_next_run(name: str, next_run: float | None, *, db: str | None = None) -> None:
    """Note when the guard runs or restarts ``name`` next (shown in the list's NEXT column).

    Under the name's lock: a launch holds it while it rewrites the whole row from what it read, so
    a note written in the middle of one (the guard arms the next time from another thread) would
    be overwritten with the old time. LockHeld after ``NOTE_LOCK_WAIT`` (a long stop in progress):
    the caller logs it, and the next arming writes it."""
    with open_registry(db) as reg, name_lock(reg.layout, name, timeout=NOTE_LOCK_WAIT):
        current = reg.get(name)
        if current is None or current.schedule.get("next_run") == next_run:
            return
        schedule = {k: v for k, v in current.schedule.items() if k != "next_run"}
        if next_run is not None:
            schedule["next_run"] = next_run
        reg.update(name, schedule=schedule)
