"""bgr-guard end to end: the real command (``python -m guard``) guarding real processes.

Processes are started with the real ``bgr`` command. Intervals and backoffs are tiny (0.05-0.2 s)
so that every wait here is short; waits poll with a deadline, nothing asserts on timing except
the backoff gaps, which are lower bounds the policy guarantees.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from bgr.logfiles import backups as log_backups
from bgr.proc import identity
from bgr.store import open_registry
from tests.support import (
    FAST,
    TRACKED,
    Guard,
    Repos,
    events,
    git_children,
    kill_instance,
    managed,
    must,
    no_lasting_zombies,
    record_alive,
    restarted_since,
    row,
    run_bgr,
    stamps,
    start_cli,
    status,
    steady,
    wait_for,
    zombie_children,
)

# -- keeping processes alive -------------------------------------------------------------------


def test_sigkill_is_restarted_with_its_exit_recorded(guard: Callable[..., Guard]) -> None:
    start_cli("web", "sleep 300")
    g = guard("web", "5", *FAST)
    g.wait_log("web: guarded")
    time.sleep(0.4)  # a stable run: the restart is immediate
    old = kill_instance("web")
    wait_for(lambda: restarted_since("web", old), what="a new instance")
    record = must("web")
    assert record.restarts == 1
    assert events("web", "restarted by guard") == [f"pid {record.pid}"]
    # bgr started the first instance, so its exit code was unknown to the guard...
    assert events("web", "exited")[-1].startswith("exit code unknown")
    assert psutil.Process(record.pid).ppid() == g.pid
    time.sleep(0.4)
    old = kill_instance("web")
    wait_for(lambda: restarted_since("web", old), what="a second new instance")
    # ...but the guard started the second one: it is the parent, it knows how it died.
    assert events("web", "exited")[-1].startswith("killed by signal 9 (SIGKILL)")
    assert must("web").restarts == 2
    assert must("web").guard["phase"] == "ok"
    assert "web: restarted (pid" in g.text()
    no_lasting_zombies(g.pid)


def test_crash_loop_backs_off_then_goes_fatal(guard: Callable[..., Guard], tmp_path: Path) -> None:
    out = tmp_path / "stamps"
    crash = f"date +%s.%N >> {out}; exit 1"
    assert run_bgr("--name", "loop", "--command", crash).returncode != 0
    g = guard("loop", "5", "--backoff-base", "0.1", "--backoff-max", "0.4", "--max-failures", "5")
    wait_for(lambda: status("loop") == "fatal", what="fatal")
    times = stamps(out)
    assert len(times) == 5  # the first run and four restarts: the fifth quick failure is fatal
    gaps = [b - a for a, b in itertools.pairwise(times)]
    nominal = [0.1, 0.2, 0.4, 0.4]  # doubling, capped at --backoff-max, jitter +-10 %
    assert all(gap >= 0.9 * want for gap, want in zip(gaps, nominal, strict=True)), gaps
    record = must("loop")
    assert record.guard["phase"] == "fatal"
    assert record.guard["failures"] == 5
    assert record.exit_code == 1
    assert record.restarts == 4
    assert len(events("loop", "backoff")) == 4
    assert "5 quick failures in a row" in events("loop", "fatal")[0]
    assert "loop: fatal:" in g.text()
    no_lasting_zombies(g.pid)
    time.sleep(0.5)
    assert len(stamps(out)) == 5  # fatal stays down
    no_lasting_zombies(g.pid)


def test_backoff_is_visible_in_bgr_and_kept_in_the_registry(
    guard: Callable[..., Guard], tmp_path: Path
) -> None:
    run_bgr("--name", "slow", "--command", "exit 2")
    g = guard("slow", "5", "--backoff-base", "30", "--backoff-max", "60")
    wait_for(lambda: status("slow") == "backoff", what="backoff")
    assert g.stop() == 0
    record = must("slow")
    assert (record.guard["phase"], record.guard["failures"], record.guard["last_exit"]) == ("backoff", 1, 2)
    assert record.guard["boot_id"] and record.guard["instance"] == record.instance
    (detail,) = events("slow", "backoff")
    assert detail.startswith("retry in ") and detail.endswith("; failure 1 of 10")
    assert 27 <= float(detail.split()[2].rstrip("s;")) <= 33  # 30 s +- 10 % jitter
    assert status("slow") == "backoff"  # still, with no guard running


def test_db_option_selects_the_registry(guard: Callable[..., Guard], tmp_path: Path) -> None:
    db = str(tmp_path / "other.sqlite")
    run_bgr("--db", db, "--name", "web", "--command", "sleep 300", check=True)
    assert guard("web", "--once").proc.wait(15) == 3  # not in the default registry
    with open_registry(db) as reg:
        record = reg.require("web")
    assert record.pgid
    time.sleep(0.2)
    os.killpg(record.pgid, signal.SIGKILL)
    assert guard("web", "--once", "--db", db, "--stable-after", "0.1").proc.wait(15) == 0
    with open_registry(db) as reg:
        again = reg.require("web")
    assert again.pid != record.pid and again.restarts == 1
    assert record_alive(again)


def test_exit_127_is_fatal_at_once(guard: Callable[..., Guard]) -> None:
    assert run_bgr("--name", "typo", "--command", "no-such-command-bgr").returncode != 0
    guard("typo", "0.1", *FAST)
    wait_for(lambda: status("typo") == "fatal", what="fatal")
    record = must("typo")
    assert record.restarts == 0
    assert record.guard["failures"] == 1
    assert "command not found" in events("typo", "fatal")[0]
    # A manual start with a fixed command clears it.
    start_cli("typo", "sleep 300")
    wait_for(lambda: must("typo").guard.get("phase") == "ok", what="a fresh state")
    assert must("typo").guard["failures"] == 0
    assert status("typo") == "running"


def test_only_the_shell_killed_is_not_a_restart(guard: Callable[..., Guard]) -> None:
    """dash forks the command: killing just the sh leaves the program running in the group."""
    start_cli("web", "sleep 300")
    g = guard("web", "5", *FAST)
    g.wait_log("web: guarded")
    record = must("web")
    assert record.pgid and record.instance and record.pid
    program = [p for p in identity.marked_in_group(record.identity) if p != record.pid]
    assert program, "expected the command to run as a child of /bin/sh"
    with steady("web", 0.5):
        os.kill(record.pid, signal.SIGKILL)
    assert record_alive(must("web"))
    os.kill(program[0], signal.SIGKILL)  # now the program dies too: restart at once
    wait_for(lambda: restarted_since("web", record.pid or 0), what="a restart")


def test_guard_killed_processes_live_on_and_the_next_guard_resumes(
    guard: Callable[..., Guard], tmp_path: Path
) -> None:
    out = tmp_path / "stamps"
    start_cli("steady", "sleep 300")
    run_bgr("--name", "loop", "--command", f"date +%s.%N >> {out}; exit 3")
    policy = ["--backoff-base", "0.15", "--backoff-max", "0.3", "--max-failures", "6"]
    first = guard("--all", "5", *policy, "--stable-after", "0.2")
    first.wait_log("steady: guarded")
    time.sleep(0.3)
    old = kill_instance("steady")
    wait_for(lambda: restarted_since("steady", old), what="steady restarted by the guard")
    wait_for(lambda: must("loop").guard.get("failures", 0) >= 2, what="two failures")
    first.proc.kill()
    first.proc.wait()
    survivor = must("steady")
    assert record_alive(survivor)  # the guard's own child outlives it: own session, own log files
    wait_for(lambda: not record_alive(must("loop")), what="the crash loop to be down")
    second = guard("--all", "5", *policy)
    wait_for(lambda: status("loop") == "fatal", what="fatal")
    # Counters came from the registry: exactly six runs in all, not six more.
    assert len(stamps(out)) == 6
    assert must("loop").guard["failures"] == 6
    assert must("steady").pid == survivor.pid
    second.wait_log("steady: guarded")


def test_stop_and_delete_win_over_restarts(guard: Callable[..., Guard], tmp_path: Path) -> None:
    for name in ("a", "b"):
        run_bgr("--name", name, "--command", f"date +%s.%N >> {tmp_path / name}; exit 1")
    fast = ["--backoff-base", "0.02", "--backoff-max", "0.05", "--max-failures", "10000"]
    g = guard("--all", "0.2", *fast)
    wait_for(lambda: len(stamps(tmp_path / "a")) > 5 and len(stamps(tmp_path / "b")) > 5)
    run_bgr("--stop", "a", check=True)
    run_bgr("--delete", "b", check=True)
    counts = (len(stamps(tmp_path / "a")), len(stamps(tmp_path / "b")))
    time.sleep(0.6)
    assert (len(stamps(tmp_path / "a")), len(stamps(tmp_path / "b"))) == counts
    assert status("a") == "stopped"
    assert row("b") is None
    assert managed("a") == managed("b") == []
    assert "a: stopped by the user" in g.text()
    # --delete marks the row stopped before it removes it: the guard may see either.
    assert "b: deleted by the user" in g.text() or "b: stopped by the user" in g.text()
    no_lasting_zombies(g.pid)


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


# -- limits ------------------------------------------------------------------------------------


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


# -- logs --------------------------------------------------------------------------------------


def test_rotation_under_the_guard_keeps_every_line_once(guard: Callable[..., Guard], tmp_path: Path) -> None:
    lines = 6000
    writer = tmp_path / "writer.py"
    writer.write_text(
        "import sys, time\n"
        f"for i in range({lines}):\n"
        "    sys.stdout.write(f'line {i:06d} ' + 'x' * 40 + '\\n')\n"
        "    sys.stdout.flush()\n"
        "    if i % 50 == 0:\n"
        "        time.sleep(0.005)\n"
        "print('done', flush=True)\n"
    )
    start_cli("chatty", f"{sys.executable} {writer}; exec sleep 300")
    g = guard("chatty", "5", "--max-log-size", "8K", "--keep", "1000", "--rotate-every", "0.05")
    log = Path(must("chatty").stdout)
    wait_for(lambda: log.exists() and log.read_text().endswith("done\n"), what="the writer")
    # Stop the guard before reading: a rotation between listing the backups and reading the live
    # file would make the test, not the rotation, see a line twice.
    assert g.stop() == 0
    backups = log_backups.backups("chatty", "out")
    assert len(backups) >= 3
    text = "".join(p.read_text() for p in backups) + log.read_text()
    assert text.splitlines() == [f"line {i:06d} " + "x" * 40 for i in range(lines)] + ["done"]
    assert len(events("chatty", "rotated")) >= 3
    assert "chatty: rotated stdout" in g.text()


# -- pulls -------------------------------------------------------------------------------------


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
