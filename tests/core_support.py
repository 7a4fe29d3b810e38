"""Helpers shared by the core test files: bounded waits, the real CLI, small /proc and socket probes.

Every process these helpers start inherits the test's environment, so it carries the test's BGR_HOME
and the conftest teardown finds it even if a test fails half way.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
PY = shlex.quote(sys.executable)


def wait_for(predicate: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy (bounded); return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.02)


def run_bgr(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 40.0,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``python -m bgr`` with the test's environment (BGR_HOME included)."""
    return subprocess.run(
        [sys.executable, "-m", "bgr", *args],
        env=dict(os.environ) if env is None else env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def proc_state(pid: int) -> str | None:
    """The state letter from /proc/<pid>/stat, or None when there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data.rsplit(b")", 1)[1].split()[0].decode()


def alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X")


def session_of(pid: int) -> int:
    """The session id (field 6 of /proc/<pid>/stat)."""
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return int(data.rsplit(b")", 1)[1].split()[3])


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def managed(name: str) -> list[int]:
    """Live processes started by this test's bgr as ``name`` (other tests may use the same name)."""
    from tests.conftest import processes_with_env

    home = os.environ["BGR_HOME"]
    found = []
    for pid in processes_with_env("BGR_NAME", name):
        with contextlib.suppress(OSError):
            if environ_of(pid).get("BGR_HOME") == home:
                found.append(pid)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    """True once something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def read(path: Path | str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def assert_one_error_line(stderr: str) -> None:
    """A failure is reported as exactly one line starting with "bgr: ", never a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {stderr!r}"
    assert lines[0].startswith("bgr: "), lines[0]


def registry_snapshot(db: Path | str) -> tuple[int, list[tuple[Any, ...]]]:
    """(user_version, every row) of a registry, read without going through bgr."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        rows = conn.execute("SELECT * FROM processes ORDER BY name").fetchall()
    finally:
        conn.close()
    return int(version), rows


@contextlib.contextmanager
def process(args: Sequence[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    """A plain child process (not started through bgr) that is killed and reaped afterwards."""
    kwargs.setdefault("text", True)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.Popen(list(args), **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def readline(proc: subprocess.Popen[str], timeout: float = 15.0) -> str:
    """One line from a child's stdout pipe, bounded by ``timeout``.

    Reads the file descriptor a byte at a time: a buffered ``readline`` could swallow the next
    lines into its buffer, where a later ``select`` would never see them.
    """
    import selectors

    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            if not sel.select(max(0.0, deadline - time.monotonic())):
                raise AssertionError(f"no full line from pid {proc.pid} within {timeout} s: {line!r}")
            byte = os.read(fd, 1)
            if not byte:
                break
            line += byte
    return line.decode(errors="replace")


LISTENER = """
import socket, sys, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("listening", flush=True)
held = []
while True:
    conn, _ = server.accept()
    held.append(conn)
"""

CLIENT = """
import socket, sys, time
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
time.sleep(120)
"""

# A child that says it is ready, then sleeps.
SLEEP = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(120)"]


def append(path: Path, data: bytes) -> None:
    """Append like a managed child does: O_APPEND, created 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def numbered(start: int, stop: int) -> bytes:
    """Lines ``000000000\n`` ... for ``range(start, stop)``: losses and repeats are easy to find."""
    return b"".join(b"%09d\n" % i for i in range(start, stop))
