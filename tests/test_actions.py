"""The Python API (``import bgr``) and the use cases behind it, in process, with real children."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import bgr
from bgr import paths, store
from bgr.core import launch, teardown
from bgr.errors import AlreadyRunning, NotFound, RegistryError, SpawnError, UsageError
from bgr.models import Desired, StartRequest, Status
from tests.support import (
    GRACE,
    PY,
    alive,
    api_start,
    managed,
    proc_state,
    process,
    processes_with_env,
    read,
    readline,
    run_bgr,
    session_of,
    wait_for,
)


def test_python_api_lifecycle(tmp_path: Path, bgr_home: Path) -> None:
    command = "echo hello; echo warn >&2; exec sleep 60"
    result = api_start("api", command, tmp_path)
    info = result.info
    assert info.status is Status.RUNNING and info.pid is not None
    first_pid = info.pid
    assert not result.replaced
    assert alive(first_pid)

    got = bgr.get("api")
    assert got.status is Status.RUNNING and got.pid == info.pid
    assert got.record.command == command and got.record.directory == str(tmp_path)
    assert got.memory_rss and got.memory_rss > 0
    assert [i.name for i in bgr.list_processes()] == ["api"]

    wait_for(lambda: read(bgr_home / "api-err.txt"), what="output")
    assert bgr.logs("api") == {"stdout": "hello\n", "stderr": "warn\n"}
    assert bgr.logs("api", stream="stderr", lines=1) == {"stderr": "warn\n"}

    restarted = bgr.restart("api", grace=GRACE)
    assert restarted.replaced
    assert restarted.info.pid is not None and restarted.info.pid != info.pid
    assert restarted.info.record.restarts == 1
    wait_for(lambda: not alive(first_pid), what="old instance gone")

    stopped = bgr.stop("api", grace=GRACE)
    assert stopped.was_running and not stopped.leftover
    after = bgr.get("api")
    assert after.status is Status.STOPPED and after.pid is None
    assert after.record.desired is Desired.STOPPED

    bgr.delete("api", grace=GRACE)
    with pytest.raises(NotFound):
        bgr.get("api")
    assert bgr.list_processes() == []
    assert not (bgr_home / "api-out.txt").exists()


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


def test_a_forced_start_that_cannot_launch_leaves_the_running_instance_alone(
    tmp_path: Path,
) -> None:
    first = api_start("web", "sleep 60", tmp_path).info
    bad = StartRequest(name="web", force=True, stdout=str(tmp_path / "missing" / "web.log"))
    with pytest.raises(UsageError, match="log directory"):
        bgr.start(bad, grace=GRACE)
    again = bgr.get("web")
    assert again.status is Status.RUNNING and again.pid == first.pid
    assert again.record == first.record


def test_stopped_name_starts_again_with_its_stored_definition_unless_overridden(
    tmp_path: Path,
) -> None:
    api_start("web", "sleep 60", tmp_path, startup_window=0)
    bgr.stop("web", grace=GRACE)
    other = tmp_path / "other"
    other.mkdir()
    again = bgr.start(StartRequest(name="web"), grace=GRACE).info
    assert again.status is Status.RUNNING
    assert again.record.command == "sleep 60" and again.record.directory == str(tmp_path)
    assert again.record.restarts == 1
    bgr.stop("web", grace=GRACE)
    changed = bgr.start(StartRequest(name="web", command="sleep 61", directory=str(other)), grace=GRACE).info
    assert changed.record.command == "sleep 61" and changed.record.directory == str(other)


def test_a_python_crash_inside_the_startup_window_is_reported_and_kept(tmp_path: Path) -> None:
    """Python needs ~60-90 ms to start here, more than STARTUP_WINDOW: give it a longer window."""
    command = f"{PY} -c 'import sys; print(\"boom\", file=sys.stderr); sys.exit(3)'"
    with pytest.raises(SpawnError, match="exit code 3") as caught:
        api_start("crash", command, tmp_path, startup_window=10)
    assert "boom" in caught.value.details
    info = bgr.get("crash")
    assert info.status is Status.CRASHED and info.exit_code == 3 and info.pid is None
    assert info.record.command == command


def test_a_zombie_counts_as_dead(tmp_path: Path) -> None:
    info = api_start("z", "sleep 60", tmp_path).info
    assert info.pid is not None and info.record.pgid is not None
    os.killpg(info.record.pgid, signal.SIGKILL)
    # This test process is the parent and does not reap: the leader stays a zombie.
    wait_for(lambda: proc_state(info.pid or 0) == "Z", what="zombie")
    got = bgr.get("z")
    assert got.status is not Status.RUNNING and got.pid is None
    assert [i.status for i in bgr.list_processes()] == [got.status]


def test_a_stale_row_pointing_at_a_stranger_is_never_signalled(tmp_path: Path) -> None:
    """The row's pid and group now belong to a stranger (pid reuse); a setsid'd descendant of the
    old instance still runs. --stop/--delete take the descendant and never touch the stranger."""
    escape = f"{PY} -c 'import os, time; os.setsid(); time.sleep(60)'"
    info = api_start("stale", f"{escape} & exec sleep 60", tmp_path).info
    assert info.record.pgid is not None and info.record.instance is not None

    def escapee() -> int | None:
        marked = processes_with_env("BGR_INSTANCE", info.record.instance or "")
        return next((p for p in marked if session_of(p) == p), None)

    escaped = wait_for(escapee, what="setsid descendant")
    os.killpg(info.record.pgid, signal.SIGKILL)
    stranger_code = "import time; print('up', flush=True); time.sleep(120)"
    with process(
        [sys.executable, "-c", stranger_code], stdout=subprocess.PIPE, start_new_session=True
    ) as stranger:
        readline(stranger)
        with store.open_registry() as reg:
            reg.update("stale", pid=stranger.pid, pgid=stranger.pid, start_token="bogus:1")
        assert bgr.get("stale").status is not Status.RUNNING
        stop = run_bgr("--stop", "stale", "--grace", "0.5")
        assert stop.returncode == 0, stop.stderr
        assert not alive(escaped)
        delete = run_bgr("--delete", "stale", "--grace", "0.5")
        assert delete.returncode == 0, delete.stderr
        assert "was not running" in delete.stdout
        assert stranger.poll() is None and alive(stranger.pid)


def test_stop_escalates_to_sigkill_after_the_grace_period(tmp_path: Path, bgr_home: Path) -> None:
    api_start("stubborn", "trap '' TERM; echo ready; sleep 60 & wait", tmp_path)
    wait_for(lambda: "ready" in read(bgr_home / "stubborn-out.txt"), what="trap installed")
    result = bgr.stop("stubborn", grace=0.3)
    assert result.was_running and result.killed and not result.leftover
    assert managed("stubborn") == []


def test_restart_of_a_broken_config_changes_nothing(tmp_path: Path) -> None:
    first = api_start("cfg", "sleep 60", tmp_path).info
    (tmp_path / ".config.toml").write_text("[server]\nport = \n")
    with pytest.raises(bgr.BgrError, match="line 2, column"):
        bgr.restart("cfg", grace=GRACE)
    again = bgr.get("cfg")
    assert again.pid == first.pid and again.status is Status.RUNNING
    assert again.record == first.record


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


@pytest.mark.parametrize("action", ["stop", "delete"])
def test_a_start_that_gets_in_right_after_a_stop_keeps_its_row_and_logs(
    action: str, tmp_path: Path, bgr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulate the race: another `bgr --name race` runs between our stop and our bookkeeping."""
    api_start("race", "echo first; exec sleep 60", tmp_path)
    real_stop = teardown.stop_records
    newcomer: list[bgr.StartResult] = []

    def stop_then_someone_starts(records: list[bgr.ProcessRecord], grace: float) -> list[bgr.StopResult]:
        results = real_stop(records, grace)
        newcomer.append(bgr.start(StartRequest(name="race", command="echo second; exec sleep 60")))
        return results

    monkeypatch.setattr(teardown, "stop_records", stop_then_someone_starts)
    getattr(bgr, action)("race", grace=GRACE)
    info = bgr.get("race")
    assert info.status is Status.RUNNING and info.pid == newcomer[0].info.pid
    assert info.record.stopped_at is None
    assert info.record.events[-1]["event"] == "started again"
    wait_for(lambda: read(bgr_home / "race-out.txt"), what="the newcomer's log")
    assert read(bgr_home / "race-out.txt") == "second\n"


