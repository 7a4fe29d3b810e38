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
