"""``--health`` specs and one check of each kind, every check bounded by the probe's timeout.

- ``http://HOST[:PORT]/PATH`` or ``https://…``: a GET; healthy on a 2xx or 3xx status. Only the status
  line is read, over a raw socket with one deadline for connect, send and receive, so a server that
  hangs or trickles bytes cannot hold a check beyond its timeout (http.client's per-operation
  timeouts would allow that). HTTPS certificates are not verified, as Kubernetes' httpGet probes do:
  a probe asks "does it answer", usually of a self-signed localhost endpoint.
- ``tcp:HOST:PORT``: healthy when a connection is accepted.
- ``cmd:COMMAND``: ``/bin/sh -c COMMAND`` in the process's directory and environment; healthy on exit 0.
  It runs in a process group of its own, killed after the check so nothing it started outlives it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping

from bgr.errors import UsageError
from bgr.record import Record

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    import socket
    from typing import Any

HTTP, TCP, CMD = "http", "tcp", "cmd"
DEFAULT_EVERY = 10.0
DEFAULT_TIMEOUT = 2.0
DEFAULT_RETRIES = 3
DEFAULT_START = 0.0
_USER_AGENT = "bgr-health"


class Probe(Record):
    """A stored probe: its kind, its target, and how often and how patiently it checks."""

    kind: str  # HTTP, TCP or CMD
    target: str  # the URL, "HOST:PORT", or the command
    every: float = DEFAULT_EVERY
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES  # failures in a row that make a process unhealthy
    start: float = DEFAULT_START  # after each start, failures do not count for this long

    def spec(self) -> str:
        """The ``--health`` text this probe came from."""
        return self.target if self.kind == HTTP else f"{self.kind}:{self.target}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.spec(),
            "every": self.every,
            "timeout": self.timeout,
            "retries": self.retries,
            "start": self.start,
        }


class Result(Record):
    """One check: passed or not, a few words on what was seen, and how long it took."""

    ok: bool
    detail: str  # "HTTP 200", "connection refused", "exit code 1: <last line of stderr>"
    took: float


def parse(spec: str) -> tuple[str, str]:
    """``--health`` text → (kind, target); UsageError saying what is accepted."""
    text = spec.strip()
    if text.startswith(("http://", "https://")):
        _http_parts(text)  # refuses what it cannot use
        return HTTP, text
    kind, colon, target = text.partition(":")
    if colon and kind == TCP:
        _host_port(target)
        return TCP, target
    if colon and kind == CMD and target.strip():
        return CMD, target
    raise UsageError(
        f"--health takes http://HOST:PORT/PATH, https://…, tcp:HOST:PORT or 'cmd:COMMAND', not {spec!r}"
    )


def from_dict(data: Mapping[str, Any]) -> Probe | None:
    """The stored form back (None for ``{}``: no probe)."""
    check = data.get("check")
    if not isinstance(check, str) or not check:
        return None
    kind, target = parse(check)
    return Probe(
        kind,
        target,
        every=float(data.get("every", DEFAULT_EVERY)),
        timeout=float(data.get("timeout", DEFAULT_TIMEOUT)),
        retries=int(data.get("retries", DEFAULT_RETRIES)),
        start=float(data.get("start", DEFAULT_START)),
    )


def check(probe: Probe, *, directory: str, env: Mapping[str, str]) -> Result:
    """Run the probe once; never takes (much) longer than ``probe.timeout``, never raises."""
    began = time.monotonic()
    deadline = began + probe.timeout
    try:
        if probe.kind == HTTP:
            ok, detail = _http(probe.target, deadline)
        elif probe.kind == TCP:
            ok, detail = _tcp(probe.target, deadline)
        else:
            ok, detail = _cmd(probe.target, directory, env, probe.timeout)
    except TimeoutError:
        ok, detail = False, f"no answer within {probe.timeout:g}s"
    except OSError as exc:
        ok, detail = False, _os_error(exc)
    return Result(ok, detail, time.monotonic() - began)


def _os_error(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--health tcp: takes HOST:PORT (e.g. tcp:127.0.0.1:6379), not {text!r}")
    return host, int(port)


def _http_parts(url: str) -> tuple[bool, str, int, str]:
    """(secure, host, port, path-with-query) of an http(s) URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1 or any(c in url for c in "\r\n "):
        raise UsageError(f"--health takes a URL such as http://127.0.0.1:8000/health, not {url!r}")
    secure = parts.scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return secure, parts.hostname, port or (443 if secure else 80), path


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    import socket

    return socket.create_connection((host, port), timeout=_remaining(deadline))


def _tcp(target: str, deadline: float) -> tuple[bool, str]:
    host, port = _host_port(target)
    with _connect(host, port, deadline):
        return True, f"connected to {host}:{port}"


def _http(url: str, deadline: float) -> tuple[bool, str]:
    secure, host, port, path = _http_parts(url)
    sock = _connect(host, port, deadline)
    try:
        if secure:
            import ssl

            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock.settimeout(_remaining(deadline))
            sock = context.wrap_socket(sock, server_hostname=host)
        name = f"[{host}]" if ":" in host else host
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {name}:{port}\r\nUser-Agent: {_USER_AGENT}\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        )
        sock.settimeout(_remaining(deadline))
        sock.sendall(request.encode("latin-1"))
        head = b""
        while b"\n" not in head and len(head) < 4096:
            sock.settimeout(_remaining(deadline))
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    finally:
        sock.close()
    line = head.split(b"\n", 1)[0].decode("latin-1", "replace").strip()
    fields = line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        return False, f"not an HTTP answer: {line[:60]!r}" if line else "closed without an answer"
    status = int(fields[1])
    return 200 <= status < 400, f"HTTP {status}"


def _cmd(command: str, directory: str, env: Mapping[str, str], timeout: float) -> tuple[bool, str]:
    import signal
    import subprocess
    import tempfile

    # stderr into a file, not a pipe: a probe that leaves something running in the background
    # (which inherits the pipe) would otherwise hold the check until its timeout.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=directory,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            # A group of its own to kill, in our session: the guard's reaper collects orphans from
            # other sessions (bgr.proc.spawn.reap_spawned) and would take this child's exit.
            process_group=0,
        )
        timed_out = not _exited_unreaped(proc.pid, time.monotonic() + timeout)
        # The whole group, also after an answer: a probe must not leave anything behind. The
        # shell is not reaped yet, so its pid (the group's id) cannot have been reused.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if timed_out:
            raise TimeoutError
        if proc.returncode == 0:
            return True, "exit code 0"
        err.seek(0)
        lines = err.read()[-4096:].decode("utf-8", "replace").strip().splitlines()
    from bgr.proc.exits import describe_exit

    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    return False, describe_exit(code) + (f": {lines[-1][:200]}" if lines else "")


def _exited_unreaped(pid: int, deadline: float) -> bool:
    """Wait (until ``deadline``) for child ``pid`` to exit, leaving it a zombie; True if it did."""
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
