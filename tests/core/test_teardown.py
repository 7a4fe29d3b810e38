"""bgr.core.teardown: stop, delete, clean and nuke, through the CLI and the Python API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bgr
from bgr import store
from bgr.core import teardown
from bgr.errors import SpawnError
from bgr.models import StartRequest, Status
from tests.support import (
    GRACE,
    PY,
    alive,
    api_start,
    assert_one_error_line,
    listing,
    main,
    managed,
    one,
    process,
    processes_with_env,
    read,
    readline,
    run_bgr,
    session_of,
    start_many,
    started_pid,
    wait_for,
)

# --------------------------------------------------------------------------------------------
# stop


@pytest.mark.parametrize("spelling", [("w", "--stop"), ("--stop", "w")])
def test_stop_keeps_the_definition(
    spelling: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = main(capsys, "--name", "w", "--directory", str(tmp_path), "--command", "sleep 60")
    pid = started_pid(out)
    code, out, err = main(capsys, *spelling, "--grace", "0.5")
    assert code == 0, err
    assert out.strip() == "stopped w"
    assert not alive(pid)
    data = one(capsys, "w")
    assert data["status"] == "stopped" and data["pid"] is None and data["command"] == "sleep 60"
    code, out, _ = main(capsys, *spelling)
    assert code == 0 and "was not running" in out


def test_stop_escalates_to_sigkill_after_the_grace_period(tmp_path: Path, bgr_home: Path) -> None:
    api_start("stubborn", "trap '' TERM; echo ready; sleep 60 & wait", tmp_path)
    wait_for(lambda: "ready" in read(bgr_home / "stubborn-out.txt"), what="trap installed")
    result = bgr.stop("stubborn", grace=0.3)
    assert result.was_running and result.killed and not result.leftover
    assert managed("stubborn") == []


def test_a_stale_row_pointing_at_a_stranger_is_never_signalled(tmp_path: Path) -> None:
    """The row's pid and group now belong to a stranger (pid reuse); a setsid'd descendant of the
    old instance still runs. --stop/--delete take the descendant and never touch the stranger."""
    escape = f"{PY} -c 'import os, time; os.setsid(); time.sleep(60)'"
    info = api_start("stale", f"{escape} & exec sleep 60", tmp_path).info
    assert info.record.pgid is not None and info.record.instance is not None

    def escapee() -> int | None:
        # A session leader of its own that is not the instance's leader (also one: it started one).
        marked = processes_with_env("BGR_INSTANCE", info.record.instance or "")
        return next((p for p in marked if session_of(p) == p and p != info.record.pid), None)

    escaped = wait_for(escapee, what="setsid descendant")
    os.killpg(info.record.pgid, signal.SIGKILL)
    stranger_code = "import time; print('up', flush=True); time.sleep(120)"
    with process(
        [sys.executable, "-c", stranger_code], stdout=subprocess.PIPE, start_new_session=True
    ) as stranger:
        readline(stranger)
        with store.open_registry() as reg:
            reg.update("stale", pid=stranger.pid, pgid=stranger.pid, start_token="bogus:1")
        # Never shown as the stranger. Where the instance has a cgroup, the escapee is still in it:
        # the instance runs on, now led by it.
        got = bgr.get("stale")
        assert got.pid != stranger.pid
        assert got.status is not Status.RUNNING or got.pid == escaped
        stop = run_bgr("--stop", "stale", "--grace", "0.5")
        assert stop.returncode == 0, stop.stderr
        assert not alive(escaped)
        delete = run_bgr("--delete", "stale", "--grace", "0.5")
        assert delete.returncode == 0, delete.stderr
        assert "was not running" in delete.stdout
        assert stranger.poll() is None and alive(stranger.pid)


@pytest.mark.parametrize("action", ["stop", "delete"])
def test_a_start_that_gets_in_right_after_a_stop_keeps_its_row_and_logs(
    action: str, tmp_path: Path, bgr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulate the race: another `bgr --name race` runs between our stop and our bookkeeping."""
    api_start("race", "echo first; exec sleep 60", tmp_path)
    real_stop = teardown.stop_records
    newcomer: list[bgr.StartResult] = []
    raced: list[bool] = []

    def stop_then_someone_starts(
        records: list[bgr.ProcessRecord], grace: float, registry_id: str = ""
    ) -> list[bgr.StopResult]:
        results = real_stop(records, grace, registry_id)
        if not raced:  # the newcomer's own start stops the old instance through here too
            raced.append(True)
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


# --------------------------------------------------------------------------------------------
# delete, clean, nuke


