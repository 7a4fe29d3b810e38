"""The figures: what each one measures, how, and the goal bgr is held to.

A figure function takes one manager and fills the cells of its rows in ``Results``. It starts from an
empty manager and leaves it empty (``reset``), so ``--only`` can pick any subset.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    BenchError,
    Cell,
    Reps,
    Sandbox,
    Skip,
    cpu_seconds,
    measured,
    rss_bytes,
    skipped,
    text_cell,
    threads,
    wait_for,
)
from managers import Bgr, Cmd, Manager

HEAVY = ("git", "apscheduler", "watchdog")


@dataclass(slots=True)
class Results:
    """(row, manager key) → cell, plus the notes and extra tables printed under the main table."""

    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    imports_top: list[tuple[str, float, float]] = field(default_factory=list)  # module, self, cumul.

    def put(self, row: str, manager: str, cell: Cell) -> None:
        self.cells[(row, manager)] = cell

    def get(self, row: str, manager: str) -> Cell | None:
        return self.cells.get((row, manager))

    def value(self, row: str, manager: str = "bgr") -> float | None:
        cell = self.get(row, manager)
        return None if cell is None else cell.value


@dataclass(frozen=True, slots=True)
class Goal:
    """A goal for bgr's cell in a row: its text and a test on the results."""

    text: str
    test: Callable[[Results], bool | None]


def _at_most(row: str, limit: float) -> Callable[[Results], bool | None]:
    def test(results: Results) -> bool | None:
        value = results.value(row)
        return None if value is None else value <= limit

    return test


def _at_most_times(row: str, base: str, factor: float) -> Callable[[Results], bool | None]:
    def test(results: Results) -> bool | None:
        value, reference = results.value(row), results.value(base)
        return None if value is None or reference is None else value <= factor * reference

    return test


def _within(row: str, base: str, extra: float) -> Callable[[Results], bool | None]:
    def test(results: Results) -> bool | None:
        ours, theirs = results.value(row), results.value(base)
        return None if ours is None or theirs is None else ours <= theirs + extra

    return test


def _at_least(row: str, limit: float) -> Callable[[Results], bool | None]:
    def test(results: Results) -> bool | None:
        value = results.value(row)
        return None if value is None else value >= limit

    return test


def _text_is(row: str, wanted: str) -> Callable[[Results], bool | None]:
    def test(results: Results) -> bool | None:
        cell = results.get(row, "bgr")
        return None if cell is None or cell.stats is not None or cell.skipped else cell.text == wanted

    return test


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    label: str
    goal: Goal | None = None


ROWS: dict[str, list[Row]] = {
    "floor": [Row("floor", "interpreter start, no work (`python -c pass` / `node -e 0`)")],
    "list": [
        Row("list0", "list, 0 processes"),
        Row("list20", "list, 20 processes", Goal("≤ 35 ms", _at_most("list20", 35))),
        Row(
            "list1000", "list, 1000 processes", Goal("≤ 3x list 20", _at_most_times("list1000", "list20", 3))
        ),
        Row("json0", "list as JSON, 0 processes"),
        Row("json20", "list as JSON, 20 processes", Goal("≤ 35 ms", _at_most("json20", 35))),
        Row(
            "json1000",
            "list as JSON, 1000 processes",
            Goal("≤ 3x JSON 20", _at_most_times("json1000", "json20", 3)),
        ),
    ],
    "start": [Row("start1", "start one process", Goal("≤ 50 ms", _at_most("start1", 50)))],
    "restart": [Row("restart", "restart one running process")],
    "startup": [
        Row("startsrv", "start a server, default wait: until it accepts connections"),
        Row("startwork", "start a worker that never listens, default wait"),
        Row("startw0", "start, --wait 0"),
        Row("restartw0", "restart, --wait 0, no guard"),
        Row(
            "restartg",
            "restart, --wait 0, bgr-guard --all running",
            Goal("≤ no guard + 10 ms", _within("restartg", "restartw0", 10)),
        ),
    ],
    "batch": [
        Row("start20", "start 20 (sequential calls, total)"),
        Row("stop20", "stop 20, one call", Goal("≤ 0.3 s", _at_most("stop20", 0.3))),
        Row("stop20each", "stop 20, one call each (total)"),
    ],
    "guard": [
        Row("crash", "crash → running again, median", Goal("≤ 15 ms", _at_most("crash", 15))),
        Row("crash95", "crash → running again, p95"),
        Row("rss", "supervisor's memory (RSS), 20 processes", Goal("≤ 18 MiB", _at_most("rss", 18))),
        Row("idlecpu", "supervisor's idle CPU, 20 processes"),
    ],
    "logs": [
        Row("logmb", "log throughput of a managed writer"),
        Row("logdirect", "same writer straight to a file"),
        Row("logratio", "managed ÷ direct", Goal("≥ 0.95", _at_least("logratio", 0.95))),
    ],
    "rotation": [
        Row("rotlost", "lines lost, live rotation under load", Goal("0", _at_most("rotlost", 0))),
        Row("rotdup", "lines duplicated, live rotation under load", Goal("0", _at_most("rotdup", 0))),
        Row("rottrunc", "lines lost, copy-then-truncate fallback (for contrast)"),
    ],
    "imports": [
        Row("imptotal", "imports on the list path (`-X importtime`, all modules)"),
        Row("impcli", "… of which `bgr.cli` and what it pulls in"),
        Row(
            "impheavy",
            "git / apscheduler / watchdog imported by a list",
            Goal("none", _text_is("impheavy", "none")),
        ),
    ],
}


