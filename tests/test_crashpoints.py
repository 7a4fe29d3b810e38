"""bgr.crashpoints: bgr and bgr-guard killed at every named point leave nothing unaccounted for.

Each start is killed (SIGKILL, as by a power cut or the OOM killer) at a point; afterwards the
registry must know every process of the name, and the next command must give exactly one
instance: the one that was spawned, adopted, or a new one when nothing was spawned.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from bgr import crashpoints
from bgr.proc import cgroups
from tests.support import FAST, Guard, managed, must, run_bgr, start_cli, steady, wait_for

LAUNCH_POINTS = [p for p in crashpoints.POINTS if p.startswith("launch:")]


def crash_at(point: str, *argv: str, cwd: Path) -> None:
    done = run_bgr(*argv, env={**os.environ, crashpoints.VARIABLE: point}, cwd=cwd)
    assert done.returncode == -signal.SIGKILL, (done.stdout, done.stderr)


def events(name: str) -> list[str]:
    return [f"{e['event']} {e['detail']}" for e in must(name).events]


@pytest.mark.parametrize("point", LAUNCH_POINTS)
def test_a_start_killed_at_any_point_gives_one_instance_at_the_next_start(
    point: str, tmp_path: Path, tracking: str
) -> None:
    crash_at(point, "--name", "c", "--command", "sleep 60", cwd=tmp_path)
    spawned = point != "launch:intent"
    assert len(managed("c")) == int(spawned)
    again = run_bgr("--name", "c", "--command", "sleep 60", cwd=tmp_path)
    # What the dead bgr spawned is adopted (so "already running"); nothing spawned: a fresh start.
    assert again.returncode == (4 if spawned else 0), again.stderr
    assert len(managed("c")) == 1
    if point != "launch:recorded":
        assert any(e.startswith("recovered") for e in events("c"))
    assert run_bgr("--delete", "c", "--grace", "0.5").returncode == 0
    assert managed("c") == []


@pytest.mark.parametrize("point", LAUNCH_POINTS)
@pytest.mark.parametrize("cleanup", [("--stop", "c"), ("--delete", "c"), ("--nuke",)])
def test_stop_delete_and_nuke_find_what_a_killed_start_left(
    point: str, cleanup: tuple[str, ...], tmp_path: Path
) -> None:
    crash_at(point, "--name", "c", "--command", "sleep 60", cwd=tmp_path)
    done = run_bgr(*cleanup, "--grace", "0.5")
    assert done.returncode == 0, done.stderr
    assert managed("c") == []


def test_a_listing_adopts_an_instance_whose_starter_died(tmp_path: Path) -> None:
    crash_at("launch:spawned", "--name", "c", "--command", "sleep 60", cwd=tmp_path)
    (pid,) = managed("c")
    listed = run_bgr("--json")
    assert f'"pid": {pid}' in listed.stdout and '"status": "running"' in listed.stdout
    run_bgr("--delete", "c", "--grace", "0.5")


def test_a_restart_killed_after_its_spawn_leaves_one_instance(tmp_path: Path) -> None:
    start_cli("c", "sleep 60")
    (old,) = managed("c")
    crash_at("launch:spawned", "c", "--restart", "--grace", "0.5", cwd=tmp_path)
    (new,) = managed("c")
    assert new != old
    assert run_bgr("c", "--restart", "--grace", "0.5").returncode == 0
    assert len(managed("c")) == 1 and new not in managed("c")
    run_bgr("--delete", "c", "--grace", "0.5")


def test_a_stop_killed_after_marking_is_finished_by_the_next_stop(tmp_path: Path) -> None:
    start_cli("c", "sleep 60")
    crash_at("stop:marked", "--stop", "c", cwd=tmp_path)
    assert len(managed("c")) == 1 and must("c").desired == "stopped"
    assert run_bgr("--stop", "c", "--grace", "0.5").returncode == 0
    assert managed("c") == []


def test_a_daemon_whose_starter_died_is_adopted_through_its_cgroup(tmp_path: Path) -> None:
    from tests.support import daemon_command, daemon_pid, wiped

    if cgroups.base() is None:
        pytest.skip("bgr makes no cgroups here (BGR_CGROUP=off, or no writable cgroup v2 tree)")
    command, pidfile = daemon_command(tmp_path)
    crash_at("launch:spawned", "--name", "d", "--command", command, cwd=tmp_path)
    daemon = daemon_pid(pidfile)
    wait_for(lambda: wiped(daemon), what="the marker gone")
    again = run_bgr("--name", "d", "--command", command, cwd=tmp_path)
    assert again.returncode == 4, again.stderr  # adopted: it runs
    assert run_bgr("--delete", "d", "--grace", "0.5").returncode == 0
    assert not os.path.exists(f"/proc/{daemon}") or b"Z" in Path(f"/proc/{daemon}/stat").read_bytes()


@pytest.mark.parametrize("point", LAUNCH_POINTS)
def test_a_guard_killed_at_any_point_of_a_restart_leaves_one_instance_to_the_next(
    point: str, guard: Callable[..., Guard], tracking: str
) -> None:
    start_cli("web", "sleep 300")
    first = guard("web", "5", *FAST, env={crashpoints.VARIABLE: point})
    first.wait_log("web: guarded")
    (old,) = managed("web")
    os.kill(old, signal.SIGKILL)
    assert first.proc.wait(15) == -signal.SIGKILL  # died restarting it
    assert len(managed("web")) == int(point != "launch:intent")
    second = guard("web", "5", *FAST)

    def settled() -> bool:
        row = must("web")
        return not row.intent and managed("web") == [row.pid]

    wait_for(settled, what="one recorded instance")
    with steady("web", 1.0):
        pass
    assert len(managed("web")) == 1
    second.stop()
    run_bgr("--delete", "web", "--grace", "0.5")
