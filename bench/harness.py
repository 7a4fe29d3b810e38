"""Measurement plumbing for bench/run.py: statistics, timed commands, isolation, cleanup, machine facts.

Every process the benchmark starts, directly or through a process manager, inherits
``BGR_BENCH_RUN=<uuid>`` in its environment. Cleanup finds leftovers by that marker and signals them
by PID, so it can never touch a process this run did not start (no pkill by name).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "BGR_BENCH_RUN"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A figure could not be measured (a command failed, a wait timed out)."""


class Skip(Exception):
    """A figure does not apply to a manager, or its tool is missing; the message says why."""


@dataclass(frozen=True, slots=True)
class Stats:
    """Samples of one figure, in base units (seconds, bytes, ...)."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        ordered = sorted(self.samples)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    @property
    def minimum(self) -> float:
        return min(self.samples)

    @property
    def maximum(self) -> float:
        return max(self.samples)

    @property
    def p95(self) -> float:
        """Nearest-rank 95th percentile."""
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


# unit name → (scale from the base unit, decimals)
UNITS: dict[str, tuple[float, int]] = {
    "ms": (1e3, 1),
    "s": (1.0, 2),
    "MiB": (1 / 2**20, 1),
    "%": (1.0, 2),
    "MB/s": (1.0, 0),
    "x": (1.0, 2),
    "lines": (1.0, 0),
    "": (1.0, 0),
}


@dataclass(frozen=True, slots=True)
class Cell:
    """One manager's value for one row: measured stats, or a text (skipped, yes/no, ...)."""

    stats: Stats | None = None
    unit: str = ""
    text: str = ""
    skipped: bool = False
    pick: str = "median"  # which statistic is the headline: "median" or "p95"

    @property
    def value(self) -> float | None:
        """The headline number in display units (None for a text cell)."""
        if self.stats is None:
            return None
        raw = self.stats.p95 if self.pick == "p95" else self.stats.median
        return raw * UNITS[self.unit][0]

    def render(self) -> str:
        if self.stats is None:
            return self.text
        scale, decimals = UNITS[self.unit]
        unit = f" {self.unit}" if self.unit not in ("", "x", "%") else self.unit

        def fmt(raw: float) -> str:
            return f"{raw * scale:,.{decimals}f}"

        head = fmt(self.stats.p95 if self.pick == "p95" else self.stats.median)
        if len(self.stats.samples) == 1:
            return f"{head}{unit}"
        if self.pick == "p95":
            return f"{head}{unit} (n={len(self.stats.samples)})"
        low, high = fmt(self.stats.minimum), fmt(self.stats.maximum)
        return f"{head}{unit} ({low}-{high})"


def measured(samples: Sequence[float], unit: str, pick: str = "median") -> Cell:
    if not samples:
        raise BenchError("no samples")
    return Cell(stats=Stats(tuple(samples)), unit=unit, pick=pick)


def text_cell(text: str) -> Cell:
    return Cell(text=text)


def skipped(reason: str) -> Cell:
    return Cell(text=f"skipped: {reason}", skipped=True)


@dataclass(frozen=True, slots=True)
class Reps:
    """How many repetitions each kind of figure gets (``--quick`` lowers all of them)."""

    warmup: int
    fast: int  # list, start one, restart (cheap commands)
    pairs: int  # start-20 / stop-20 rounds
    crash: int  # processes killed once each under the supervisor
    stable_wait: float  # seconds the 20 processes run before the crash round (bgr-guard: 10 s)
    guard_args: tuple[str, ...]  # extra bgr-guard options (quick: a shorter stable window)
    log_bytes: int
    log_reps: int
    rotation_lines: int
    imports: int


FULL = Reps(
    warmup=2,
    fast=11,
    pairs=3,
    crash=20,
    stable_wait=11.0,
    guard_args=(),
    log_bytes=200_000_000,
    log_reps=5,
    rotation_lines=5_000_000,
    imports=7,
)
QUICK = Reps(
    warmup=1,
    fast=3,
    pairs=1,
    crash=5,
    stable_wait=3.0,
    guard_args=("--stable-after=2s",),
    log_bytes=50_000_000,
    log_reps=1,
    rotation_lines=1_000_000,
    imports=3,
)


