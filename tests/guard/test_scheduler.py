"""guard.scheduler: one guard per target, a clean stop on a signal, --once, and job timing.

Processes are started with the real ``bgr`` command and guarded by the real ``python -m guard``.
Intervals and backoffs are tiny (0.05-0.2 s) so that every wait here is short; waits poll with a
deadline, nothing asserts on timing except the backoff gaps, which are lower bounds the policy
guarantees.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psutil
import pytest

from guard.options import GuardOptions, Target, TargetKind
from tests.support import (
    FAST,
    ClockShift,
    Guard,
    append,
    events,
    kill_instance,
    must,
    record_alive,
    restarted_since,
    run_bgr,
    stamps,
    start_cli,
    steady,
    wait_for,
)

YEAR = 365 * 86400.0
HOUR = 3600.0
MiB = 1024**2


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
    pull and the health tick are staggered so that one worker runs them all (when one interval
    divides another)."""
    from guard.elapsed import ElapsedTrigger
    from guard.scheduler import GuardService

    options = GuardOptions(
        target=Target(TargetKind.ALL), interval=interval, rotate_every=rotate_every, pull_every=pull_every
    )
    service = GuardService(options)
    try:
        service.add_jobs()
        due: dict[str, set[float]] = {}
        horizon = 4 * max(interval, rotate_every or interval, pull_every)
        for job in service.scheduler.get_jobs():
            trigger = job.trigger
            assert isinstance(trigger, ElapsedTrigger)
            first, step = trigger.first, trigger.interval
            due[job.id] = {round(first + k * step, 6) for k in range(int(horizon / step) + 1)}
    finally:
        service.watcher.stop()
    assert sorted(due) == ["check", "health", "pull", "rotate"]
    assert min(due["check"]) == 0.0  # the first check runs at start, as before
    for one, other in itertools.combinations(sorted(due), 2):
        assert not due[one] & due[other], (one, other)


# --------------------------------------------------------------------------------------------
# wall-clock steps: the guard's wall clock (only its own) jumps +1 year, then back 1 hour


# (the clock fixtures are in tests/guard/conftest.py)


class Usage:
    """The guard's resident memory and CPU time since the first look: a step must cost neither
    (before the fix, +1 year with a 1 s interval took ~100 s of CPU and 1.66 GiB)."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.rss = self.proc.memory_info().rss
        self.cpu = self._cpu()
        self.began = time.monotonic()

    def _cpu(self) -> float:
        times = self.proc.cpu_times()
        return float(times.user + times.system)

    def check(self) -> None:
        grown = self.proc.memory_info().rss - self.rss
        busy = (self._cpu() - self.cpu) / max(1.0, time.monotonic() - self.began)
        # Correctness bounds, not performance figures: generous on a shared 2-core machine.
        assert grown < 64 * MiB, f"the guard grew by {grown / MiB:.1f} MiB across the clock steps"
        assert busy < 0.5, f"the guard used {busy:.0%} of a core across the clock steps"


def at_least(path: Path, count: int) -> bool:
    return len(stamps(path)) >= count


def rotated_more(than: int) -> bool:
    return len(events("idle", "rotated")) > than


def test_crash_loop_keeps_its_backoff_across_wall_clock_steps(
    guard: Callable[..., Guard], tmp_path: Path, clock: ClockShift
) -> None:
    out = tmp_path / "stamps"
    assert run_bgr("--name", "loop", "--command", f"date +%s.%N >> {out}; exit 1").returncode != 0
    # A 30 s check: a retry dropped as "missed" would show as a 30 s gap.
    backoff = ["--backoff-base", "0.4", "--backoff-max", "0.4", "--max-failures", "1000"]
    g = guard("loop", "30", *backoff, env=clock.env())
    wait_for(lambda: len(stamps(out)) >= 4, what="a crash loop")
    usage = Usage(g.pid)
    for shift in (YEAR, YEAR - HOUR):
        seen = len(stamps(out))
        clock.set(shift)
        wait_for(partial(at_least, out, seen + 4), 10.0, f"restarts after a step to {shift:+.0f} s")
    usage.check()
    gaps = [b - a for a, b in itertools.pairwise(stamps(out))]
    # 0.4 s +-10 % jitter: never sooner; later only by what the machine adds (generous).
    assert min(gaps) >= 0.36 - 0.01, gaps
    assert max(gaps) <= 0.44 + 2.0, gaps
    assert "missed" not in g.text() and "Traceback" not in g.text()
    assert g.proc.poll() is None


def test_checks_rotation_and_exits_keep_their_pace_across_wall_clock_steps(
    guard: Callable[..., Guard], clock: ClockShift
) -> None:
    start_cli("idle", "sleep 300")
    log = Path(must("idle").stdout)
    rotating = ["--max-log-size", "4K", "--rotate-every", "1", "--stable-after", "0.5"]
    g = guard("--all", "1", *rotating, env=clock.env())
    g.wait_log("idle: guarded")
    time.sleep(1.2)  # a stable run: a kill is restarted at once
    usage = Usage(g.pid)
    for n, shift in enumerate((YEAR, YEAR - HOUR)):
        clock.set(shift)
        time.sleep(0.1)
        # A check every second picks up a new name...
        start_cli(f"new{n}", "sleep 300")
        g.wait_log(f"new{n}: guarded", timeout=10.0)
        # ...a rotation pass every second rotates a grown log...
        rotated = len(events("idle", "rotated"))
        append(log, b"x" * 16384 + b"\n")
        wait_for(partial(rotated_more, rotated), 10.0, "a rotation")
        # ...and an exit is noticed and restarted at once.
        wait_for(partial(restarted_since, "idle", kill_instance("idle")), 10.0, "a restart")
        time.sleep(0.6)
    usage.check()
    assert "missed" not in g.text() and "Traceback" not in g.text()
    assert g.proc.poll() is None
