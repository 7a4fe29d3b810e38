"""guard.scheduler: one guard per target, a clean stop on a signal, --once, and job timing.

Processes are started with the real ``bgr`` command and guarded by the real ``python -m guard``.
Intervals and backoffs are tiny (0.05-0.2 s) so that every wait here is short; waits poll with a
deadline, nothing asserts on timing except the backoff gaps, which are lower bounds the policy
guarantees.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from guard.options import GuardOptions, Target, TargetKind
from tests.support import (
    FAST,
    Guard,
    kill_instance,
    must,
    record_alive,
    restarted_since,
    start_cli,
    steady,
    wait_for,
)


def test_second_guard_for_the_same_target_is_refused(guard: Callable[..., Guard]) -> None:
    start_cli("web", "sleep 300")
    first = guard("web", "5")
    first.wait_log("web: guarded")
    second = guard("web", "5")
    assert second.proc.wait(15) == 10
    assert f"another bgr-guard (pid {first.pid}) already guards web" in second.text()
    assert "Traceback" not in second.text()
    # Other targets are free, and the first guard still works.
    other = guard("--all", "--once")
    assert other.proc.wait(15) == 0
    assert first.proc.poll() is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_the_guard_cleanly_and_leaves_processes(
    guard: Callable[..., Guard], sig: signal.Signals
) -> None:
    start_cli("web", "sleep 300")
    g = guard("web", "5", *FAST)
    g.wait_log("web: guarded")
    time.sleep(0.4)
    old = kill_instance("web")  # the guard's own child from now on
    wait_for(lambda: restarted_since("web", old))
    pid = must("web").pid
    g.proc.send_signal(sig)
    assert g.proc.wait(15) == 0
    assert f"stopped ({sig.name}); the processes keep running" in g.text()
    assert "Traceback" not in g.text()
    assert must("web").pid == pid and record_alive(must("web"))


def test_once_restarts_what_is_due_and_exits(guard: Callable[..., Guard]) -> None:
    start_cli("up", "sleep 300")
    start_cli("down", "sleep 300")
    time.sleep(0.35)
    old = kill_instance("down")
    wait_for(lambda: not record_alive(must("down")))
    up = must("up").pid
    g = guard("--all", "--once", "--stable-after", "0.3")
    assert g.proc.wait(15) == 0
    assert restarted_since("down", old)
    assert must("up").pid == up
    assert "down: restarted" in g.text()
    # Nothing due: a second pass changes nothing.
    with steady("down", 0):
        assert guard("--all", "--once").proc.wait(15) == 0


def test_passes_from_cron_do_not_push_the_real_events_out(guard: Callable[..., Guard]) -> None:
    """Each ``--once`` pass notes "guarded"; only the last few of those routine events are kept,
    so the history still shows the start and the crash after many passes."""
    start_cli("job", "sleep 300")
    time.sleep(0.35)
    kill_instance("job")
    wait_for(lambda: not record_alive(must("job")))
    for _ in range(8):
        assert guard("--all", "--once", "--stable-after", "0.3").proc.wait(15) == 0
    kinds = [str(e["event"]) for e in must("job").events]
    assert kinds.count("guarded") <= 3
    assert kinds[0] == "started" and "restarted by guard" in kinds


@pytest.mark.parametrize(
    ("interval", "rotate_every", "pull_every"),
    [(30.0, None, 300.0), (30.0, 60.0, 300.0), (60.0, 15.0, 300.0), (5.0, 5.0, 60.0), (2.0, 1.0, 3.0)],
)
def test_periodic_jobs_never_fall_due_together(
    interval: float, rotate_every: float | None, pull_every: float
) -> None:
    """APScheduler's pool keeps a worker thread for each job that found none idle: check, rotate
    and pull are staggered so that one worker runs them all (when one interval divides another)."""
    from datetime import UTC, datetime

    from guard.scheduler import GuardService

    options = GuardOptions(
        target=Target(TargetKind.ALL), interval=interval, rotate_every=rotate_every, pull_every=pull_every
    )
    service = GuardService(options)
    try:
        now = datetime.now(UTC)
        service.add_jobs(now)
        due: dict[str, set[float]] = {}
        horizon = 4 * max(interval, rotate_every or interval, pull_every)
        for job in service.scheduler.get_jobs():
            first = (job.next_run_time - now).total_seconds()
            step = job.trigger.interval.total_seconds()
            due[job.id] = {round(first + k * step, 6) for k in range(int(horizon / step) + 1)}
    finally:
        service.watcher.stop()
    assert sorted(due) == ["check", "pull", "rotate"]
    assert min(due["check"]) == 0.0  # the first check runs at start, as before
    assert not due["check"] & due["rotate"]
    assert not due["check"] & due["pull"]
    assert not due["rotate"] & due["pull"]
