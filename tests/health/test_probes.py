"""bgr.health.probes: specs, and real checks against real servers, each bounded by its timeout."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bgr.errors import UsageError
from bgr.health import probes
from tests.support import alive, read, wait_for


class _Switchable(BaseHTTPRequestHandler):
    mode = "ok"  # "ok" (200), "redirect" (302), "fail" (500), "hang", "trickle", "garbage"

    def do_GET(self) -> None:
        mode = type(self).mode
        if mode == "hang":
            time.sleep(5)
        elif mode == "trickle":  # a byte at a time, each within any per-read timeout
            for byte in b"HTTP/1.1 200 OK\r\n":
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)
        elif mode == "garbage":
            self.wfile.write(b"SSH-2.0-OpenSSH\r\n")
        else:
            self.send_response({"ok": 200, "redirect": 302, "fail": 500}[mode])
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[type[_Switchable], int]]:
    handler = type("Handler", (_Switchable,), {"mode": "ok"})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def check(
    spec: str, timeout: float = 1.0, directory: str = "/", env: dict[str, str] | None = None
) -> probes.Result:
    kind, target = probes.parse(spec)
    return probes.check(
        probes.Probe(kind, target, timeout=timeout), directory=directory, env=env or dict(os.environ)
    )


@pytest.mark.parametrize(
    ("mode", "ok", "detail"),
    [("ok", True, "HTTP 200"), ("redirect", True, "HTTP 302"), ("fail", False, "HTTP 500"),
     ("garbage", False, "not an HTTP answer")],
)  # fmt: skip
def test_http(server: tuple[type[_Switchable], int], mode: str, ok: bool, detail: str) -> None:
    handler, port = server
    handler.mode = mode
    result = check(f"http://127.0.0.1:{port}/health?x=1")
    assert (result.ok, result.detail.startswith(detail)) == (ok, True), result


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_a_server_that_hangs_or_trickles_is_bounded_by_the_timeout(
    server: tuple[type[_Switchable], int], mode: str
) -> None:
    handler, port = server
    handler.mode = mode
    began = time.monotonic()
    result = check(f"http://127.0.0.1:{port}/", timeout=0.5)
    assert not result.ok and result.detail == "no answer within 0.5s"
    assert time.monotonic() - began < 1.5  # a deadline for the whole check, not per read


def test_tcp_and_refused() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert check(f"tcp:127.0.0.1:{port}").ok
    result = check(f"tcp:127.0.0.1:{port}")
    assert (result.ok, result.detail) == (False, "connection refused")
    assert not check(f"http://127.0.0.1:{port}/").ok


def test_cmd_runs_in_the_directory_and_environment(tmp_path: Path) -> None:
    (tmp_path / "ready").write_text("")
    env = {**os.environ, "WANTED": "yes"}
    assert check('cmd:test -f ready && [ "$WANTED" = yes ]', directory=str(tmp_path), env=env).ok
    failed = check("cmd:echo first >&2; echo 'the reason' >&2; exit 3", directory=str(tmp_path))
    assert (failed.ok, failed.detail) == (False, "exit code 3: the reason")


def test_cmd_that_hangs_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    began = time.monotonic()
    result = check(f"cmd:sleep 30 & echo $! > {pids}; sleep 30", timeout=0.5)
    assert not result.ok and result.detail == "no answer within 0.5s"
    assert time.monotonic() - began < 2
    background = int(wait_for(lambda: read(pids).strip(), what="the pid"))
    wait_for(lambda: not alive(background), timeout=5, what="the probe's background child gone")


def test_cmd_that_answers_leaves_nothing_behind_and_is_not_held_by_a_background_child(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    began = time.monotonic()
    result = check(f"cmd:sleep 30 & echo $! > {pids}; exit 0", timeout=5)
    assert result.ok and time.monotonic() - began < 2
    background = int(read(pids).strip())
    wait_for(lambda: not alive(background), timeout=5, what="the probe's background child gone")


@pytest.mark.parametrize(
    "spec",
    ["ftp://x", "tcp:x", "tcp:1.2.3.4:99999", "cmd:", "cmd:  ", "http://", "localhost:80", "http://a b/"],
)
def test_bad_specs_are_one_clear_error(spec: str) -> None:
    with pytest.raises(UsageError, match="--health"):
        probes.parse(spec)


def test_the_stored_form_round_trips() -> None:
    probe = probes.Probe("tcp", "[::1]:6379", every=5, timeout=1, retries=2, start=3)
    assert probes.from_dict(probe.to_dict()) == probe
    assert probes.from_dict({}) is None
    assert probes.parse("tcp:[::1]:6379") == ("tcp", "[::1]:6379")