def test_clean_forgets_only_what_is_not_running(tmp_path: Path, bgr_home: Path) -> None:
    api_start("up", "sleep 60", tmp_path)
    api_start("down", "sleep 60", tmp_path, startup_window=0)
    bgr.stop("down", grace=GRACE)
    with pytest.raises(SpawnError):
        api_start("broken", "echo bad >&2; exit 3", tmp_path, startup_window=10)
    assert (bgr_home / "broken-err.txt").exists()
    assert sorted(bgr.clean()) == ["broken", "down"]
    assert [i.name for i in bgr.list_processes()] == ["up"]
    assert not (bgr_home / "broken-err.txt").exists()
    assert bgr.clean() == []


def test_nuke_stops_and_forgets_everything(tmp_path: Path) -> None:
    pids = [api_start(f"n{i}", "sleep 60", tmp_path).info.pid for i in range(3)]
    results = bgr.nuke(grace=GRACE)
    assert sorted(r.name for r in results) == ["n0", "n1", "n2"]
    assert all(r.was_running and not r.leftover for r in results)
    assert bgr.list_processes() == []
    assert not any(alive(p or 0) for p in pids)
    assert bgr.nuke() == []


def test_env_from_request_accumulates_and_bad_keys_are_refused(tmp_path: Path) -> None:
    api_start("e", "sleep 60", tmp_path, startup_window=0)
    bgr.stop("e", grace=GRACE)
    bgr.start(StartRequest(name="e", env={"A": "1"}), grace=GRACE, startup_window=0)
    bgr.stop("e", grace=GRACE)
    info = bgr.start(StartRequest(name="e", env={"B": "2"}), grace=GRACE, startup_window=0).info
    assert info.record.env == {"A": "1", "B": "2"}
    with pytest.raises(UsageError, match="invalid environment variable name"):
        bgr.start(StartRequest(name="e2", command="true", env={"1X": "v"}))
    with pytest.raises(NotFound):
        bgr.stop("nope")
    with pytest.raises(UsageError, match="give --command"):
        bgr.start(StartRequest(name="nope"))


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


def test_names_are_validated_before_anything_is_touched(bgr_home: Path) -> None:
    for bad in ("../x", "a/b", ".hidden", "x" * 65, ""):
        with pytest.raises(UsageError, match="invalid process name"):
            bgr.start(StartRequest(name=bad, command="true"))
        with pytest.raises(UsageError):
            bgr.stop(bad)
    assert paths.validate_name("a" * 64) == "a" * 64
    assert not bgr_home.exists()
