"""guard.jobs: the periodic passes (check and limits, rotate, pull) against real processes.

Processes are started with the real ``bgr`` command and guarded by the real ``python -m guard``.
Intervals and backoffs are tiny (0.05-0.2 s) so that every wait here is short; waits poll with a
deadline, nothing asserts on timing except the backoff gaps, which are lower bounds the policy
guarantees.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bgr.logfiles import backups as log_backups
from bgr.models import ProcessRecord
from guard.gate import NameGate
from guard.jobs import Jobs
from guard.keeper import Keeper
from guard.options import GuardOptions, Target, TargetKind
from guard.policy import PolicyState
from guard.watcher import ExitWatcher
from tests.support import (
    FAST,
    TRACKED,
    Guard,
    Repos,
    events,
    git_children,
    kill_instance,
    must,
    no_lasting_zombies,
    record_alive,
    restarted_since,
    run_bgr,
    stamps,
    start_cli,
    steady,
    wait_for,
    zombie_children,
)

# --------------------------------------------------------------------------------------------
# check: which names a guard looks after


def test_an_idle_check_looks_only_at_what_changed() -> None:
    """A pass over 1000 idle processes must cost a stat each, not a registry read and a full
    look each: a name the exit watcher has, running the instance last seen, is passed over."""
    start_cli("a", "sleep 300")
    start_cli("b", "sleep 300")
    watcher = ExitWatcher(lambda name: None)
    keeper = Keeper(GuardOptions(Target(TargetKind.ALL), interval=5), watcher=watcher)
    looked: list[str] = []

    def check(name: str) -> None:
        looked.append(name)
        keeper.check(name)

    keeper.gate = NameGate(check)
    jobs = Jobs(keeper, threading.Event())
    try:
        jobs.check()
        assert looked == ["a", "b"]
        looked.clear()
        jobs.check()
        assert looked == []  # both settled
        run_bgr("a", "--restart", check=True)  # a new instance, started outside the guard
        jobs.check()
        assert looked == ["a"]
        looked.clear()
        os.killpg(must("b").pgid or 0, signal.SIGKILL)  # no exit event: the watcher is not running
        wait_for(lambda: not record_alive(must("b")), what="b to die")
        jobs.check()
        assert looked == ["b"]
    finally:
        watcher.stop()


def test_all_picks_up_processes_registered_later(guard: Callable[..., Guard]) -> None:
    g = guard("--all", "0.1", *FAST)
    g.wait_log("guarding every process")
    start_cli("late", "sleep 300")
    g.wait_log("late: guarded")
    time.sleep(0.35)
    old = kill_instance("late")
    wait_for(lambda: restarted_since("late", old), what="late to be restarted")


def test_group_guards_only_its_group(guard: Callable[..., Guard]) -> None:
    start_cli("mine", "sleep 300", "--group", "api")
    start_cli("other", "sleep 300")
    g = guard("--group", "api", "0.1", *FAST)
    g.wait_log("mine: guarded")
    time.sleep(0.35)
    old = kill_instance("other")
    with steady("mine", 0.3):
        pass
    assert not record_alive(must("other")) and must("other").pid == old
    assert "other" not in g.text()


# --------------------------------------------------------------------------------------------
# limits


def test_max_memory_restarts_a_growing_process(guard: Callable[..., Guard]) -> None:
    hog = f"{sys.executable} -c \"x = b'1' * (40 * 1024 * 1024); import time; time.sleep(300)\""
    start_cli("hog", hog)
    start_cli("small", "sleep 300")
    small = must("small").pid
    g = guard("--all", "0.2", "--max-memory", "30M")
    wait_for(lambda: must("hog").restarts >= 1, what="a memory restart")
    assert "is over --max-memory 30.0M" in events("hog", "memory limit")[0]
    assert "hog: resident memory" in g.text()
    assert must("small").pid == small


def test_restart_every(guard: Callable[..., Guard]) -> None:
    start_cli("web", "sleep 300")
    first = must("web").pid
    guard("web", "0.1", "--restart-every", "0.5")
    wait_for(lambda: must("web").restarts >= 1 and record_alive(must("web")), what="a timed restart")
    assert must("web").pid != first
    assert events("web", "restart-every")


def test_own_limits_restart_only_their_process_without_guard_wide_options(
    guard: Callable[..., Guard],
) -> None:
    hog = f"{sys.executable} -c \"x = b'1' * (50 * 1024 * 1024); import time; time.sleep(300)\""
    start_cli("hog", hog, "--max-memory", "20M")
    start_cli("timed", "sleep 300", "--restart-every", "1s")
    start_cli("plain", "sleep 300")
    plain = must("plain").pid
    g = guard("--all", "1")
    wait_for(lambda: must("hog").restarts >= 1, what="a memory restart of hog")
    wait_for(lambda: must("timed").restarts >= 1, what="a timed restart of timed")
    assert "resident memory" in events("hog", "memory limit")[0]
    assert "is over its --max-memory 20.0M" in events("hog", "memory limit")[0]
    assert "its --restart-every 1s" in events("timed", "restart-every")[0]
    assert "hog: resident memory" in g.text()
    assert not events("hog", "restart-every") and not events("timed", "memory limit")
    # Both limits were checked while plain ran, and it has none: left alone.
    assert must("plain").pid == plain and must("plain").restarts == 0
    assert not events("plain", "memory limit") and not events("plain", "restart-every")


def test_an_own_limit_wins_over_the_guard_wide_one(guard: Callable[..., Guard]) -> None:
    hog = f"{sys.executable} -c \"x = b'1' * (40 * 1024 * 1024); import time; time.sleep(300)\""
    start_cli("capped", hog)
    start_cli("roomy", hog, "--max-memory", "1G")
    roomy = must("roomy").pid
    guard("--all", "0.2", "--max-memory", "20M")
    wait_for(lambda: must("capped").restarts >= 2, what="two memory restarts of capped")
    assert "is over --max-memory 20.0M" in events("capped", "memory limit")[0]
    assert must("roomy").pid == roomy and not events("roomy", "memory limit")


def test_an_idle_check_reads_whole_rows_only_of_processes_with_limits() -> None:
    """With no guard-wide limit, a pass decodes only the rows that have limits of their own."""
    start_cli("a", "sleep 300")
    start_cli("b", "sleep 300", "--restart-every", "1h")
    keeper = Keeper(GuardOptions(Target(TargetKind.ALL), interval=5))
    jobs = Jobs(keeper, threading.Event())
    loaded: list[list[str]] = []
    full = jobs._full

    def spy(names: list[str]) -> list[ProcessRecord]:
        loaded.append(list(names))
        return full(names)

    def every_row() -> list[ProcessRecord]:
        raise AssertionError("every row was read")

    jobs._full = spy  # type: ignore[method-assign]
    jobs.rows = every_row  # type: ignore[method-assign]
    jobs.check()
    assert loaded == [["b"]]
    run_bgr("--name", "b", "--restart-every", "off", "--force", "--wait", "0", check=True)
    loaded.clear()
    jobs.check()
    assert loaded == [[]]


# --------------------------------------------------------------------------------------------
# logs


def test_rotation_under_the_guard_keeps_every_line_once(guard: Callable[..., Guard], tmp_path: Path) -> None:
    lines = 6000
    writer, finished = tmp_path / "writer.py", tmp_path / "writer.done"
    # The writer appends while the guard rotates, and never gets more than a third of its lines
    # ahead of the rotations: at each third it waits until the guard has cut its log (stdout, so
    # the file's size falls behind what it wrote) at least once since the last third. A guard
    # that starts late on a loaded machine thus still rotates three times or more before the
    # writer is done, and is running (its signal handlers set) when it is stopped.
    writer.write_text(
        "import os, sys, time\n"
        "written = cut = 0\n"
        f"for i in range({lines}):\n"
        "    line = f'line {i:06d} ' + 'x' * 40 + '\\n'\n"
        "    sys.stdout.write(line)\n"
        "    sys.stdout.flush()\n"
        "    written += len(line)\n"
        "    if i % 50 == 0:\n"
        "        time.sleep(0.005)\n"
        f"    if i % {lines // 3} == {lines // 3 - 1}:\n"
        "        while written - os.fstat(1).st_size <= cut:\n"
        "            time.sleep(0.01)\n"
        "        cut = written - os.fstat(1).st_size\n"
        "print('done', flush=True)\n"
        "open(sys.argv[1], 'w').close()\n"
    )
    start_cli("chatty", f"{sys.executable} {writer} {finished}; exec sleep 300")
    g = guard("chatty", "5", "--max-log-size", "8K", "--keep", "1000", "--rotate-every", "0.05")
    log = Path(must("chatty").stdout)
    # Not "the log ends with done": a rotation may leave less than that line in the live file.
    wait_for(finished.exists, what="the writer")
    # Stop the guard before reading: a rotation between listing the backups and reading the live
    # file would make the test, not the rotation, see a line twice.
    assert g.stop() == 0
    backups = log_backups.backups("chatty", "out")
    assert len(backups) >= 3
    text = "".join(p.read_text() for p in backups) + log.read_text()
    assert text.splitlines() == [f"line {i:06d} " + "x" * 40 for i in range(lines)] + ["done"]
    assert len(events("chatty", "rotated")) >= 3
    assert "chatty: rotated stdout" in g.text()


# --------------------------------------------------------------------------------------------
# pulls


def test_pull_restarts_only_when_head_moved(guard: Callable[..., Guard], repos: Repos) -> None:
    app = repos.app
    run_bgr("--name", "app", "--directory", str(app), "--fetch", "--command", "sleep 300", check=True)
    g = guard("app", "0.1", "--pull-every", "0.1")
    g.wait_log("app: guarded")
    with steady("app", 0.8):  # several pulls with nothing new: no restart
        pass
    repos.push("2\n")
    wait_for(lambda: must("app").restarts == 1, what="a restart after the pull")
    assert (app / TRACKED).read_text() == "2\n"
    assert "pulled main" in events("app", "pulled")[0]
    with steady("app", 0.5):
        pass
    # A dirty tree is never reset: the pull fails, is logged, and nothing restarts.
    (app / TRACKED).write_text("local edit\n")
    repos.push("3\n")
    with steady("app", 0.3):
        wait_for(lambda: len(events("app", "pull failed")) >= 3, what="failed pulls")
    failures = events("app", "pull failed")
    assert "uncommitted changes" in failures[0]
    # Each failure doubles the wait for this name (up to an hour).
    assert [f.rsplit("(", 1)[1] for f in failures[:3]] == [
        "next try in 0.2s)",
        "next try in 0.4s)",
        "next try in 0.8s)",
    ]
    assert (app / TRACKED).read_text() == "local edit\n"
    assert "app: not pulled" in g.text()
    # Pulls keep running git; a leaked one (a `git cat-file` helper) would never go away.
    wait_for(lambda: not git_children(g.pid), 5.0, "no git children")
    no_lasting_zombies(g.pid)


def test_no_zombies_and_no_git_processes_after_many_ticks(
    guard: Callable[..., Guard], repos: Repos, tmp_path: Path
) -> None:
    app = repos.app
    run_bgr("--name", "app", "--directory", str(app), "--fetch", "--command", "sleep 300", check=True)
    run_bgr("--name", "flaky", "--command", f"date +%s.%N >> {tmp_path / 'f'}; sleep 0.05")
    # Runs of 0.05 s count as stable: restarted at once, again and again.
    g = guard("--all", "0.05", "--pull-every", "0.05", "--stable-after", "0.01")
    wait_for(lambda: len(stamps(tmp_path / "f")) >= 20, what="many restarts")
    no_lasting_zombies(g.pid)
    run_bgr("--stop", "flaky", check=True)
    time.sleep(0.3)
    wait_for(lambda: not zombie_children(g.pid) and not git_children(g.pid), 5.0, "no children")
    assert g.proc.poll() is None


def test_passes_over_a_registry_that_does_not_exist_yet_find_nothing() -> None:
    keeper = Keeper(GuardOptions(Target(TargetKind.ALL), interval=5), watcher=ExitWatcher(lambda name: None))
    jobs = Jobs(keeper, threading.Event())
    try:
        assert jobs.rows() == [] and jobs.summaries(("name",)) == []
        jobs.check()
        jobs.rotate()
        jobs.pull()
        assert not keeper.settled("web", "whatever")
    finally:
        assert keeper.watcher is not None
        keeper.watcher.stop()


def test_a_run_with_failures_counted_is_looked_at_once_it_is_due_to_clear_them() -> None:
    start_cli("web", "sleep 300")
    now = [1000.0]
    watcher = ExitWatcher(lambda name: None)
    keeper = Keeper(GuardOptions(Target(TargetKind.ALL), interval=5), watcher=watcher, clock=lambda: now[0])
    try:
        keeper.check("web")
        instance = must("web").instance
        assert keeper.settled("web", instance)
        assert not keeper.settled("web", "another instance")
        keeper._remember("web", instance, PolicyState(failures=2, started_at=now[0]))
        assert keeper.settled("web", instance)  # not stable yet: nothing to clear
        now[0] += keeper.cfg.stable_after
        assert not keeper.settled("web", instance)  # time to clear the count: a full look
    finally:
        watcher.stop()
