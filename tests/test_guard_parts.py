"""bgr-guard's parts in-process: options, the command line's errors, the gate, the exit watcher."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgr.errors import UsageError
from bgr.models import ProcessRecord
from bgr.proc import host
from bgr.units import parse_duration
from guard import cli, watcher
from guard.gate import NameGate
from guard.keeper import Keeper
from guard.options import GuardOptions, Target, TargetKind
from guard.policy import Phase, PolicyState
from tests.support import run_bgr, wait_for

# -- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("0.5", 0.5), (".25", 0.25), ("500ms", 0.5), ("90s", 90.0), ("5m", 300.0),
     ("1.5h", 5400.0), ("1d", 86400.0), (" 2M ", 120.0)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "0", "0s", "-1", "1x", "nan", "inf", "5 m s", "1e3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text, "INTERVAL")


def test_lock_files_differ_per_target_and_registry(tmp_path: Path) -> None:
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    names = {
        Target(TargetKind.NAME, "all").lock_name(a),
        Target(TargetKind.ALL).lock_name(a),
        Target(TargetKind.GROUP, "all").lock_name(a),
        Target(TargetKind.NAME, "all").lock_name(b),
    }
    assert len(names) == 4
    # "@" cannot start a process name, so a guard lock never is some process's name lock.
    assert all(n.startswith("@guard-") and n.endswith(".lock") for n in names)


def options(*argv: str) -> GuardOptions:
    return cli.options_from(cli.parse(argv))


def test_options_from_the_command_line() -> None:
    got = options("web", "0.5", "--max-failures", "3", "--backoff-base", "100ms",
                  "--backoff-max", "2s", "--max-memory", "200M", "--restart-every", "1h",
                  "--max-log-size", "64K", "--keep", "0", "--pull-every", "1m", "--grace", "2")  # fmt: skip
    assert got.target == Target(TargetKind.NAME, "web")
    assert got.interval == 0.5
    assert (got.policy.max_failures, got.policy.base_delay, got.policy.max_delay) == (3, 0.1, 2.0)
    assert got.max_memory == 200 * 1024**2
    assert got.restart_every == 3600.0
    assert (got.max_log_size, got.keep, got.pull_every, got.grace) == (65536, 0, 60.0, 2.0)
    assert got.rotation_interval == 0.5
    defaults = options("--all")
    assert defaults.target.kind is TargetKind.ALL
    assert (defaults.interval, defaults.max_log_size, defaults.keep) == (30.0, 10 * 1024**2, 10)
    assert (defaults.pull_every, defaults.policy.max_failures, defaults.max_memory) == (300.0, 10, None)
    assert options("--group=api", "5m").target == Target(TargetKind.GROUP, "api")
    assert options("web", "--backoff-base", "2m").policy.max_delay == 120.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "what to guard?"),
        (["--once"], "what to guard?"),
        (["web", "0"], "INTERVAL must be more than 0"),
        (["web", "soon"], "INTERVAL takes a duration"),
        (["web", "1", "2"], "unexpected argument '2'"),
        (["--all", "--group", "x"], "exclude each other"),
        (["--all", "web", "5"], "exclude each other"),
        (["--al"], "did you mean --all?"),
        (["web", "--max-mem", "1M"], "did you mean --max-memory?"),
        (["web", "--max-memory", "lots"], "--max-memory: invalid size"),
        (["web", "--keep", "-1"], "--keep must be at least 0"),
        (["web", "--max-failures", "x"], "--max-failures takes a whole number"),
        (["web", "--backoff-base", "5s", "--backoff-max", "1s"], "must not exceed"),
        (["../etc"], "invalid process name"),
        (["--group", "a/b"], "invalid group"),
        (["nosuch"], "no process named 'nosuch'"),
    ],
)
def test_command_line_errors_are_one_clean_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert err.startswith("bgr-guard: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "bgr-guard [options] NAME [INTERVAL]" in capsys.readouterr().out
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("bgr-guard ")


def test_python_dash_m_guard_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "guard", "nosuch"], check=False, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 3
    assert done.stderr.strip().startswith("bgr-guard: no process named 'nosuch'")


# -- policy state in the row ---------------------------------------------------------------


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


# -- the gate ------------------------------------------------------------------------------


def test_gate_runs_a_poke_at_once_or_after_the_current_holder() -> None:
    checks: list[str] = []
    gate = NameGate(checks.append)
    assert gate.poke("a") is True
    assert checks == ["a"]
    entered, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.hold("a"):
            entered.set()
            leave.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(5)
    assert gate.poke("a") is False  # does not wait...
    assert gate.poke("a") is False
    assert gate.poke("b") is True  # ...and other names are free
    assert checks == ["a", "b"]
    leave.set()
    holder.join(5)
    assert checks == ["a", "b", "a"]  # ...but the holder checks once more before letting go
    assert gate.busy() == set()


def test_gate_hold_waits_for_the_holder() -> None:
    order: list[str] = []
    gate = NameGate(lambda name: None)
    started = threading.Event()

    def slow() -> None:
        with gate.hold("a"):
            started.set()
            time.sleep(0.1)
            order.append("first")

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait(5)
    with gate.hold("a"):
        order.append("second")
    thread.join(5)
    assert order == ["first", "second"]


# -- the exit watcher ----------------------------------------------------------------------


@pytest.fixture
def exits() -> Iterator[tuple[watcher.ExitWatcher, list[str]]]:
    seen: list[str] = []
    w = watcher.ExitWatcher(seen.append, poll_interval=0.01)
    w.start()
    try:
        yield w, seen
    finally:
        w.stop()


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "30"])


def token(pid: int) -> str:
    found = host.start_token(pid)
    assert found is not None
    return found


def test_watcher_reports_an_exit_of_a_process_it_did_not_start(
    exits: tuple[watcher.ExitWatcher, list[str]],
) -> None:
    w, seen = exits
    child = sleeper()
    try:
        w.watch("web", [(child.pid, token(child.pid))])
        assert w.watched() == {"web": [child.pid]}
        time.sleep(0.05)
        assert seen == []
        child.kill()
        wait_for(lambda: seen == ["web"], timeout=5.0)
        assert w.watched() == {}  # fired names are no longer watched
    finally:
        child.kill()
        child.wait()


def test_watcher_fires_at_once_for_a_dead_or_reused_pid(
    exits: tuple[watcher.ExitWatcher, list[str]],
) -> None:
    w, seen = exits
    child = sleeper()
    try:
        w.watch("reused", [(child.pid, "another-boot:123")])  # same pid, other process
        wait_for(lambda: seen == ["reused"], timeout=5.0)
    finally:
        child.kill()
        child.wait()
    w.watch("gone", [(child.pid, token(os.getpid()))])
    w.watch("nothing", [])
    wait_for(lambda: sorted(seen) == ["gone", "nothing", "reused"], timeout=5.0)


def test_watcher_forget_and_replace(exits: tuple[watcher.ExitWatcher, list[str]]) -> None:
    w, seen = exits
    first, second = sleeper(), sleeper()
    try:
        w.watch("a", [(first.pid, token(first.pid))])
        w.watch("a", [(second.pid, token(second.pid))])  # replaces the first
        first.kill()
        first.wait()
        time.sleep(0.1)
        assert seen == []
        w.forget("a")
        second.kill()
        second.wait()
        time.sleep(0.1)
        assert seen == []
    finally:
        for child in (first, second):
            child.kill()
            child.wait()


def test_watcher_polls_when_out_of_descriptors(
    exits: tuple[watcher.ExitWatcher, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    w, seen = exits
    monkeypatch.setattr(watcher, "_ensure_fd_room", lambda needed: False)
    child = sleeper()
    try:
        w.watch("web", [(child.pid, token(child.pid))])
        assert w._entries["web"][0].fd == -1
        child.kill()
        wait_for(lambda: seen == ["web"], timeout=5.0)
    finally:
        child.kill()
        child.wait()


def test_watcher_wake_calls_back_and_is_usable_from_a_signal_handler() -> None:
    woken = threading.Event()
    w = watcher.ExitWatcher(lambda name: None, on_wake=woken.set)
    w.start()
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: w.wake())
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert woken.wait(5)
    finally:
        signal.signal(signal.SIGUSR1, previous)
        w.stop()


def test_fd_limit_is_raised_only_when_needed() -> None:
    """In a child process: a low soft limit is raised towards the hard one when more is needed."""
    code = (
        "import resource\n"
        "from guard import watcher\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "assert watcher._ensure_fd_room(100)\n"
        "assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 256\n"
        "assert watcher._ensure_fd_room(300)\n"
        "assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 300\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))\n"
        "assert not watcher._ensure_fd_room(300)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_heavy_modules_are_imported_only_when_needed(tmp_path: Path) -> None:
    """A check and a rotation pass need neither GitPython, psutil (Linux) nor bgr.logfiles.backups; the
    long-running guard keeps OpenSSL out; a pull imports GitPython."""
    code = f"""
