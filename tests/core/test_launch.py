"""bgr.core.launch: start and restart, through the CLI (in process and real) and the Python API."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

import bgr
from bgr import store
from bgr.core import launch
from bgr.core.launch import ExitNote
from bgr.errors import AlreadyRunning, BgrError, LockHeld, RegistryError, SpawnError
from bgr.models import StartRequest, Status
from bgr.proc.locks import name_lock
from tests.support import (
    GRACE,
    PY,
    accepts,
    alive,
    api_start,
    assert_one_error_line,
    environ_of,
    free_port,
    main,
    managed,
    one,
    process,
    read,
    readline,
    run_bgr,
    session_of,
    start_many,
    started_pid,
    wait_for,
)

# --------------------------------------------------------------------------------------------
# start: detached, refused when running


def test_start_returns_at_once_detached_and_details_show_everything(tmp_path: Path, bgr_home: Path) -> None:
    app = tmp_path / "myapp"
    app.mkdir()
    port = free_port()
    done = run_bgr(
        "--name", "myapp", "--directory", "./myapp", "--command", f"{PY} -m http.server {port}",
        "--env", "TOKEN=secret-value",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("started myapp (pid ")
    pid = started_pid(done.stdout)
    # The CLI has exited; the process lives on in a session of its own.
    assert alive(pid)
    assert session_of(pid) == pid != os.getsid(0)
    wait_for(lambda: accepts(port), what="http.server listening")

    details = run_bgr("myapp")
    assert details.returncode == 0, details.stderr
    facts = dict(line.split(None, 1) for line in details.stdout.splitlines() if "  " in line)
    assert facts["status"] == "running"
    assert facts["pid"] == str(pid)
    assert facts["restarts"] == "0"
    assert facts["directory"] == str(app)
    assert facts["command"] == f"{PY} -m http.server {port}"
    assert facts["stdout"] == str(bgr_home / "myapp-out.txt")
    assert facts["stderr"] == str(bgr_home / "myapp-err.txt")
    assert facts["config"].startswith(str(app / ".config.toml"))
    assert facts["ports"] == str(port)
    assert "keys" in details.stdout and "TOKEN" in details.stdout
    assert "secret-value" not in details.stdout
    for label in ("started", "uptime", "memory", "cpu", "exit code"):
        assert label in facts or any(line.startswith(label) for line in details.stdout.splitlines())
    shown = run_bgr("myapp", "--json", "--show-env")
    data = json.loads(shown.stdout)
    assert data["ports"] == [port] and data["env"] == {"TOKEN": "secret-value"}
    assert data["memory"] > 0 and data["cpu_percent"] is not None


def test_ctrl_c_and_hangup_in_the_starting_terminal_do_not_reach_the_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like a terminal: bgr runs inside a process group that then gets SIGINT and SIGHUP."""
    script = f"{PY} -m bgr --name calm --command 'sleep 60' >/dev/null && echo started && exec sleep 60"
    with process(
        ["/bin/sh", "-c", script], stdout=subprocess.PIPE, start_new_session=True, cwd=tmp_path
    ) as shell:
        assert readline(shell).strip() == "started"
        pid = one(capsys, "calm")["pid"]
        assert os.getsid(pid) != os.getsid(shell.pid)
        os.killpg(shell.pid, signal.SIGINT)
        os.killpg(shell.pid, signal.SIGHUP)
        # The signals did reach the caller's group (whichever was delivered first ended it).
        assert shell.wait(timeout=10) in (-signal.SIGINT, -signal.SIGHUP)
    assert alive(pid)
    assert one(capsys, "calm")["status"] == "running"


def test_starting_a_running_name_is_refused_and_leaves_it_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = main(capsys, "--name", "w", "--directory", str(tmp_path), "--command", "sleep 60")
    assert code == 0
    pid = started_pid(out)
    code, out, err = main(capsys, "--name", "w", "--command", "sleep 61")
    assert code == 4 and out == ""
    assert_one_error_line(err)
    assert "already running" in err and "--force" in err
    data = one(capsys, "w")
    assert data["pid"] == pid and data["command"] == "sleep 60" and data["restarts"] == 0