@dataclass(slots=True)
class Context:
    reps: Reps
    sandbox: Sandbox
    results: Results


def samples(m: Manager, cmd: Cmd, reps: Reps, count: int | None = None) -> list[float]:
    """Warm up, then time ``cmd`` ``count`` times (default: ``reps.fast``)."""
    for _ in range(reps.warmup):
        m.call(cmd)
    return [m.call(cmd) for _ in range(reps.fast if count is None else count)]


def start_all(m: Manager, names: Sequence[str]) -> float:
    """Start ``names`` one CLI call after another; the total time."""
    return sum(m.call(m.start_cmd(n)) for n in names)


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(count)]


# --- figures ----------------------------------------------------------------------------------


def fig_floor(m: Manager, ctx: Context) -> None:
    ctx.results.put("floor", m.key, measured(samples(m, m.floor_cmd(), ctx.reps), "ms"))


def fig_list(m: Manager, ctx: Context) -> None:
    put = ctx.results.put

    def both(count: str) -> None:
        put(f"list{count}", m.key, measured(samples(m, m.list_cmd(False), ctx.reps), "ms"))
        try:
            put(f"json{count}", m.key, measured(samples(m, m.list_cmd(True), ctx.reps), "ms"))
        except Skip as why:
            put(f"json{count}", m.key, skipped(str(why)))

    try:
        both("0")
        running = names("w", 20)
        m.define(running)
        start_all(m, running)
        both("20")
        try:
            ctx.results.notes.append(m.populate_idle(980))
        except Skip as why:
            put("list1000", m.key, skipped(str(why)))
            put("json1000", m.key, skipped(str(why)))
        else:
            both("1000")
    finally:
        m.reset()


def fig_start(m: Manager, ctx: Context) -> None:
    m.define(["one"])
    try:
        for _ in range(ctx.reps.warmup):
            m.call(m.start_cmd("one"))
            m.discard("one")
        times = []
        for _ in range(ctx.reps.fast):
            times.append(m.call(m.start_cmd("one")))
            m.discard("one")
        ctx.results.put("start1", m.key, measured(times, "ms"))
    finally:
        m.reset()


def fig_restart(m: Manager, ctx: Context) -> None:
    m.define(["one"])
    try:
        m.call(m.start_cmd("one"))
        ctx.results.put("restart", m.key, measured(samples(m, m.restart_cmd("one"), ctx.reps), "ms"))
    finally:
        m.reset()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


SERVER = "import http.server, sys; http.server.test(port=int(sys.argv[1]), bind='127.0.0.1')"
WORKER = "import time; time.sleep(3600)"


