"""bgr.proc.ports against real sockets: listeners are found and stopped, connected clients never."""

from __future__ import annotations

import signal
import subprocess
import sys

from bgr.proc import ports
from tests.support import CLIENT, LISTENER, free_port, process, readline


def test_listeners_on_returns_the_listener_and_never_a_connected_client() -> None:
    port = free_port()
    with process([sys.executable, "-c", LISTENER, str(port)], stdout=subprocess.PIPE) as server:
        assert readline(server).strip() == "listening"
        with process([sys.executable, "-c", CLIENT, str(port)], stdout=subprocess.PIPE) as client:
            assert readline(client).strip() == "connected"
            assert ports.listening_ports([server.pid]) == [port]
            assert ports.listening_ports([client.pid]) == []
            found = ports.listeners_on([port])
            assert [(li.port, li.pid) for li in found] == [(port, server.pid)]
            assert "-c" in found[0].command
            gone = ports.kill_listeners(found, grace=2)
            assert [li.pid for li in gone] == [server.pid]
            assert server.wait(timeout=5) == -signal.SIGTERM
            assert client.poll() is None
