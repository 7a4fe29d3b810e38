"""bgr.proc.ports against real sockets: listeners are found and stopped, connected clients never."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from bgr.proc import ports
from tests.support import CLIENT, LISTENER, PY, free_port, process, readline, run_bgr, started_pid, wait_for


def test_listeners_on_returns_the_listener_and_never_a_connected_client() -> None:
    port = free_port()
    with process([sys.executable, "-c", LISTENER, str(port)], stdout=subprocess.PIPE) as server:
        assert readline(server).strip() == "listening"
        with process([sys.executable, "-c", CLIENT, str(port)], stdout=subprocess.PIPE) as client:
            assert readline(client).strip() == "connected"
            assert ports.listening_ports([server.pid]) == [port]
            assert ports.listening_ports([client.pid]) == []
            found = list(ports.listeners_on([port]).own)
            assert [(li.port, li.pid) for li in found] == [(port, server.pid)]
            assert "-c" in found[0].command
            gone = ports.kill_listeners(found, grace=2)
            assert [li.pid for li in gone] == [server.pid]
            assert server.wait(timeout=5) == -signal.SIGTERM
            assert client.poll() is None


# --------------------------------------------------------------------------------------------
# bgr --force: the ports a new instance declares are freed first


def test_force_frees_the_declared_port_and_never_touches_a_client(tmp_path: Path) -> None:
    port = free_port()
    with process([sys.executable, "-c", LISTENER, str(port)], stdout=subprocess.PIPE) as squatter:
        assert readline(squatter).strip() == "listening"
        with process([sys.executable, "-c", CLIENT, str(port)], stdout=subprocess.PIPE) as client:
            assert readline(client).strip() == "connected"
            done = run_bgr(
                "--name", "web", "--env", f"PORT={port}", "--force", "--grace", "0.5",
                "--command", f'{PY} -m http.server "$PORT"', cwd=tmp_path,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert f"freed port {port}: stopped pid {squatter.pid} (" in done.stdout
            assert LISTENER.strip().splitlines()[0] in done.stdout  # which command it was
            assert squatter.wait(timeout=10) == -signal.SIGTERM
            assert client.poll() is None
            pid = started_pid(done.stdout)
            wait_for(lambda: port in ports.listening_ports([pid, *_children(pid)]), what="web up")


def _children(pid: int) -> list[int]:
    import psutil

    return [c.pid for c in psutil.Process(pid).children(recursive=True)]


# --------------------------------------------------------------------------------------------
# "its ports": --port, $PORT, the ports it was seen listening on


def test_force_frees_a_declared_port_from_a_stray_copy_started_by_hand(tmp_path: Path) -> None:
    import bgr

    port = free_port()
    serve = f"{PY} -m http.server {port} --bind 127.0.0.1"
    first = run_bgr("--name", "web", "--command", serve, "--port", str(port), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert bgr.get("web").record.ports == (port,)
    assert run_bgr("--stop", "web", "--grace", "0.5").returncode == 0
    # Someone starts a copy by hand on the same port; a plain start would fail to bind.
    with process([sys.executable, "-c", LISTENER, str(port)], stdout=subprocess.PIPE) as stray:
        readline(stray)
        again = run_bgr("web", "--restart", "--force", "--grace", "0.5")
        assert again.returncode == 0, again.stderr
        assert f"freed port {port}: stopped pid {stray.pid}" in again.stdout
        assert stray.wait(timeout=5) == -signal.SIGTERM
    wait_for(lambda: bgr.get("web").ports == (port,), what="the new instance listening")
    bgr.delete("web", grace=0.5)


def test_the_ports_it_listened_on_are_remembered_and_freed(tmp_path: Path) -> None:
    import bgr

    port = free_port()
    api = run_bgr("--name", "api", "--command", f"{PY} -m http.server {port} --bind 127.0.0.1", cwd=tmp_path)
    assert api.returncode == 0, api.stderr
    wait_for(lambda: bgr.get("api").record.seen_ports == (port,), what="the port remembered")
    assert run_bgr("--stop", "api", "--grace", "0.5").returncode == 0
    with process([sys.executable, "-c", LISTENER, str(port)], stdout=subprocess.PIPE) as stray:
        readline(stray)
        again = run_bgr("api", "--restart", "--force", "--grace", "0.5")
        assert again.returncode == 0, again.stderr
        assert f"freed port {port}" in again.stdout
    bgr.delete("api", grace=0.5)


def test_a_port_held_by_another_user_is_reported_and_nothing_is_stopped_or_started(tmp_path: Path) -> None:
    import os

    import pytest

    import bgr

    if os.geteuid() != 0:
        pytest.skip("starting a listener as another user needs root")
    port = free_port()
    start = run_bgr("--name", "web", "--command", "sleep 300", "--port", str(port), cwd=tmp_path)
    assert start.returncode == 0, start.stderr
    before = bgr.get("web").pid

    def as_nobody() -> None:
        os.setgid(65534)
        os.setuid(65534)

    # The system's python: another user cannot run the test's interpreter under /root.
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no /usr/bin/python3 for the other user's listener")
    listen = [python, "-c", LISTENER, str(port)]
    with process(listen, stdout=subprocess.PIPE, preexec_fn=as_nobody, cwd="/") as theirs:
        readline(theirs)
        done = run_bgr("--name", "web", "--command", "sleep 300", "--port", str(port), "--force")
        assert done.returncode == 6
        assert f"port {port}" in done.stderr and "another user" in done.stderr and "uid 65534" in done.stderr
        assert theirs.poll() is None
        assert bgr.get("web").pid == before  # still the same instance: nothing was stopped
    bgr.delete("web", grace=0.5)


def test_port_must_be_a_port_number(tmp_path: Path) -> None:
    for bad in ("0", "65536", "http", "-1"):
        done = run_bgr("--name", "web", "--command", "sleep 1", "--port", bad, cwd=tmp_path)
        assert done.returncode == 2 and "--port takes a port number" in done.stderr, (bad, done.stderr)