@dataclass(slots=True)
class Sandbox:
    """A temporary directory and an environment for everything one benchmark run starts."""

    root: Path
    run_id: str
    env: dict[str, str]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def create(cls) -> Sandbox:
        root = Path(tempfile.mkdtemp(prefix="bgr-bench-"))
        run_id = uuid.uuid4().hex
        env = dict(os.environ)
        env.update({MARKER: run_id, "NO_COLOR": "1"})
        # State of the real user must stay untouched: no BGR_HOME/PM2_HOME from outside leaks in.
        for key in ("BGR_HOME", "PM2_HOME", "DB_NAME", "BGR_GROUP"):
            env.pop(key, None)
        notes = []
        if env.pop("PYTHONDONTWRITEBYTECODE", None):
            notes.append(
                "PYTHONDONTWRITEBYTECODE is set here; the benchmark unsets it for what it runs, or "
                "every Python CLI call would compile its package from source (bgr: about +25 ms)"
            )
        # Bytecode comes from the packages' own __pycache__, as for a user (pip compiles at install).
        # A cache prefix in the sandbox would start empty: each daemon would compile its modules from
        # source in its own process, which left bgr-guard and supervisord ~4 MiB larger than in use.
        return cls(root=root, run_id=run_id, env=env, notes=notes)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def ours(self) -> list[int]:
        """Live PIDs (not zombies) carrying this run's marker, other than ourselves."""
        needle = f"{MARKER}={self.run_id}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if needle in fh.read().split(b"\0") and not zombie(int(entry)):
                        found.append(int(entry))
            except OSError:
                continue
        return found

    def sweep(self, grace: float = 2.0) -> list[int]:
        """TERM, then KILL, every process still carrying our marker; return the PIDs found."""
        found = self.ours()
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(alive(p) for p in found):
            time.sleep(0.02)
        for pid in found:
            if alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        return found

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return True
    return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] in (b"Z", b"X")


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not zombie(pid)


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM a daemon we started and wait for it; SIGKILL after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, poll: float = 0.001) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    ok: tuple[int, ...] = (0,),
    timeout: float = 120,
    capture: bool = False,
) -> tuple[float, str]:
    """Run a command to completion; (wall seconds, stdout if ``capture``). Raises on a bad exit."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"`{' '.join(argv)}` took longer than {timeout:g} s") from exc
    elapsed = time.perf_counter() - started
    if proc.returncode not in ok:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"`{' '.join(argv)}` exited {proc.returncode}: {' | '.join(tail)}")
    return elapsed, proc.stdout.decode(errors="replace") if capture else ""


def timed(argv: Sequence[str], env: Mapping[str, str], ok: tuple[int, ...] = (0,)) -> float:
    return run(argv, env, ok=ok)[0]


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of one process so far."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        data = fh.read()
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of one process."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def threads(pid: int) -> int:
    """Number of threads of one process."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def read_pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _first(path: str, prefix: str) -> str:
    """The value of the first ``prefix`` line of a ``key: value`` or ``KEY=value`` file."""
    with contextlib.suppress(OSError), open(path) as fh:
        for line in fh:
            if line.startswith(prefix):
                return line[len(prefix) :].lstrip(" \t:=").strip().strip('"')
    return "?"


def _version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def machine(python: Path, root: Path) -> list[tuple[str, str]]:
    """Facts printed above the table, so a figure is never read without its machine."""
    memory = _first("/proc/meminfo", "MemTotal")
    with contextlib.suppress(ValueError):
        memory = f"{int(memory.split()[0]) / 2**20:.1f} GiB"
    fs = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        fs = subprocess.run(
            ["findmnt", "-n", "-o", "FSTYPE", "--target", str(root)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    commit = "?"
    repo = Path(__file__).resolve().parent.parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        commit = f"{head}{' (modified)' if dirty else ''}" if head else "?"
    return [
        ("CPU", f"{_first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores"),
        ("memory", memory),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("OS", _first("/etc/os-release", "PRETTY_NAME=")),
        ("Python", f"{_version([str(python), '--version'])} ({python})"),
        ("bgr commit", commit),
        ("temp dir", f"{root.parent} ({fs})"),
        ("date", time.strftime("%Y-%m-%d %H:%M %Z")),
        ("load average", load()),
        ("cgroup2 mount", cgroup_mount()),
    ]


def cgroup_mount() -> str:
    """Where cgroup2 is, its options, and what joining a cgroup costs here (a start does it once):
    without ``favordynmods`` each join usually waits for an RCU grace period (5-20 ms), which shows
    in every start and restart figure."""
    from bgr.proc.cgroups import parse_mounts

    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            mount = parse_mounts(fh)
    except OSError:
        mount = None
    if mount is None:
        return "none"
    where, options = mount
    cost = cgroup_join_ms(where)
    joined = "not measured" if cost is None else f"{cost:.2f} ms"
    return f"{where} ({','.join(options)}); joining a cgroup: {joined}"


def cgroup_join_ms(root: str, rounds: int = 11) -> float | None:
    """Median time to move a sleeping process into another cgroup, spaced out as restarts are."""
    base = os.path.join(root, f"bgr-bench-join-{os.getpid()}")
    places = [os.path.join(base, "a"), os.path.join(base, "b")]
    try:
        for place in places:
            os.makedirs(place)
    except OSError:
        return None  # not allowed to make cgroups here
    child = subprocess.Popen(["sleep", "60"])
    took: list[float] = []
    try:
        for i in range(rounds):
            time.sleep(0.05)
            began = time.perf_counter()
            with open(os.path.join(places[i % 2], "cgroup.procs"), "w", encoding="ascii") as fh:
                fh.write(str(child.pid))
            took.append((time.perf_counter() - began) * 1000)
    except OSError:
        return None
    finally:
        child.kill()
        child.wait()
        for path in [*places, base]:
            for _ in range(100):  # a killed process leaves its cgroup a moment after it is reaped
                try:
                    os.rmdir(path)
                    break
                except OSError:
                    time.sleep(0.01)
    return sorted(took)[len(took) // 2]


def load() -> str:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def interpreter() -> Path:
    """The project venv's interpreter: this one, unresolved (a resolved path would leave the venv)."""
    return Path(sys.executable)
