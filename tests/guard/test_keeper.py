"""guard.keeper: the restart policy applied to real processes: restart, back off, go fatal,
yield to the user, and keep the decision in the row.

Processes are started with the real ``bgr`` command and guarded by the real ``python -m guard``.
Intervals and backoffs are tiny (0.05-0.2 s) so that every wait here is short; waits poll with a
deadline, nothing asserts on timing except the backoff gaps, which are lower bounds the policy
guarantees.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psutil
import pytest

from bgr.models import ProcessRecord
from bgr.proc import identity
from guard.keeper import Keeper
from guard.options import GuardOptions, Target, TargetKind
from guard.policy import Phase, PolicyState
from tests.support import (
    FAST,
    Guard,
    events,
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
)


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
    """dash forks the last command of a compound one: killing just the sh leaves the program
    running in the group. (A simple command is exec'd: no sh there.)"""
    start_cli("web", "sleep 300; true")
    g = guard("web", "5", *FAST)
    g.wait_log("web: guarded")
    record = must("web")
    assert record.pgid and record.instance and record.pid
    program = [p for p in identity.marked_in_group(record.identity) if p != record.pid]
    assert program, "expected the command to run as a child of /bin/sh"
    with steady("web", 0.5):
        os.kill(record.pid, signal.SIGKILL)
    followed = must("web")
    assert record_alive(followed) and followed.pid in program
    for pid in program:  # now the program dies too: restart at once
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: must("web").instance != record.instance and record_alive(must("web")), what="a restart")


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


# --------------------------------------------------------------------------------------------
# policy state in the row


def record(instance: str, guard: dict[str, object]) -> ProcessRecord:
    return ProcessRecord(
        name="web", directory="/", command="true", stdout="/dev/null", stderr="/dev/null",
        instance=instance, guard=guard,
    )  # fmt: skip


def test_state_of_another_instance_is_a_fresh_start() -> None:
    keeper = Keeper(GuardOptions(target=Target(TargetKind.NAME, "web")))
    saved = {**PolicyState(phase=Phase.BACKOFF, failures=3).to_dict(boot_id=keeper.boot_id)}
    state, fresh = keeper.load_state(record("a", {**saved, "instance": "a"}), now=10.0)
    assert (state.phase, state.failures, fresh) == (Phase.BACKOFF, 3, False)
    # `bgr --restart` empties the column; another start path may leave someone else's state.
    assert keeper.load_state(record("b", {}), now=10.0) == (PolicyState(), True)
    assert keeper.load_state(record("b", {**saved, "instance": "a"}), now=10.0)[1] is True
    assert keeper.load_state(record("b", {**saved}), now=10.0)[1] is True
    # Written by the guard while launching, before the new instance's id was known: ours.
    state, fresh = keeper.load_state(record("b", {**saved, "instance": None}), now=10.0)
    assert (state.failures, fresh) == (3, False)


# --------------------------------------------------------------------------------------------
# out of the user's way; daemons; a first crash costs no backoff


def test_a_users_restart_stop_and_delete_are_never_failures(guard: Callable[..., Guard]) -> None:
    start_cli("web", "sleep 300")
    g = guard("--all", "1", *FAST)
    g.wait_log("web: guarded")
    for _ in range(3):
        old: int = must("web").pid or 0
        assert run_bgr("web", "--restart", "--grace", "0.5").returncode == 0
        wait_for(partial(restarted_since, "web", old), what="the user's restart")
    assert run_bgr("--stop", "web", "--grace", "0.5").returncode == 0
    time.sleep(0.5)  # give the guard every chance to react to the exits it saw
    assert events("web", "restarted by guard") == []
    assert events("web", "backoff") == [] and events("web", "exited") == []
    assert must("web").guard.get("failures", 0) == 0
    assert "failure" not in g.text()


def test_a_crash_after_a_second_of_uptime_is_restarted_at_once(guard: Callable[..., Guard]) -> None:
    start_cli("web", "sleep 300")
    g = guard("web", "5")  # the default policy: stable after 10 s, backoff from 1 s
    g.wait_log("web: guarded")
    time.sleep(1.2)
    old = kill_instance("web")
    wait_for(lambda: restarted_since("web", old), what="the restart")
    assert "(failure 1/10); restarting now" in g.text()
    assert events("web", "backoff") == []


