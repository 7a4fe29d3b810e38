"""bgr.core.startup: the start window (settled, finished, failed) and daemons, with and without cgroups.

Each test that involves a daemon runs twice: with a cgroup per instance (where this machine lets
bgr make them: root, or BGR_CGROUP) and without (BGR_CGROUP=off: markers, recorded pids, and a
start that is a subreaper while it watches).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import bgr
from bgr.errors import SpawnError
from bgr.models import Status
from tests.support import (
    GRACE,
    PY,
    accepts,
    alive,
    api_start,
    daemon_command,
    daemon_pid,
    environ_of,
    free_port,
    run_bgr,
    wait_for,
    wiped,
)


def test_a_daemon_that_double_forks_setsids_and_wipes_its_environment_is_the_instance(
    tmp_path: Path, tracking: str
) -> None:
    command, pidfile = daemon_command(tmp_path)
    result = api_start("d", command, tmp_path)
    daemon = daemon_pid(pidfile)
    assert wait_for(lambda: wiped(daemon), what="the marker gone")
    assert result.how == "daemonized"
    info = bgr.get("d")
    assert info.status is Status.RUNNING and info.pid == daemon
    assert any(e["event"] == "daemonized" for e in info.record.events)
    assert (info.record.cgroup is not None) == (tracking == "cgroup")
    stopped = bgr.stop("d", grace=GRACE)
    assert stopped.was_running and not stopped.leftover
    assert not alive(daemon)
    assert bgr.get("d").status is Status.STOPPED


def test_stopping_a_daemon_again_and_again_leaves_nothing(tmp_path: Path, tracking: str) -> None:
    command, pidfile = daemon_command(tmp_path)
    api_start("d", command, tmp_path)
    for _ in range(3):
        daemon = daemon_pid(pidfile)
        pidfile.unlink()
        restarted = bgr.restart("d", grace=GRACE)
        assert restarted.how == "daemonized"
        assert not alive(daemon)
    daemon = daemon_pid(pidfile)
    bgr.delete("d", grace=GRACE)
    assert not alive(daemon)


def test_a_daemon_keeps_its_port_and_force_frees_it(tmp_path: Path, tracking: str) -> None:
    port = free_port()
    command, pidfile = daemon_command(tmp_path, port=port)
    api_start("d", command, tmp_path)
    daemon = daemon_pid(pidfile)
    wait_for(lambda: accepts(port), what="the daemon listening")
    assert bgr.get("d").ports == (port,)
    pidfile.unlink()
    again = run_bgr("--name", "d", "--command", command, "--force", "--grace", "0.5", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert not alive(daemon)
    assert daemon_pid(pidfile) != daemon
    bgr.delete("d", grace=GRACE)


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (f"{PY} -c 'import no_such_module'", "ModuleNotFoundError"),
        (f"{PY} -c 'sum(range(10**7)); raise SystemExit(4)'", "exit code 4"),
    ],
)
def test_the_default_window_catches_a_failure_during_the_programs_own_startup(
    command: str, reason: str, tmp_path: Path
) -> None:
    with pytest.raises(SpawnError) as caught:
        api_start("crashy", command, tmp_path)
    assert reason in f"{caught.value} {caught.value.details}"
    assert bgr.get("crashy").status is Status.CRASHED


def test_address_already_in_use_is_a_failed_start(tmp_path: Path) -> None:
    port = free_port()
    serve = f"{PY} -m http.server {port} --bind 127.0.0.1"
    api_start("first", serve, tmp_path)
    wait_for(lambda: accepts(port), what="the first server")
    done = run_bgr("--name", "second", "--command", serve, cwd=tmp_path)
    assert done.returncode == 6
    assert "Address already in use" in done.stderr
    bgr.delete("first", grace=GRACE)


def test_a_job_that_exits_0_at_once_has_finished(tmp_path: Path) -> None:
    done = run_bgr("--name", "job", "--command", "echo done", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "finished" in done.stdout and "exit code 0" in done.stdout
    assert bgr.get("job").status is Status.EXITED


def test_a_quiet_program_has_settled_and_a_busy_one_is_still_running(tmp_path: Path) -> None:
    assert api_start("quiet", "sleep 60", tmp_path).how == "settled"
    busy = api_start("busy", f"{PY} -c 'while True: pass'", tmp_path, startup_window=0.3)
    assert busy.how == "running"
    assert bgr.get("busy").status is Status.RUNNING
    bgr.nuke(grace=GRACE)


def test_wait_0_returns_without_watching(tmp_path: Path) -> None:
    result = api_start("fast", "sleep 60", tmp_path, startup_window=0)
    assert result.how == "running" and result.after == 0.0


def test_python_programs_run_unbuffered_unless_told_otherwise(tmp_path: Path) -> None:
    api_start("py", "sleep 60", tmp_path)
    pid = bgr.get("py").pid
    assert pid and environ_of(pid)["PYTHONUNBUFFERED"] == "1"
    bgr.delete("py", grace=GRACE)
    done = run_bgr("--name", "py2", "--command", "sleep 60", "--env", "PYTHONUNBUFFERED=", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    pid = bgr.get("py2").pid
    assert pid and environ_of(pid)["PYTHONUNBUFFERED"] == ""
    # print() reaches the log at once, without flush=True.
    bgr.delete("py2", grace=GRACE)
    api_start("talk", f"{PY} -c 'import time; print(\"hello\"); time.sleep(60)'", tmp_path)
    log = Path(bgr.get("talk").record.stdout)
    wait_for(lambda: log.read_text() == "hello\n", what="unbuffered output")
    bgr.delete("talk", grace=GRACE)


def test_a_daemon_is_stopped_with_everything_it_started_after_its_marker_is_gone(
    tmp_path: Path, tracking: str
) -> None:
    """A second daemon started by the first one's process, after the start window: with a cgroup
    it is held in the instance; without, it is a descendant of the recorded daemon."""
    script = tmp_path / "spawner.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "open(sys.argv[1], 'w').write(str(child.pid))\n"
        "time.sleep(300)\n"
    )
    command, pidfile = daemon_command(tmp_path)
    child_file = tmp_path / "child.pid"
    api_start("spawner", f"{PY} {script} {child_file}", tmp_path)
    child = daemon_pid(child_file)
    bgr.stop("spawner", grace=GRACE)
    assert not alive(child)
    api_start("d", command, tmp_path)
    daemon = daemon_pid(pidfile)
    bgr.stop("d", grace=GRACE)
    assert not alive(daemon)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_redis_daemonized_is_tracked_and_stopped(tmp_path: Path, tracking: str) -> None:
    port = free_port()
    command = f"redis-server --port {port} --daemonize yes --save '' --appendonly no --dir {tmp_path}"
    result = api_start("redis", command, tmp_path)
    assert result.how == "daemonized"
    wait_for(lambda: accepts(port), what="redis listening")
    info = bgr.get("redis")
    assert info.status is Status.RUNNING and info.pid is not None
    assert wait_for(
        lambda: wiped(info.pid or 0) or "BGR_INSTANCE" not in environ_of(info.pid or 0), what="title"
    )
    assert bgr.stop("redis", grace=GRACE).was_running
    assert not accepts(port) and not alive(info.pid)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_master_and_workers_are_tracked_and_stopped(tmp_path: Path, tracking: str) -> None:
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; worker_processes 2;\n"
        "events {}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}; proxy_temp_path {tmp_path};\n"
        f"  fastcgi_temp_path {tmp_path}; uwsgi_temp_path {tmp_path}; scgi_temp_path {tmp_path};\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 'ok'; }} }} }}\n"
    )
    result = api_start("nginx", f"nginx -c {conf}", tmp_path)
    assert result.how == "daemonized"
    wait_for(lambda: accepts(port), what="nginx listening")
    master = bgr.get("nginx").pid
    assert master is not None
    found = subprocess.run(["pgrep", "-P", str(master)], check=False, capture_output=True, text=True)
    workers = [int(pid) for pid in found.stdout.split()]
    assert len(workers) == 2
    bgr.delete("nginx", grace=GRACE)
    assert not accepts(port)
    assert not alive(master) and not any(alive(w) for w in workers)