def fig_startup(m: Manager, ctx: Context) -> None:
    """bgr's default start (it watches the new process settle, at most 1 s) for a server and a
    worker, next to ``--wait 0``; and a restart with and without bgr-guard watching."""
    if not isinstance(m, Bgr):
        raise Skip("bgr's start window")
    python, bgr = str(m.tools.python), str(m.tools.bgr)

    server, worker, quick = [], [], []
    try:
        for i in range(ctx.reps.warmup + ctx.reps.fast):
            port = free_port()
            began = time.monotonic()
            m.call(Cmd((bgr, "--name", "srv", "--command", shlex.join([python, "-c", SERVER, str(port)]))))
            wait_for("the server to listen", functools.partial(accepts, port), 10)
            took = time.monotonic() - began
            worker_took = m.call(Cmd((bgr, "--name", "wk", "--command", shlex.join([python, "-c", WORKER]))))
            quick_took = m.call(
                Cmd((bgr, "--name", "w0", "--wait", "0", "--command", shlex.join([python, "-c", WORKER])))
            )
            if i >= ctx.reps.warmup:
                server.append(took)
                worker.append(worker_took)
                quick.append(quick_took)
            m.reset()
        m.define(["one"])
        m.call(m.start_cmd("one"))
        alone = samples(m, m.restart_cmd("one"), ctx.reps)
        m.supervise(ctx.reps)
        guarded = samples(m, m.restart_cmd("one"), ctx.reps)
    finally:
        m.unsupervise()
        m.reset()
    put = ctx.results.put
    put("startsrv", m.key, measured(server, "ms"))
    put("startwork", m.key, measured(worker, "ms"))
    put("startw0", m.key, measured(quick, "ms"))
    put("restartw0", m.key, measured(alone, "ms"))
    put("restartg", m.key, measured(guarded, "ms"))


def fig_batch(m: Manager, ctx: Context) -> None:
    """Rounds of: start 20, stop each; start 20, stop all in one call."""
    batch = names("w", 20)
    starts: list[float] = []
    one_call: list[float] = []
    each: list[float] = []
    try:
        m.define(["warm"])
        for _ in range(ctx.reps.warmup):
            m.call(m.start_cmd("warm"))
            m.discard("warm")
        m.reset()
        for _ in range(ctx.reps.pairs):
            m.define(batch)
            starts.append(start_all(m, batch))
            each.append(sum(m.call(m.stop_cmd(n)) for n in batch))
            m.reset()
            m.define(batch)
            starts.append(start_all(m, batch))
            one_call.append(m.call(m.stop_all_cmd()))
            m.reset()
    finally:
        m.reset()
    ctx.results.put("start20", m.key, measured(starts, "s"))
    ctx.results.put("stop20", m.key, measured(one_call, "s"))
    ctx.results.put("stop20each", m.key, measured(each, "s"))


def _restarted(stamp: Path, before: int) -> bool:
    return len(_stamps(stamp)) > before


