"""Every helper the tests share: bounded waits, the real and the in-process CLI, /proc and socket
probes, git repositories, the ``--watch`` and ``bgr-guard`` harnesses, and the per-test isolation.

Fixtures live in ``tests/conftest.py`` and are thin: their logic is here. Every process these
helpers start inherits the test's environment, so it carries the test's BGR_HOME and the conftest
teardown finds it even if a test fails half way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from bgr import cli
from bgr.models import ProcessRecord, StartRequest, StartResult

if TYPE_CHECKING:
    from bgr.watch.watcher import Watcher

T = TypeVar("T")
PY = shlex.quote(sys.executable)
LINUX = sys.platform.startswith("linux")
needs_inotify = pytest.mark.skipif(not LINUX, reason="inotify watch placement is Linux-only")


# --------------------------------------------------------------------------------------------
# waiting


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 15.0,
    what: str | Callable[[], str] = "condition",
    interval: float = 0.01,
) -> T:
    """Poll ``predicate`` until it returns something truthy (bounded); return that value.

    ``what`` names the condition in the failure message; a callable is asked at the deadline
    (to show, say, the output seen so far).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"gave up after {timeout} s waiting for {described}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# isolation: a private state directory per test, and no process left behind


def processes_with_env(key: str, value: str, **also: str) -> list[int]:
    """PIDs (not zombies) whose environment holds ``key=value`` (and each of ``also``), as one
    read of each environment shows it."""
    wanted = {key: value, **also}
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            environ = _live_environ(int(entry))
            if environ is not None and wanted.items() <= _parse_environ(environ).items():
                found.append(int(entry))
    return found


def _parse_environ(raw: bytes) -> dict[str, str]:
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def _live_environ(pid: int) -> bytes | None:
    """The environment of ``pid``, None for a zombie or a process that is gone."""
    deadline = time.monotonic() + _EXEC_WAIT
    while True:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read(1)
        except OSError:
            return None
        if fields[0] in (b"Z", b"X"):
            return None
        # A process in the middle of an exec (a launcher becoming its program) shows neither
        # arguments nor environment until the kernel has placed the new ones, and on a loaded
        # machine it can stay there for a while: look again. A process with arguments but no
        # environment (env -i) or a kernel thread is what it is.
        if environ or cmdline or int(fields[6]) & _PF_KTHREAD or time.monotonic() > deadline:
            return environ
        time.sleep(0.005)


_EXEC_WAIT = 2.0
_PF_KTHREAD = 0x00200000


def reap_zombie_children() -> None:
    """Collect exited children of the test process itself (in-process starts make it a parent)."""
    from bgr.proc import spawn

    spawn.reap_spawned()