def test_a_daemon_restarted_by_the_guard_is_not_a_failure_and_never_doubled(
    guard: Callable[..., Guard], tmp_path: Path
) -> None:
    from tests.support import daemon_command, daemon_pid

    command, pidfile = daemon_command(tmp_path)
    start_cli("d", command)
    first = daemon_pid(pidfile)
    g = guard("d", "1", *FAST)
    g.wait_log("d: guarded")
    pidfile.unlink()
    os.kill(first, signal.SIGKILL)
    second = daemon_pid(pidfile)  # the guard started the launcher again; it daemonized
    wait_for(lambda: must("d").pid == second, what="the guard following the new daemon")
    with steady("d", 1.5):
        pass
    assert must("d").guard.get("phase") == "ok" and "failure 2" not in g.text()
    assert not pidfile.exists() or daemon_pid(pidfile) == second  # no second copy was started
    g.stop()
    assert run_bgr("--delete", "d", "--grace", "0.5").returncode == 0
    assert not os.path.exists(f"/proc/{second}/cmdline") or not Path(f"/proc/{second}/cmdline").read_bytes()


def test_a_crash_loop_leaves_no_cgroup_per_restart(guard: Callable[..., Guard]) -> None:
    from bgr.proc import cgroups
    from bgr.store import open_registry

    if cgroups.base() is None:
        pytest.skip("bgr makes no cgroups here (BGR_CGROUP=off, or no writable cgroup v2 tree)")
    assert run_bgr("--name", "loop", "--command", "sleep 0.2; exit 1", "--wait", "0").returncode == 0
    guard("loop", "5", "--backoff-base", "0.05", "--backoff-max", "0.1", "--max-failures", "8")
    wait_for(lambda: must("loop").restarts >= 5, what="five restarts")
    with open_registry() as reg:
        registry_id = reg.registry_id
    # The running instance's cgroup, and at most the one that just died: not one per restart.
    assert len(cgroups.of_name(registry_id, "loop")) <= 2


def test_a_burst_of_exits_gets_its_cgroups_made_ahead_and_unused_ones_are_tidied(tmp_path: Path) -> None:
    from bgr.proc import cgroups
    from bgr.store import open_registry
    from guard.watcher import ExitWatcher

    if cgroups.base() is None:
        pytest.skip("bgr makes no cgroups here (BGR_CGROUP=off, or no writable cgroup v2 tree)")
    for name in ("a", "b", "c"):
        start_cli(name, "sleep 300")
    with open_registry() as reg:
        registry_id = reg.registry_id
    watcher = ExitWatcher(lambda name: None)
    keeper = Keeper(GuardOptions(Target(TargetKind.ALL), interval=5), watcher=watcher)
    try:
        time.sleep(1.1)  # a run past restart_at_once_after: each death is restarted at once
        old = {name: kill_instance(name) for name in ("a", "b", "c")}
        wait_for(lambda: not any(record_alive(must(n)) for n in old), what="all three dead")
        keeper.prepare(["a", "b", "c"])
        ahead = {name: keeper._made[name][0] for name in ("b", "c")}  # "a" is restarted first
        assert "a" not in keeper._made
        made = [cgroups.instance_path(registry_id, name, ahead[name]) for name in ("b", "c")]
        wait_for(lambda: all(path is not None and os.path.isdir(path) for path in made), what="their cgroups")
        keeper.check("a")
        keeper.check("b")
        assert restarted_since("a", old["a"]) and restarted_since("b", old["b"])
        assert must("b").instance == ahead["b"]
        assert must("b").cgroup == cgroups.instance_path(registry_id, "b", ahead["b"])
        # "c" is not restarted (as in a backoff): the next tidy forgets the id chosen for it and
        # removes the cgroup made for it, and no other.
        made_for_c = cgroups.instance_path(registry_id, "c", ahead["c"])
        keeper.tidy()
        assert keeper._made == {}
        assert made_for_c is not None and not os.path.exists(made_for_c)
        assert cgroups.of_name(registry_id, "b") == [must("b").cgroup]
    finally:
        watcher.stop()