def _stamps(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except (OSError, ValueError):
        return []


def fig_guard(m: Manager, ctx: Context) -> None:
    """20 processes under the supervisor: idle figures while they settle, then kill some, one by one.

    Each process is killed once, after running longer than bgr-guard's stable window (10 s), so every
    sample is a first failure (an immediate restart) rather than a backoff delay.
    """
    running = names("c", 20)
    m.define(running)
    try:
        start_all(m, running)
        supervisor = m.supervise(ctx.reps)
        began = time.monotonic()
        time.sleep(2.0)  # past start-up work: from here on the supervisor should be idle
        cpu_before, idle_from = cpu_seconds(supervisor), time.monotonic()
        rss_idle = rss_bytes(supervisor)
        time.sleep(max(0.0, began + ctx.reps.stable_wait - time.monotonic()))
        idle = (cpu_seconds(supervisor) - cpu_before) / (time.monotonic() - idle_from)
        pids = m.pids()
        missing = [n for n in running if n not in pids]
        if missing:
            raise BenchError(f"not running before the crash round: {', '.join(missing)}")
        latencies = []
        for name in running[: ctx.reps.crash]:
            stamp = m.stamp(name)
            before = len(_stamps(stamp))
            killed_at = m.kill(name, pids[name])
            wait_for(f"{name} to run again", functools.partial(_restarted, stamp, before), 10)
            latencies.append((_stamps(stamp)[before] - killed_at) / 1e9)
            time.sleep(0.2)  # let the supervisor finish its bookkeeping before the next crash
        rss_after = rss_bytes(supervisor)
        thread_count = threads(supervisor)
    finally:
        m.unsupervise()
        m.reset()
    ctx.results.put("crash", m.key, measured(latencies, "ms"))
    ctx.results.put("crash95", m.key, measured(latencies, "ms", pick="p95"))
    ctx.results.put("rss", m.key, measured([max(rss_idle, rss_after)], "MiB"))
    ctx.results.put("idlecpu", m.key, measured([idle * 100], "%"))
    if m.key == "bgr":
        options = f" `bgr-guard --all {' '.join(ctx.reps.guard_args)}`:" if ctx.reps.guard_args else ""
        ctx.results.notes.append(
            f"bgr-guard{options} RSS {rss_idle / 2**20:.1f} MiB idle, {rss_after / 2**20:.1f} MiB after "
            f"{len(latencies)} restarts (the table shows the larger); {thread_count} threads"
        )


WRITER = """\
import os, sys, time
stamp, total = sys.argv[1], int(sys.argv[2])
chunk = (b"x" * 99 + b"\\n") * 655  # 65,500 bytes of 100-byte lines
time.sleep(0.3)  # let the manager's start command finish: measure the log path, not the CLI
with open(stamp, "w") as fh:
    fh.write(str(time.time_ns()))
left = total
while left > 0:
    left -= os.write(1, chunk if left >= len(chunk) else chunk[:left])
"""


@dataclass(frozen=True, slots=True)
class _Landed:
    rate: float  # bytes per second
    lost: int  # bytes the writer wrote that never reached the log


Starter = Callable[[Path, Path, int], "subprocess.Popen[bytes] | None"]


def _throughput(start: Starter, directory: Path, total: int) -> _Landed:
    """From the writer's first write until its last byte is in the log (or the log stops growing)."""
    log, stamp = directory / "throughput.log", directory / "throughput.stamp"
    for path in (log, stamp):
        path.unlink(missing_ok=True)
    child = start(log, stamp, total)
    try:
        wait_for("the writer's start stamp", lambda: stamp.exists() and stamp.stat().st_size > 0, 30)
        began = int(stamp.read_text())
        size, changed = 0, time.time_ns()
        # A manager that drops output (pm2 sometimes loses the tail of an exiting process) would
        # never reach ``total``: stop once the log has not grown for 2 s and report the loss.
        while size < total and time.time_ns() - changed < 2_000_000_000:
            try:
                now_size = log.stat().st_size
            except FileNotFoundError:
                now_size = 0
            if now_size != size:
                size, changed = now_size, time.time_ns()
            else:
                time.sleep(0.0005)
    finally:
        if child is not None:
            child.wait(60)
    log.unlink(missing_ok=True)
    if size == 0:
        raise BenchError("the writer's output never reached its log")
    return _Landed(rate=size / ((changed - began) / 1e9), lost=max(0, total - size))


def fig_logs(m: Manager, ctx: Context) -> None:
    """The same Python writer, straight to a file and then as a managed process, alternately."""
    script = ctx.sandbox.path("writer.py")
    script.write_text(WRITER)
    python = str(m.tools.python)
    total = ctx.reps.log_bytes
    directory = m.dir / "logs"
    directory.mkdir(parents=True, exist_ok=True)

    def direct(log: Path, stamp: Path, size: int) -> subprocess.Popen[bytes]:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            return subprocess.Popen([python, str(script), str(stamp), str(size)], stdout=fd, env=m.env)
        finally:
            os.close(fd)

    def managed(log: Path, stamp: Path, size: int) -> None:
        m.start_writer("writer", [python, str(script), str(stamp), str(size)], log)

    direct_runs: list[_Landed] = []
    managed_runs: list[_Landed] = []
    try:
        _throughput(direct, directory, min(total, 20_000_000))  # warm-up: page cache, allocator
        for rep in range(ctx.reps.log_reps):
            # Alternate which goes first, so a drift in the machine's state favours neither.
            if rep % 2:
                managed_runs.append(_throughput(managed, directory, total))
                m.reset()
            direct_runs.append(_throughput(direct, directory, total))
            if not rep % 2:
                managed_runs.append(_throughput(managed, directory, total))
                m.reset()
    finally:
        m.reset()
    managed_rates = sorted(r.rate for r in managed_runs)
    direct_rates = sorted(r.rate for r in direct_runs)
    ctx.results.put("logmb", m.key, measured([r / 1e6 for r in managed_rates], "MB/s"))
    ctx.results.put("logdirect", m.key, measured([r / 1e6 for r in direct_rates], "MB/s"))
    ratio = managed_rates[len(managed_rates) // 2] / direct_rates[len(direct_rates) // 2]
    ctx.results.put("logratio", m.key, measured([ratio], "x"))
    lossy = [r.lost for r in managed_runs if r.lost]
    if lossy:
        ctx.results.notes.append(
            f"{m.title} lost output: in {len(lossy)} of {len(managed_runs)} throughput runs the log "
            f"missed the last {', '.join(f'{b:,}' for b in lossy)} bytes of {total:,} the writer wrote"
        )
    if m.key == "bgr":
        ctx.results.notes.append(
            f"log throughput: a Python writer sends {total / 1e6:,.0f} MB in 64 KiB writes; timed from "
            "its first write until the log holds its last byte; median of "
            f"{ctx.reps.log_reps}, runs interleaved with the same writer sent straight to a file"
        )


NUMBERED = """\
import os, sys
count, done = int(sys.argv[1]), sys.argv[2]
i = 0
while i < count:
    n = min(100, count - i)
    os.write(1, b"".join(b"%09d\\n" % j for j in range(i, i + n)))
    i += n
open(done, "w").close()
"""
_RECORD = re.compile(rb"\d{9}")


def _count_lines(stream: bytes, expected: int) -> tuple[int, int, int]:
    """(lost, duplicated, malformed) among ``expected`` numbered lines in ``stream``."""
    seen: set[int] = set()
    duplicated = malformed = 0
    for line in stream.split(b"\n")[:-1] if stream.endswith(b"\n") else stream.split(b"\n"):
        if not _RECORD.fullmatch(line):
            malformed += 1
            continue
        number = int(line)
        if number in seen:
            duplicated += 1
        seen.add(number)
    lost = len(set(range(expected)) - seen)
    return lost, duplicated, malformed


def _rotation_run(m: Bgr, ctx: Context, name: str, method: str) -> tuple[int, int, int, int, float]:
    """A bgr-managed writer at full speed while we rotate its log every 256 KiB."""
    from bgr.logfiles import backups, rotation

    script = ctx.sandbox.path("numbered.py")
    script.write_text(NUMBERED)
    done = m.dir / f"{name}.done"
    count = ctx.reps.rotation_lines
    python = str(m.tools.python)
    m.call(
        Cmd(
            (
                str(m.tools.bgr),
                "--name",
                name,
                "--directory",
                str(m.dir),
                "--command",
                shlex.join([python, str(script), str(count), str(done)]),
            )
        )
    )
    log = m.home / f"{name}-out.txt"
    rotations = 0
    began = time.monotonic()
    while not done.exists():
        if time.monotonic() - began > 120:
            raise BenchError("the numbered writer did not finish in 120 s")
        result = rotation.rotate_live(log, name, "out", 64 * 1024, keep=1_000_000, method=method)  # type: ignore[arg-type]
        if result is None:
            time.sleep(0.001)
        else:
            rotations += 1
    elapsed = time.monotonic() - began
    stream = b"".join(p.read_bytes() for p in backups.backups(name, "out")) + log.read_bytes()
    lost, duplicated, malformed = _count_lines(stream, count)
    return lost, duplicated, malformed, rotations, elapsed


def fig_rotation(m: Manager, ctx: Context) -> None:
    if not isinstance(m, Bgr):
        raise Skip("n/a (the daemon writes the log itself)")
    previous = os.environ.get("BGR_HOME")
    os.environ["BGR_HOME"] = str(m.home)  # logfiles keeps backups under the state directory
    try:
        lost, dup, bad, rotations, secs = _rotation_run(m, ctx, "rot", "auto")
        ctx.results.put("rotlost", m.key, measured([lost], "lines"))
        ctx.results.put("rotdup", m.key, measured([dup], "lines"))
        ctx.results.notes.append(
            f"live rotation: {ctx.reps.rotation_lines:,} numbered lines written flat out by a bgr-managed "
            f"process in {secs:.1f} s while rotate_live cut its log every 64 KiB ({rotations} rotations); "
            f"{lost} lost, {dup} duplicated, {bad} malformed"
        )
        lost, dup, bad, rotations, secs = _rotation_run(m, ctx, "rottrunc", "truncate")
        ctx.results.put("rottrunc", m.key, measured([lost], "lines"))
        ctx.results.notes.append(
            f"copy-then-truncate fallback (forced; used only where the filesystem cannot collapse "
            f"ranges): {rotations} rotations, {lost} lost, {dup} duplicated, {bad} malformed lines"
        )
    finally:
        if previous is None:
            os.environ.pop("BGR_HOME", None)
        else:
            os.environ["BGR_HOME"] = previous
        m.reset()


LIST_PATH = "import sys; from bgr.cli import main; sys.exit(main([]))"


def _importtime(python: str, env: dict[str, str]) -> tuple[float, dict[str, tuple[float, float]]]:
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", LIST_PATH],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"the list path failed under -X importtime: {proc.stderr.strip()[-200:]}")
    modules: dict[str, tuple[float, float]] = {}
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            modules[match.group(4)] = (int(match.group(1)) / 1e6, int(match.group(2)) / 1e6)
    return sum(self_time for self_time, _ in modules.values()), modules


def fig_imports(m: Manager, ctx: Context) -> None:
    if not isinstance(m, Bgr):
        raise Skip("n/a")
    python = str(m.tools.python)
    m.home.mkdir(parents=True, exist_ok=True)
    runs = [_importtime(python, m.env) for _ in range(ctx.reps.imports)]
    runs.sort(key=lambda r: r[0])
    _, modules = runs[len(runs) // 2]
    ctx.results.put("imptotal", m.key, measured([r[0] for r in runs], "ms"))
    cli = [r[1].get("bgr.cli", (0.0, 0.0))[1] for r in runs]
    ctx.results.put("impcli", m.key, measured(cli, "ms"))
    heavy = sorted({name for name in modules if name.split(".")[0] in HEAVY})
    ctx.results.put("impheavy", m.key, text_cell(", ".join(heavy) if heavy else "none"))
    ranked = sorted(modules.items(), key=lambda item: item[1][0], reverse=True)[:10]
    ctx.results.imports_top = [(name, s, c) for name, (s, c) in ranked]
    psutil = "yes" if "psutil" in modules else "no"
    editable = [name for name in modules if name.startswith("__editable__")]
    note = f"list path imports (median run of {len(runs)}): psutil imported: {psutil}"
    if editable:
        cost = sum(modules[name][1] for name in editable)
        note += (
            f"; the editable-install finder ({editable[0]}) costs {cost * 1e3:.1f} ms of site start-up "
            "that a normal `pip install .` does not have"
        )
    ctx.results.notes.append(note)


FIGURES: dict[str, Callable[[Manager, Context], None]] = {
    "floor": fig_floor,
    "list": fig_list,
    "start": fig_start,
    "restart": fig_restart,
    "startup": fig_startup,
    "batch": fig_batch,
    "guard": fig_guard,
    "logs": fig_logs,
    "rotation": fig_rotation,
    "imports": fig_imports,
}


def run_figure(name: str, m: Manager, ctx: Context) -> None:
    """Run one figure for one manager; a Skip or a failure fills its rows with the reason."""
    try:
        FIGURES[name](m, ctx)
    except Skip as why:
        for row in ROWS[name]:
            ctx.results.cells.setdefault((row.key, m.key), skipped(str(why)))
    except BenchError as exc:
        for row in ROWS[name]:
            ctx.results.cells.setdefault((row.key, m.key), text_cell(f"failed: {exc}"))
        with contextlib.suppress(BenchError):
            m.reset()