def test_running_name_is_refused_without_force_and_left_untouched(tmp_path: Path) -> None:
    first = api_start("web", "sleep 60", tmp_path).info
    with pytest.raises(AlreadyRunning, match="already running"):
        api_start("web", "sleep 61", tmp_path)
    again = bgr.get("web")
    assert again.pid == first.pid and again.record.command == "sleep 60"
    assert again.record.restarts == 0
    forced = bgr.start(StartRequest(name="web", force=True), grace=GRACE)
    assert forced.replaced and forced.info.pid != first.pid
    assert forced.info.record.command == "sleep 60"


def test_force_replaces_a_running_instance_and_its_port(tmp_path: Path) -> None:
    port = free_port()
    command = f"{PY} -m http.server {port}"
    first = run_bgr("--name", "web", "--command", command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    old = started_pid(first.stdout)
    wait_for(lambda: accepts(port), what="first instance listening")
    again = run_bgr("--name", "web", "--command", command, "--force", "--grace", "0.5")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("restarted web (pid ")
    new = started_pid(again.stdout)
    assert new != old and not alive(old)
    data = wait_for(
        lambda: (d := json.loads(run_bgr("web", "--json").stdout))["ports"] == [port] and d,
        what="second instance listening",
    )
    assert data["pid"] == new and data["restarts"] == 1


# --------------------------------------------------------------------------------------------
# instant failures


@pytest.mark.parametrize(
    "case",
    [
        ("no-such-binary", 127, "command not found", "not found"),
        ("./script.sh", 126, "not executable", "Permission denied"),
        ("echo boom >&2; exit 3", 3, "exit code 3", "boom"),
    ],
)
def test_instant_failures_are_reported_and_the_definition_kept(
    case: tuple[str, int, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command, expected_code, what, tail = case
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    code, out, err = main(capsys, "--name", "bad", "--directory", str(tmp_path), "--command", command)
    assert code != 0 and out == ""
    first, *rest = err.splitlines()
    assert first.startswith("bgr: bad exited right after starting") and what in first
    assert any(tail in line for line in rest), err  # the stderr tail
    data = one(capsys, "bad")
    assert data["status"] == "crashed" and data["exit_code"] == expected_code
    assert data["pid"] is None and data["command"] == command


@pytest.mark.parametrize("command", ["no-such-binary", "./script.sh"])
def test_a_command_that_cannot_run_is_reported_even_with_a_window_too_short_to_see_it(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1 µs is far less than the shell needs to fail (~2 ms): only the check before the window ends
    # (spawn.cannot_exec) can make this report, on any machine load.
    (tmp_path / "script.sh").write_text("#!/bin/sh\necho hi\n")
    args = ("--name", "bad", "--directory", str(tmp_path), "--command", command, "--wait", "0.000001")
    code, _, err = main(capsys, *args)
    assert code != 0 and "exited right after starting" in err
    assert one(capsys, "bad")["exit_code"] in (126, 127)


def test_instant_failure_through_the_real_cli(tmp_path: Path) -> None:
    done = run_bgr("--name", "nope", "--command", "no-such-binary", cwd=tmp_path)
    assert done.returncode != 0
    assert "exit code 127" in done.stderr and "Traceback" not in done.stderr
    listed = json.loads(run_bgr("--json").stdout)
    assert [(p["name"], p["status"], p["exit_code"]) for p in listed] == [("nope", "crashed", 127)]


def test_a_python_crash_inside_the_startup_window_is_reported_and_kept(tmp_path: Path) -> None:
    """Python needs ~60-90 ms to start here, more than STARTUP_WINDOW: give it a longer window."""
    command = f"{PY} -c 'import sys; print(\"boom\", file=sys.stderr); sys.exit(3)'"
    with pytest.raises(SpawnError, match="exit code 3") as caught:
        api_start("crash", command, tmp_path, startup_window=10)
    assert "boom" in caught.value.details
    info = bgr.get("crash")
    assert info.status is Status.CRASHED and info.exit_code == 3 and info.pid is None
    assert info.record.command == command


# --------------------------------------------------------------------------------------------
# restart


@pytest.mark.parametrize("spelling", [("app", "--restart"), ("--restart", "app")])
def test_restart_rereads_config_keeps_definition_and_backs_up_logs(
    spelling: tuple[str, str], tmp_path: Path, bgr_home: Path
) -> None:
    config = tmp_path / ".config.toml"
    config.write_text("[server]\nport = 3000\n")
    command = "echo port=$SERVER_PORT; exec sleep 60"
    done = run_bgr("--name", "app", "--command", command, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out_log = bgr_home / "app-out.txt"
    wait_for(lambda: read(out_log), what="first output")
    assert read(out_log) == "port=3000\n"

    config.write_text("[server]\nport = 4000\n")
    restarted = run_bgr(*spelling, "--grace", "0.5", cwd=bgr_home)  # another cwd on purpose
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.startswith("restarted app (pid ")
    wait_for(lambda: read(out_log), what="second output")
    assert read(out_log) == "port=4000\n"
    # The old stdout moved whole to a date-stamped backup (the empty stderr log has nothing to keep).
    (backup,) = (bgr_home / "backup").iterdir()
    assert backup.name.startswith("app-out-20") and backup.name.endswith(".txt")
    assert read(backup) == "port=3000\n"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    data = json.loads(run_bgr("app", "--json").stdout)
    assert data["command"] == command and data["directory"] == str(tmp_path)
    assert data["restarts"] == 1 and data["status"] == "running"
    assert data["pid"] == started_pid(restarted.stdout) != started_pid(done.stdout)


# --------------------------------------------------------------------------------------------
# the registry cannot take the new instance


def test_locked_registry_starts_nothing_and_moves_no_logs(
    tmp_path: Path, bgr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 100)
    first = api_start("held", "echo old; exec sleep 60", tmp_path).info
    wait_for(lambda: read(bgr_home / "held-out.txt"), what="output")
    holder = sqlite3.connect(bgr_home / "bgr.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RegistryError, match="locked"):
            api_start("fresh", "sleep 60", tmp_path)
        with pytest.raises(RegistryError, match="locked"):
            bgr.restart("held", grace=GRACE)
        with pytest.raises(RegistryError, match="locked"):
            bgr.stop("held", grace=GRACE)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert managed("fresh") == []
    assert alive(first.pid or 0) and bgr.get("held").pid == first.pid
    assert read(bgr_home / "held-out.txt") == "old\n"
    assert [i.name for i in bgr.list_processes()] == ["held"]


def test_an_instance_that_cannot_be_recorded_is_killed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If storing the new instance fails after the spawn, no unmanaged process may stay behind."""

    def refuse(self: store.Registry, record: object) -> None:
        raise RegistryError("registry is read-only (simulated)")

    monkeypatch.setattr(store.Registry, "put", refuse)
    with pytest.raises(RegistryError, match="simulated"):
        api_start("ghost", "sleep 60", tmp_path)
    assert managed("ghost") == []


# --------------------------------------------------------------------------------------------
# concurrency


def test_thirty_concurrent_starts_of_one_name_give_one_process(tmp_path: Path, bgr_home: Path) -> None:
    results = start_many(["same"] * 30, tmp_path)
    assert sorted(code for code, _ in results) == [0] + [4] * 29
    for _, err in results:
        assert "Traceback" not in err and "database is locked" not in err
    listed = json.loads(run_bgr("--json").stdout)
    assert [(d["name"], d["status"]) for d in listed] == [("same", "running")]
    instances = {environ_of(p)["BGR_INSTANCE"] for p in managed("same")}
    assert len(instances) == 1


def test_thirty_concurrent_distinct_names_all_run(tmp_path: Path) -> None:
    names = [f"p{i:02d}" for i in range(30)]
    results = start_many(names, tmp_path)
    for code, err in results:
        assert code == 0, err
        assert "Traceback" not in err and "locked" not in err
    listed = json.loads(run_bgr("--json").stdout)
    assert [d["name"] for d in listed] == names
    assert all(d["status"] == "running" for d in listed)


# --------------------------------------------------------------------------------------------
# the guard's restart and exit bookkeeping


def test_guard_restart_yields_to_a_user_stop(tmp_path: Path) -> None:
    first = api_start("g", "sleep 60", tmp_path).info
    instance = first.record.instance
    # The row describes a live instance: nothing to do.
    assert launch.guard_restart("g", instance, guard_state={}) is None
    bgr.stop("g", grace=GRACE)
    assert launch.guard_restart("g", instance, guard_state={}) is None
    assert bgr.get("g").status is Status.STOPPED


def test_guard_restart_restarts_a_dead_instance_and_record_exit_is_instance_checked(
    tmp_path: Path, bgr_home: Path
) -> None:
    first = api_start("g", "echo run; exec sleep 60", tmp_path).info
    assert first.record.pgid is not None and first.record.instance is not None
    wait_for(lambda: read(bgr_home / "g-out.txt") == "run\n", what="first run")
    os.killpg(first.record.pgid, signal.SIGKILL)
    wait_for(lambda: not alive(first.pid or 0), what="death")
    launch.record_exit("g", "some-other-instance", 99)
    assert bgr.get("g").exit_code is None
    launch.record_exit("g", first.record.instance, 137)
    assert bgr.get("g").exit_code == 137
    assert launch.guard_restart("g", "not-the-dead-one", guard_state={}) is None
    again = launch.guard_restart("g", first.record.instance, guard_state={"phase": "running"})
    assert again is not None and again.pid != first.pid and again.guard == {"phase": "running"}
    wait_for(lambda: read(bgr_home / "g-out.txt") == "run\nrun\n", what="appended log")
    assert bgr.get("g").status is Status.RUNNING


def _killed(name: str, tmp_path: Path) -> bgr.ProcessInfo:
    first = api_start(name, "sleep 60", tmp_path).info
    assert first.record.pgid is not None and first.pid is not None
    os.killpg(first.record.pgid, signal.SIGKILL)
    wait_for(lambda: not alive(first.pid or 0), what="death")
    return first


def test_guard_restart_records_the_exit_in_its_first_write_and_leaves_old_cgroups_to_tidy(
    tmp_path: Path,
) -> None:
    first = _killed("g", tmp_path)
    ended = ExitNote(-9, 1234.5, "killed by signal 9 (SIGKILL) after 1.0s")
    with store.open_registry() as reg:
        again = launch.guard_restart("g", first.record.instance, reg=reg, guard_state={}, ended=ended)
        assert again is not None and again.pid != first.pid
        kinds = [(e["event"], e.get("detail")) for e in again.events]
        assert kinds[-2:] == [("exited", ended.detail), ("restarted by guard", f"pid {again.pid}")]
        assert bgr.get("g").record.events == again.events
        if first.record.cgroup is None:
            return  # no cgroups here: nothing to tidy
        assert again.cgroup is not None
        # The dead instance's cgroup is left for later, not removed on the restart's path.
        assert os.path.isdir(first.record.cgroup)
        assert launch.tidy_cgroups("g", reg=reg)
        assert not os.path.exists(first.record.cgroup) and os.path.isdir(again.cgroup)


def test_guard_restart_never_waits_for_a_name_a_bgr_command_holds(tmp_path: Path) -> None:
    first = _killed("g", tmp_path)
    with store.open_registry() as reg, name_lock(reg.layout, "g"):
        began = time.monotonic()
        with pytest.raises(LockHeld):
            launch.guard_restart("g", first.record.instance, reg=reg, guard_state={})
        # At once, not after a lock timeout (a bgr command's is 30 s): a loose bound for slow hosts.
        assert time.monotonic() - began < 5
        assert not launch.tidy_cgroups("g", reg=reg)
    assert bgr.get("g").status is not Status.RUNNING  # nothing was started meanwhile


def test_a_guard_restart_refused_before_its_first_write_still_records_the_exit(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    request = StartRequest(name="g", command="sleep 60", directory=str(tmp_path), stdout=str(logs / "out"))
    first = bgr.start(request, grace=GRACE).info
    assert first.record.pgid is not None
    os.killpg(first.record.pgid, signal.SIGKILL)
    wait_for(lambda: not alive(first.pid or 0), what="death")
    (logs / "out").unlink()
    logs.rmdir()
    ended = ExitNote(-9, 1234.5, "killed by signal 9 (SIGKILL) after 1.0s")
    with pytest.raises(BgrError, match="log directory"):
        launch.guard_restart("g", first.record.instance, guard_state={}, ended=ended)
    row = bgr.get("g").record
    assert (row.exit_code, row.stopped_at, row.instance) == (-9, 1234.5, first.record.instance)
    assert [e.get("detail") for e in row.events if e["event"] == "exited"] == [ended.detail]


# --------------------------------------------------------------------------------------------
# schedules and hooks: stored with the definition


def test_a_cron_job_is_defined_not_run_and_bgr_start_runs_it_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bgr_home: Path
) -> None:
    code, out, err = main(capsys, "--name", "job", "--command", "echo ran", "--cron", "0 3 * * *")
    assert code == 0, err
    assert out.startswith("scheduled job: cron '0 3 * * *', next run ") and "03:00" in out
    data = one(capsys, "job")
    assert data["status"] == "scheduled" and data["pid"] is None and data["schedule"]["cron"] == "0 3 * * *"
    assert data["schedule"]["next_run"] is not None
    assert read(bgr_home / "job-out.txt") == ""  # not run
    table = main(capsys)[1].splitlines()
    assert table[0].split()[-2] == "NEXT" and "03:00" in table[1]
    code, out, _ = main(capsys, "start", "job")
    assert code == 0 and out.startswith("job ran and finished at once")
    assert read(bgr_home / "job-out.txt") == "ran\n"
    assert one(capsys, "job")["status"] == "scheduled"  # still a job, between runs
    assert main(capsys, "--name", "job", "--cron", "off", "--restart-at", "0 4 * * 1")[0] == 0
    data = one(capsys, "job")
    assert data["schedule"] == {"restart_at": "0 4 * * 1"} and data["status"] == "exited"


def test_hooks_and_restart_schedules_are_stored_and_removed(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("--name", "w", "--command", "sleep 60", "--wait", "0")
    assert main(capsys, *argv, "--restart-at", "0  4 * * *", "--on-failure", "notify-send down")[0] == 0
    data = one(capsys, "w")
    assert (data["schedule"], data["on_failure"]) == ({"restart_at": "0 4 * * *"}, "notify-send down")
    assert "restart at" in main(capsys, "w")[1]
    assert (
        main(capsys, "--name", "w", "--restart-at", "off", "--on-failure", "off", "--force", "--wait", "0")[0]
        == 0
    )
    data = one(capsys, "w")
    assert (data["schedule"], data["on_failure"]) == ({}, None)


def test_guard_limits_are_stored_shown_kept_and_removed(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("--name", "w", "--command", "sleep 60", "--wait", "0")
    assert main(capsys, *argv, "--max-memory", "200M", "--restart-every", "24h")[0] == 0
    limits = {"max_memory": 200 * 1024**2, "restart_every": 86400.0}
    assert one(capsys, "w")["limits"] == limits
    assert "guard limits  max memory 200.0M, restart every 86400s" in main(capsys, "w")[1]
    # A new definition without the options keeps them, as it keeps every stored option.
    assert main(capsys, "--name", "w", "--command", "sleep 61", "--force", "--wait", "0")[0] == 0
    assert one(capsys, "w")["limits"] == limits
    # off removes one, and only that one (as --restart-at off does).
    assert main(capsys, "--name", "w", "--max-memory", "off", "--force", "--wait", "0")[0] == 0
    assert one(capsys, "w")["limits"] == {"restart_every": 86400.0}
    # `bgr w --max-memory 1G` defines (and so is refused while it runs), it does not just look.
    code, out, err = main(capsys, "w", "--max-memory", "1G")
    assert (code, out) == (4, "") and "already running" in err
    assert main(capsys, "w", "--restart-every", "OFF", "--force", "--wait", "0")[0] == 0
    data = one(capsys, "w")
    assert data["limits"] == {} and "guard limits" not in main(capsys, "w")[1]
    assert main(capsys, "--json")[1].count('"limits": {}') == 1