import sys, threading
from guard import cli
cli._skip_tls()
from bgr.core import launch, teardown
from bgr.models import StartRequest
from guard.jobs import Jobs
from guard.keeper import Keeper
from guard.options import GuardOptions, Target, TargetKind
from guard.scheduler import GuardService
launch.start(StartRequest(name="web", command="sleep 30", directory={str(tmp_path)!r}))
options = GuardOptions(target=Target(TargetKind.ALL))
jobs = Jobs(Keeper(options), threading.Event())
jobs.check(); jobs.rotate(); jobs.pull()
GuardService(options)
heavy = ("git", "psutil", "bgr.logfiles.reading", "bgr.logfiles.backups", "bgr.logfiles.rotation")
heavy += ("ssl", "_ssl")
heavy = [m for m in heavy if sys.modules.get(m)]
assert heavy == (["psutil"] if sys.platform != "linux" else []), heavy
from bgr.store import open_registry
with open_registry() as reg:
    reg.update("web", fetch=True)
jobs.pull()  # not a git checkout: the pull fails (logged), but it did need GitPython
assert "git" in sys.modules
teardown.delete("web")
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


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


def test_a_guard_with_closed_standard_streams_still_runs_its_pass(tmp_path: Path) -> None:
    """cron may run `bgr-guard --all --once` with its streams closed: the pass must still run."""
    assert run_bgr("--name", "web", "--command", "sleep 60", cwd=tmp_path).returncode == 0
    pgid = json.loads(run_bgr("web", "--json").stdout)["pid"]
    os.killpg(pgid, signal.SIGKILL)
    wait_for(lambda: json.loads(run_bgr("web", "--json").stdout)["status"] != "running", timeout=5.0)
    python = shlex.quote(sys.executable)
    done = subprocess.run(
        ["sh", "-c", f"exec {python} -m guard --all --once --stable-after 0.001 <&- >&- 2>&-"],
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    shown = json.loads(run_bgr("web", "--json").stdout)
    assert shown["status"] == "running" and shown["restarts"] == 1