def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point BGR_HOME (and HOME) at fresh directories under ``tmp_path``; return BGR_HOME."""
    home = tmp_path / "bgr-home"
    monkeypatch.setenv("BGR_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.delenv("DB_NAME", raising=False)
    monkeypatch.delenv("BGR_GROUP", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    (tmp_path / "user-home").mkdir()
    return home


def registry_cgroups(root: Path) -> list[Path]:
    """The cgroup folders bgr made for the registries under ``root`` (a test's tmp_path)."""
    from bgr.proc import cgroups

    found = []
    for db in root.rglob("*.sqlite"):
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                row = conn.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            continue
        folder = cgroups.registry_dir(str(row[0])) if row else None
        if folder and os.path.isdir(folder):
            found.append(Path(folder))
    return found


def kill_cgroup_leftovers(root: Path) -> list[int]:
    """Kill whatever is still in the cgroups of ``root``'s registries (a daemon that wiped its
    environment carries no BGR_HOME any more), remove the cgroups; return the pids that were there."""
    from bgr.proc import cgroups

    leftovers: list[int] = []
    for folder in registry_cgroups(root):
        names = [p for p in folder.iterdir() if p.is_dir()]
        instances = [p for name in names for p in name.iterdir() if p.is_dir()]
        for instance in instances:
            leftovers += cgroups.procs(str(instance))
            cgroups.kill(str(instance))
        for instance in instances:
            path = str(instance)
            deadline = time.monotonic() + 5
            while cgroups.populated(path) and time.monotonic() < deadline:
                time.sleep(0.01)
            cgroups.remove(path)
        for name in names:
            cgroups.remove(str(name))
        cgroups.remove(str(folder))
    return leftovers


def kill_leftovers(home: Path) -> list[int]:
    """SIGKILL every process that carries ``BGR_HOME=home`` or sits in one of the test's cgroups;
    return those (still) found: any is a process the test left behind."""
    in_cgroups = kill_cgroup_leftovers(home.parent)
    leftovers = processes_with_env("BGR_HOME", str(home))
    for pid in leftovers:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    survivors = leftovers
    while survivors and time.monotonic() < deadline:
        reap_zombie_children()
        time.sleep(0.02)
        survivors = processes_with_env("BGR_HOME", str(home))
    reap_zombie_children()
    return sorted({*survivors, *(pid for pid in in_cgroups if alive(pid))})


# --------------------------------------------------------------------------------------------
# the bgr command: in process and as a real subprocess


def main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in this process; (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def listing(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    """``bgr --json ARGV`` in process, parsed."""
    code, out, err = main(capsys, "--json", *argv)
    assert code == 0, err
    data: list[dict[str, Any]] = json.loads(out)
    return data


def one(capsys: pytest.CaptureFixture[str], name: str) -> dict[str, Any]:
    """``bgr NAME --json`` in process, parsed."""
    code, out, err = main(capsys, name, "--json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def started_pid(stdout: str) -> int:
    """The pid from "started NAME (pid N); ...": the CLI's own report."""
    return int(stdout.rsplit("(pid ", 1)[1].split(")", 1)[0])


def run_bgr(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    umask: int = -1,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``python -m bgr`` with the test's environment (BGR_HOME included).

    ``check`` fails the test (with bgr's stderr) when bgr exits non-zero.
    """
    done = subprocess.run(
        [sys.executable, "-m", "bgr", *args],
        env=dict(os.environ) if env is None else env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        umask=umask,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"bgr {' '.join(args)} failed: {done.stderr}")
    return done


def start_cli(name: str, command: str, *extra: str) -> None:
    """``bgr --name NAME --command COMMAND EXTRA...``, which must succeed."""
    run_bgr("--name", name, "--command", command, *extra, check=True)


def start_many(names: list[str], cwd: Path, command: str = "sleep 60") -> list[tuple[int, str]]:
    """Start ``names`` with concurrent ``python -m bgr --name N --command COMMAND``; (code, stderr) each."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bgr", "--name", name, "--command", command],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    results = []
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        results.append((proc.returncode, err))
    return results


def bgr_in_shell(line: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``sh -c LINE`` where ``BGR`` in LINE stands for ``python -m bgr`` (for redirections,
    closed descriptors and directory tricks that subprocess cannot set up)."""
    script = line.replace("BGR", f"{shlex.quote(sys.executable)} -m bgr")
    return subprocess.run(
        ["sh", "-c", script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def in_deleted_directory(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bgr ARGV`` from a working directory that was deleted under it."""
    return bgr_in_shell(
        f"mkdir gone && cd gone && rmdir ../gone && exec BGR {shlex.join(argv)}", tmp_path, **env
    )


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


# --------------------------------------------------------------------------------------------
# the Python API


GRACE = 0.5


def api_start(name: str, command: str, directory: Path, **kwargs: object) -> StartResult:
    """``bgr.start`` of a fresh definition, with a short grace period."""
    import bgr

    request = StartRequest(name=name, command=command, directory=str(directory))
    return bgr.start(request, grace=GRACE, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# processes, files and sockets


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
    """The environment of ``pid`` (waiting out an exec in progress); OSError when it is gone."""
    raw = _live_environ(pid)
    if raw is None:
        raise ProcessLookupError(f"process {pid} is gone")
    return _parse_environ(raw)


def managed(name: str) -> list[int]:
    """Live processes started by this test's bgr as ``name`` (other tests may use the same name)."""
    # One read of each environment for both keys: a second read could catch a launcher in the
    # middle of becoming its program, as a test looking right after a start often does.
    return processes_with_env("BGR_NAME", name, BGR_HOME=os.environ["BGR_HOME"])


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


# --------------------------------------------------------------------------------------------
# log files


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


# A fixed local time for backup names: 2026-11-26 10:15:03.
NOON = time.mktime((2026, 11, 26, 10, 15, 3, 0, 0, -1))
STAMP = "2026-11-26T10-15-03"


def fixed_clock() -> float:
    return NOON


# --------------------------------------------------------------------------------------------
# git repositories: a bare "remote", the clone bgr pulls and a second clone that pushes


def git(cwd: Path, *args: str) -> str:
    """Run plain git (hooks and all) as a user would; return stripped stdout."""
    done = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"git {args} failed: {done.stderr}"
    return done.stdout.strip()


def commit(clone: Path, name: str, content: str, message: str = "change") -> str:
    (clone / name).write_text(content)
    git(clone, "add", name)
    git(clone, "commit", "--quiet", "-m", message)
    return git(clone, "rev-parse", "HEAD")


def head(clone: Path) -> str:
    return git(clone, "rev-parse", "HEAD")


# The file both clones track; "version 1\n" in the first commit.
TRACKED = "app.txt"


@dataclass(frozen=True, slots=True)
class Repos:
    bare: Path
    app: Path  # the process directory bgr pulls
    other: Path  # a second developer who pushes

    def push(self, content: str, message: str = "upstream") -> str:
        """Commit ``content`` to the tracked file in the other clone and push it; return HEAD."""
        commit(self.other, TRACKED, content, message)
        git(self.other, "push", "--quiet", "origin", "main")
        return head(self.other)

    def push_from_other(self, count: int = 1) -> str:
        """Push ``count`` commits ("version 2", "version 3", ...) from the other clone; return HEAD."""
        for i in range(count):
            commit(self.other, TRACKED, f"version {i + 2}\n", f"upstream {i}")
        git(self.other, "push", "--quiet", "origin", "main")
        return head(self.other)


def make_repos(root: Path) -> Repos:
    """A bare remote with one commit (``TRACKED``: "version 1"), and two up-to-date clones."""
    bare = root / "remote.git"
    git(root, "init", "--quiet", "--bare", str(bare))
    seed = root / "seed"
    git(root, "clone", "--quiet", str(bare), str(seed))
    commit(seed, TRACKED, "version 1\n", "initial")
    git(seed, "push", "--quiet", "origin", "main")
    app, other = root / "app", root / "other"
    git(root, "clone", "--quiet", str(bare), str(app))
    git(root, "clone", "--quiet", str(bare), str(other))
    return Repos(bare=bare, app=app, other=other)


def set_git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits work on a bare machine, and no system/global git config or ssh setting leaks in."""
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "bgr test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "bgr@example.invalid")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for name in ("GIT_SSH_COMMAND", "GIT_SSH", "GIT_SSH_VARIANT", "GIT_ASKPASS", "GIT_DIR"):
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------------------------
# bgr --watch: a child that counts its starts, and the real CLI in a session of its own


def inotify_watches(pid: int | str = "self") -> int:
    """Watches held by a process's inotify instances, as the kernel lists them."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            count += Path(f"/proc/{pid}/fdinfo/{fd}").read_text().count("inotify wd:")
        except OSError:
            continue
    return count


def make_tree(tmp_path: Path) -> Path:
    """A tree to watch: src/pkg, a big ignored node_modules, .git, a .gitignore'd and a plain dir."""
    root = tmp_path / "tree"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    for i in range(60):  # a big ignored tree must cost no watches
        (root / "node_modules" / f"p{i}" / "lib").mkdir(parents=True)
    (root / ".git" / "objects" / "ab").mkdir(parents=True)
    (root / "generated" / "deep").mkdir(parents=True)
    (root / "skipme" / "deep").mkdir(parents=True)
    (root / ".gitignore").write_text("generated/\n*.tmp\n")
    return root


def collect(watcher: Watcher, until: Callable[[list[str]], bool], timeout: float = 10) -> list[str]:
    """Changed paths a watcher reports until ``until(seen)`` holds or ``timeout`` passes."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not until(seen) and time.monotonic() < deadline:
        seen += watcher.changes(0.1)
    return seen


CHILD = textwrap.dedent(
    """\
    import os, sys, time
    starts = sys.argv[1]
    mode = sys.argv[2]
    with open(starts, "a") as fh:
        fh.write(f"{time.time()}\\n")
    count = len(open(starts).read().splitlines())
    print(f"hello {count}", flush=True)
    if mode == "crash":
        time.sleep(0.3)
        print(f"boom {count}", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "chatty":
        while True:
            print("chatter", flush=True)
            print("noise", file=sys.stderr, flush=True)
            time.sleep(0.02)
    time.sleep(120)
    """
)


def child_command(tmp_path: Path, mode: str = "run") -> str:
    """The command of a child that stamps ``tmp_path/starts.txt`` at each start (see CHILD)."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    starts = tmp_path / "starts.txt"
    return shlex.join([sys.executable, str(script), str(starts), mode])


def starts(tmp_path: Path, at_least: int = 0, timeout: float = 20) -> int:
    """How many times the child started (after waiting for ``at_least`` starts, bounded)."""
    path = tmp_path / "starts.txt"

    def count() -> int:
        return len(path.read_text().splitlines()) if path.exists() else 0

    with contextlib.suppress(AssertionError):
        wait_for(lambda: count() >= at_least, timeout, what=f"{at_least} starts")
    return count()


def listed(name: str) -> dict[str, object]:
    """``name``'s entry in ``bgr --json``."""
    rows = json.loads(run_bgr("--json").stdout)
    return next(row for row in rows if row["name"] == name)


class Watch:
    """``python -m bgr ... --watch`` in its own session; its output collected line by line."""

    def __init__(self, args: list[str], cwd: Path, prefix: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "bgr", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
        )
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 20) -> list[str]:
        """Wait until ``count`` lines match ``pattern``; return the matching lines."""

        def found() -> list[str] | None:
            lines = self.matching(pattern)
            if len(lines) >= count:
                return lines
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"no {count}x {pattern!r} in output:\n" + self.text())
            return None

        return wait_for(found, timeout, what=lambda: f"{count}x {pattern!r} in output:\n" + self.text())

    def matching(self, pattern: str) -> list[str]:
        with self._lock:
            return [line for line in self.lines if re.search(pattern, line)]

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def interrupt(self, timeout: float = 20) -> int:
        """Ctrl-C: SIGINT to the watcher's whole process group, as a terminal does."""
        os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stdout:
            self.proc.stdout.close()


# --------------------------------------------------------------------------------------------
# bgr-guard: the real command, and what it does to the registry


FAST = ["--backoff-base", "0.05", "--backoff-max", "0.2", "--stable-after", "0.3"]


def row(name: str) -> ProcessRecord | None:
    from bgr.store import open_registry

    with open_registry() as reg:
        return reg.get(name)


def must(name: str) -> ProcessRecord:
    found = row(name)
    assert found is not None, f"{name} is not registered"
    return found


def record_alive(record: ProcessRecord) -> bool:
    """Whether the instance a row describes lives (its leader, group or marked descendants)."""
    from bgr.proc import identity

    return identity.instance_alive(record.identity)


def status(name: str) -> str:
    data: dict[str, Any] = json.loads(run_bgr(name, "--json", check=True).stdout)
    return str(data["status"])


def events(name: str, kind: str) -> list[str]:
    return [str(e.get("detail", "")) for e in must(name).events if e.get("event") == kind]


def kill_instance(name: str) -> int:
    """SIGKILL the whole instance (its /bin/sh and the program); return the old pid."""
    record = must(name)
    assert record.pgid and record_alive(record)
    os.killpg(record.pgid, signal.SIGKILL)
    assert record.pid is not None
    return record.pid


def restarted_since(name: str, pid: int) -> bool:
    record = must(name)
    return record.pid != pid and record_alive(record)


def stamps(path: Path) -> list[float]:
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def zombie_children(pid: int) -> list[int]:
    import psutil

    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                found.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def no_lasting_zombies(pid: int) -> None:
    """Every zombie child of ``pid`` seen now is reaped soon (one may exist for an instant)."""
    seen = set(zombie_children(pid))
    wait_for(lambda: not seen & set(zombie_children(pid)), 5.0, f"zombies {seen} to be reaped")


def git_children(pid: int) -> list[int]:
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        # A git a pull just ran can exit between the listing and this look: then it is no child.
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.name() == "git":
                found.append(child.pid)
    return found


class Guard:
    """A running ``python -m guard ...``; its stderr goes to a file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "guard", *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, **(env or {})},
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text()

    def wait_log(self, needle: str, timeout: float = 15.0) -> None:
        wait_for(lambda: needle in self.text(), timeout, f"{needle!r} in the guard's log")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(10)


@contextlib.contextmanager
def steady(name: str, seconds: float) -> Iterator[None]:
    """Assert that ``name``'s instance does not change during the block plus ``seconds`` (its pid
    may: a launcher that exits hands the record to the program it left running)."""
    before = must(name)
    yield
    time.sleep(seconds)
    after = must(name)
    assert (after.instance, after.restarts) == (before.instance, before.restarts)


# --------------------------------------------------------------------------------------------
# a daemon, as servers that daemonize are


# What `redis-server --daemonize yes` and nginx do, in a few lines: the launcher forks and exits 0,
# the child calls setsid and forks again, and the grandchild overwrites its environment area (as
# setproctitle does, to make room for a process title: /proc/PID/environ then reads as NUL bytes),
# writes its pid to argv[1], optionally listens on argv[2], and serves until killed.
DAEMON = textwrap.dedent(
    """
    import ctypes, os, socket, sys, time
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    env_start, env_end = int(fields[47]), int(fields[48])  # fields 50 and 51: the environment area
    ctypes.memset(env_start, 0, env_end - env_start)
    if len(sys.argv) > 2:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", int(sys.argv[2])))
        server.listen()
    with open(sys.argv[1] + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    while True:
        time.sleep(1)
    """
)


def daemon_command(tmp_path: Path, *, port: int | None = None) -> tuple[str, Path]:
    """The command that starts :data:`DAEMON`, and the file where the daemon writes its pid."""
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    pidfile = tmp_path / "daemon.pid"
    pidfile.unlink(missing_ok=True)
    extra = [] if port is None else [str(port)]
    return shlex.join([sys.executable, str(script), str(pidfile), *extra]), pidfile


def daemon_pid(pidfile: Path) -> int:
    """The pid a process wrote to ``pidfile``, once it is there."""

    def written() -> int | None:
        text = read(pidfile).strip()
        return int(text) if text.isdigit() else None

    return wait_for(written, what=f"a pid in {pidfile.name}")


def wiped(pid: int) -> bool:
    """True once the environment area of ``pid`` holds no KEY=value entry (bgr's marker is gone)."""
    try:
        return b"=" not in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# a server with a health endpoint the test can switch


# GET /health answers by the word in the file argv[2]: "ok" 200, "fail" 500, "hang" no answer;
# listens on argv[1] after argv[3] seconds (0 by default), and prints each request to stderr.
HEALTH_SERVER = textwrap.dedent(
    """
    import http.server, pathlib, sys, time
    port, mode = int(sys.argv[1]), pathlib.Path(sys.argv[2])
    time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            word = mode.read_text().strip() if mode.exists() else "ok"
            if word == "hang":
                time.sleep(60)
            self.send_response(200 if word == "ok" else 500)
            self.send_header("Content-Length", "0")
            self.end_headers()

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


def health_server(tmp_path: Path, *, delay: float = 0) -> tuple[str, int, Path]:
    """(command, port, mode file) of :data:`HEALTH_SERVER`; write "ok", "fail" or "hang" to the file."""
    script = tmp_path / "health_server.py"
    script.write_text(HEALTH_SERVER)
    port = free_port()
    mode = tmp_path / "mode"
    mode.write_text("ok")
    return shlex.join([sys.executable, str(script), str(port), str(mode), str(delay)]), port, mode


def on_a_terminal(args: Sequence[str], env: dict[str, str] | None = None) -> str:
    """Run the real CLI with stdout on a pseudo-terminal; what the terminal received (it must
    succeed), with the terminal's CRLF line ends made LF."""
    import pty

    leader, follower = pty.openpty()
    chunks = []
    try:
        with process(
            [sys.executable, "-m", "bgr", *args],
            stdout=follower,
            stderr=subprocess.PIPE,
            env=dict(os.environ) if env is None else env,
        ) as child:
            os.close(follower)
            follower = -1
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: the other side closed
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            assert child.wait(timeout=20) == 0
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    return b"".join(chunks).decode().replace("\r\n", "\n")


# --------------------------------------------------------------------------------------------
# stacks: a bgr.toml that uses every feature an export carries over

EXAMPLE_STACK = """
name = "shop"

[db]
command = "python3 -m http.server 6390 --bind 127.0.0.1"
health = "tcp:127.0.0.1:6390"
health_every = "5s"
health_timeout = 1.5

[migrate]
command = "python3 -c 'print(1)' && echo 'costs $5, 100%'"
depends_on = { db = "healthy" }

[api]
command = "python3 -m http.server 8000 --bind 127.0.0.1"
env = { LOG_LEVEL = "debug", GREETING = "hello world" }
ports = [8000]
health = "http://127.0.0.1:8000/health"
health_retries = 2
health_start = "2s"
max_memory = "200M"
depends_on = { db = "healthy", migrate = "completed" }

[worker]
command = "sleep 3600"
health = "cmd:test -d /"
max_memory = 52428801
restart_every = "1.5s"
depends_on = { api = "started" }

[nightly]
command = "echo report"
cron = "0 3 * * *"
"""


def example_stack(tmp_path: Path, text: str = EXAMPLE_STACK) -> Any:
    """``text`` as ``tmp_path/bgr.toml``, read by bgr.core.exports (environments complete)."""
    from bgr.core import exports

    path = tmp_path / "bgr.toml"
    path.write_text(text)
    return exports.from_file(str(path))


# --------------------------------------------------------------------------------------------
# a wall clock that a test can step, for one process (tests/guard/clock_shift.c)


CLOCK_SHIFT_SOURCE = Path(__file__).resolve().parent / "guard" / "clock_shift.c"


def build_clock_shift(directory: Path) -> Path:
    """Compile the wall-clock shifting LD_PRELOAD library into ``directory``; skip the test (with
    the reason) where there is no C compiler or the library does not take effect."""
    compiler = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc or clang) to build the wall-clock shifting library")
    if not LINUX:
        pytest.skip("the wall-clock shifting library is built for Linux (LD_PRELOAD, glibc)")
    library = directory / "clock_shift.so"
    done = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(CLOCK_SHIFT_SOURCE), "-ldl"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"{compiler} could not build the wall-clock shifting library: {done.stderr.strip()}")
    # It must shift this interpreter's clock and leave its children's alone.
    shift = directory / "probe-shift"
    shift.write_text("-86400")
    probe = (
        "import subprocess, sys, time; print(time.time()); "
        "print(subprocess.run([sys.executable, '-c', 'import time; print(time.time())'], "
        "capture_output=True, text=True).stdout)"
    )
    env = {**os.environ, "LD_PRELOAD": str(library), "BGR_CLOCK_SHIFT_FILE": str(shift)}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    shifted, child = float(out[0]), float(out[1])
    if not (abs(shifted + 86400 - time.time()) < 60 and abs(child - time.time()) < 60):
        pytest.skip("the wall-clock shifting library does not take effect here (static libc?)")
    return library


class ClockShift:
    """The wall clock of the processes started with :meth:`env`, stepped by :meth:`set`."""

    def __init__(self, library: Path, file: Path) -> None:
        self.library = library
        self.file = file
        self.set(0)

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(self.library), "BGR_CLOCK_SHIFT_FILE": str(self.file)}

    def set(self, seconds: float) -> None:
        """From now on (within 10 ms) the shifted clock reads real time + ``seconds``."""
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(repr(float(seconds)))
        os.replace(tmp, self.file)