@pytest.mark.parametrize("spelling", [("tree", "--delete"), ("--delete", "tree")])
def test_delete_takes_the_whole_tree_the_row_and_the_logs(
    spelling: tuple[str, str], tmp_path: Path, bgr_home: Path
) -> None:
    escape = f"{PY} -c 'import os, time; os.setsid(); print(\"escaped\", flush=True); time.sleep(60)'"
    command = f"{escape} & sh -c 'sleep 60 & sleep 60' & echo started; wait"
    done = run_bgr("--name", "tree", "--command", command, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: "escaped" in read(bgr_home / "tree-out.txt"), what="setsid grandchild")
    mine = processes_with_env("BGR_HOME", str(bgr_home))
    assert len(mine) >= 5
    assert any(session_of(p) == p for p in mine)  # one left the session
    deleted = run_bgr(*spelling, "--grace", "0.5")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "deleted tree"
    assert processes_with_env("BGR_HOME", str(bgr_home)) == []
    assert json.loads(run_bgr("--json").stdout) == []
    assert not (bgr_home / "tree-out.txt").exists() and not (bgr_home / "tree-err.txt").exists()
    missing = run_bgr("tree")
    assert missing.returncode == 3
    assert_one_error_line(missing.stderr)


def test_clean_forgets_dead_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(capsys, "--name", "up", "--directory", str(tmp_path), "--command", "sleep 60")
    main(capsys, "--name", "bad", "--command", "exit 4")
    code, out, _ = main(capsys, "--clean")
    assert code == 0 and out.strip() == "forgot 1: bad"
    assert [d["name"] for d in listing(capsys)] == ["up"]
    assert main(capsys, "--clean")[1].strip() == "nothing to clean"


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


def test_nuke_stops_many_term_ignoring_processes_in_parallel(tmp_path: Path, bgr_home: Path) -> None:
    command = "trap '' TERM; echo ready; sleep 60 & wait"
    for code, err in start_many([f"s{i}" for i in range(10)], tmp_path, command):
        assert code == 0, err
    logs = [bgr_home / f"s{i}-out.txt" for i in range(10)]
    wait_for(lambda: all("ready" in read(log) for log in logs), what="all ready")
    began = time.monotonic()
    nuked = run_bgr("--nuke", "--grace", "1")
    elapsed = time.monotonic() - began
    assert nuked.returncode == 0, nuked.stderr
    assert nuked.stdout.count("killed after the grace period") == 10
    assert elapsed < 5, f"--nuke took {elapsed:.1f} s: not in parallel"
    assert processes_with_env("BGR_HOME", str(bgr_home)) == []
    assert json.loads(run_bgr("--json").stdout) == []


def test_nuke_stops_and_forgets_everything(tmp_path: Path) -> None:
    pids = [api_start(f"n{i}", "sleep 60", tmp_path).info.pid for i in range(3)]
    results = bgr.nuke(grace=GRACE)
    assert sorted(r.name for r in results) == ["n0", "n1", "n2"]
    assert all(r.was_running and not r.leftover for r in results)
    assert bgr.list_processes() == []
    assert not any(alive(p or 0) for p in pids)
    assert bgr.nuke() == []


def test_forgetting_a_name_removes_its_cgroup_folder_and_a_stop_its_instance_cgroup(
    tmp_path: Path, bgr_home: Path
) -> None:
    from bgr.proc import cgroups

    if cgroups.base() is None:
        pytest.skip("bgr makes no cgroups here (BGR_CGROUP=off, or no writable cgroup v2 tree)")
    for name in ("kept", "gone", "dead", "swept"):
        api_start(name, "sleep 60", tmp_path)
    with store.open_registry() as reg:
        registry_id = reg.registry_id
    folders = {n: cgroups.name_dir(registry_id, n) for n in ("kept", "gone", "dead", "swept")}
    assert all(f and os.path.isdir(f) for f in folders.values())
    bgr.stop("kept", grace=GRACE)
    assert cgroups.of_name(registry_id, "kept") == []  # the stopped instance's cgroup is removed
    bgr.delete("gone", grace=GRACE)
    bgr.stop("dead", grace=GRACE)
    assert bgr.clean() == ["dead", "kept"]
    assert not any(os.path.exists(str(folders[n])) for n in ("kept", "gone", "dead"))
    bgr.nuke(grace=GRACE)
    assert not os.path.exists(str(folders["swept"]))
    assert not os.path.exists(str(cgroups.registry_dir(registry_id)))  # nothing left of the registry
