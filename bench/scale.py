"""bgr-guard at 100, 400 and 1000 processes, side by side with supervisord. Prints; asserts nothing.

    .venv/bin/python bench/scale.py [--sizes 100,400,1000] [--rounds 5] [--kills 20] [--idle 20]
                                    [--interval 5] [--managers bgr,supervisord] [--markdown]

For each size N, each manager gets a fresh state directory with N sleepers
(``/bin/sh child.sh STAMP``: ``date +%s%N >> STAMP; exec sleep 3600``) and:

- **took over**: seconds from starting the supervisor until it watches all N (bgr-guard: N
  ``guarded`` lines in its log; supervisord: all N RUNNING, started by itself).
- **RSS** of the supervisor once it watches all N, and again after the kill rounds.
- **idle CPU**: user+system CPU time of the supervisor over ``--idle`` seconds of nothing happening,
  as a percentage of one core (bgr-guard runs ``--all INTERVAL``, checking every INTERVAL s).
- **20 kills**: ``--rounds`` rounds; each SIGKILLs ``--kills`` random running processes at once
  (bgr: their process groups, since dash forks; supervisord: the pid it reports). Latency of each =
  the new instance's first ``date +%s%N`` minus its kill time: the whole path, including starting
  ``sh`` and ``date``. Rounds are 1.5 s apart and the guard runs ``--stable-after 1s``, so every kill
  is a plain "restart now" and never a backoff.
- **stop all**: ``bgr --nuke`` (stops and forgets all N; once with the guard running, once after a
  fresh population without it) / ``supervisorctl stop all``. The sleepers exit on SIGTERM.

Run it with the project venv's python; ``sh bench/setup-peers.sh`` installs supervisord into
bench/.peers/ (skipped, with the reason printed, when absent). Every process started carries
``BGR_BENCH_RUN=<uuid>``; at the end (also on an error) the supervisors are stopped and anything
still carrying the marker is killed by PID.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BenchError,
    Sandbox,
    Stats,
    cgroup_mount,
    cpu_seconds,
    interpreter,
    load,
    read_pidfile,
    rss_bytes,
    run,
    terminate,
    wait_for,
    wait_gone,
)
from managers import Tools

CHILD = 'date +%s%N >> "$1"\nexec sleep 3600\n'

# Start N definitions from one short-lived Python process (the bgr API, no startup window): the
# sleepers are orphaned when it exits, as after N `bgr --name` calls, at a fraction of the time.
POPULATE = """
import sys
import bgr
directory, script, stamps, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for i in range(count):
    name = f"s{i:04d}"
    request = bgr.StartRequest(name=name, command=f"/bin/sh {script} {stamps}/{name}", directory=directory)
    bgr.start(request, startup_window=0)
"""


@dataclass(slots=True)
class Figures:
    """One manager at one size; None: not measured (the reason is in ``notes``)."""

    took_over: float | None = None
    rss: int | None = None
    rss_after: int | None = None
    idle_cpu: float | None = None  # fraction of one core
    latencies: list[float] = field(default_factory=list)
    lost: int = 0  # killed processes not running again within the timeout
    stop_all: float | None = None
    stop_all_guarded: float | None = None
    notes: list[str] = field(default_factory=list)


def stamps_of(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except (OSError, ValueError):
        return []


def kill_rounds(
    pids: Callable[[], dict[str, int]],
    kill: Callable[[int], None],
    stamp: Callable[[str], Path],
    rounds: int,
    kills: int,
) -> tuple[list[float], int]:
    """Kill ``kills`` random processes at once, ``rounds`` times; (latencies in s, not restarted)."""
    latencies: list[float] = []
    lost = 0
    rng = random.Random(15)
    for _ in range(rounds):
        time.sleep(1.5)  # every run is older than --stable-after: each kill is a plain restart
        running = pids()
        chosen = rng.sample(sorted(running), min(kills, len(running)))
        before = {name: len(stamps_of(stamp(name))) for name in chosen}
        killed_at = {}
        for name in chosen:
            killed_at[name] = time.time_ns()
            kill(running[name])
        deadline = time.monotonic() + 30
        waiting = set(chosen)
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                seen = stamps_of(stamp(name))
                if len(seen) > before[name]:
                    latencies.append((seen[-1] - killed_at[name]) / 1e9)
                    waiting.discard(name)
            time.sleep(0.002)
        lost += len(waiting)
    return latencies, lost


def idle_cpu(pid: int, seconds: float) -> float:
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


class BgrScale:
    """N sleepers under ``bgr-guard --all INTERVAL``."""

    title = "bgr"

    def __init__(self, sandbox: Sandbox, tools: Tools, size: int, args: argparse.Namespace) -> None:
        self.tools, self.size, self.args = tools, size, args
        self.dir = sandbox.path(f"bgr-{size}")
        self.home = self.dir / "home"
        self.env = {**sandbox.env, "BGR_HOME": str(self.home)}
        self.guard: subprocess.Popen[bytes] | None = None
        self.guard_log: IO[bytes] | None = None

    def missing(self) -> str | None:
        return None if self.tools.guard.is_file() else f"no bgr-guard next to {self.tools.python}"

    def populate(self) -> None:
        (self.dir / "stamps").mkdir(parents=True, exist_ok=True)
        script = self.dir / "child.sh"
        script.write_text(CHILD)
        argv = [str(self.tools.python), "-c", POPULATE, str(self.dir), str(script), str(self.dir / "stamps")]
        run([*argv, str(self.size)], self.env, timeout=600)

    def pgids(self) -> dict[str, int]:
        conn = sqlite3.connect(f"file:{self.home / 'bgr.sqlite'}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT name, pgid FROM processes WHERE pgid IS NOT NULL").fetchall()
        finally:
            conn.close()
        return {str(name): int(pgid) for name, pgid in rows}

    def start_guard(self) -> int:
        log = self.dir / "guard.log"
        self.guard_log = log.open("ab")
        argv = [str(self.tools.guard), "--all", f"{self.args.interval:g}", "--stable-after", "1"]
        began = time.monotonic()
        self.guard = subprocess.Popen(
            argv, env=self.env, stdin=subprocess.DEVNULL, stdout=self.guard_log, stderr=subprocess.STDOUT
        )
        guard = self.guard

        def all_guarded() -> bool:
            if guard.poll() is not None:
                raise BenchError(f"bgr-guard exited {guard.returncode}; see {log}")
            return log.read_text(errors="replace").count(": guarded (") >= self.size

        wait_for(f"bgr-guard to guard {self.size} processes", all_guarded, 300, 0.05)
        self.took_over = time.monotonic() - began
        return guard.pid

    def stop_guard(self) -> None:
        terminate(self.guard, 30)
        self.guard = None
        if self.guard_log is not None:
            self.guard_log.close()
            self.guard_log = None

    def nuke(self) -> float:
        return run([str(self.tools.bgr), "--nuke"], self.env, timeout=600)[0]

    def measure(self) -> Figures:
        fig = Figures()
        try:
            self.populate()
            pid = self.start_guard()
            fig.took_over = self.took_over
            time.sleep(2)
            fig.rss = rss_bytes(pid)
            fig.idle_cpu = idle_cpu(pid, self.args.idle)

            def kill(pgid: int) -> None:
                os.killpg(pgid, signal.SIGKILL)

            fig.latencies, fig.lost = kill_rounds(
                self.pgids, kill, lambda n: self.dir / "stamps" / n, self.args.rounds, self.args.kills
            )
            fig.rss_after = rss_bytes(pid)
            fig.stop_all_guarded = self.nuke()
            self.stop_guard()
            self.populate()
            fig.stop_all = self.nuke()
        finally:
            self.close()
        return fig

    def close(self) -> None:
        self.stop_guard()
        if (self.home / "bgr.sqlite").exists():
            try:
                run([str(self.tools.bgr), "--nuke", "--grace", "2"], self.env, timeout=600)
            except BenchError as exc:
                print(f"bench: cleanup: {exc}", file=sys.stderr)


_SUPERVISORD = """\
[unix_http_server]
file={dir}/supervisor.sock
chmod=0700

[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}/logs
loglevel=warn
minfds={fds}
minprocs={procs}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock
"""

_PROGRAM = """
[program:{name}]
command=/bin/sh {script} {stamp}
directory={dir}
autostart=true
autorestart=true
startsecs=0
stopwaitsecs=5
stdout_logfile={dir}/logs/{name}-out.txt
stdout_logfile_maxbytes=0
stderr_logfile={dir}/logs/{name}-err.txt
stderr_logfile_maxbytes=0
"""


class SupervisordScale:
    """N programs (autostart, autorestart, startsecs=0) in one supervisord."""

    title = "supervisord"

    def __init__(self, sandbox: Sandbox, tools: Tools, size: int, args: argparse.Namespace) -> None:
        self.tools, self.size, self.args = tools, size, args
        self.dir = sandbox.path(f"supervisord-{size}")
        self.conf = self.dir / "supervisord.conf"
        self.env = dict(sandbox.env)
        self.daemon: int | None = None

    def missing(self) -> str | None:
        if self.tools.supervisord is None:
            return "not installed (run sh bench/setup-peers.sh)"
        return None

    def ctl(self, *args: str, timeout: float = 120) -> str:
        assert self.tools.supervisorctl is not None
        argv = [str(self.tools.supervisorctl), "-c", str(self.conf), *args]
        return run(argv, self.env, ok=(0, 3), capture=True, timeout=timeout)[1]

    def pids(self) -> dict[str, int]:
        found = {}
        for line in self.ctl("status").splitlines():
            parts = line.split()
            if len(parts) > 3 and parts[1] == "RUNNING" and parts[2] == "pid":
                found[parts[0]] = int(parts[3].rstrip(","))
        return found

    def measure(self) -> Figures:
        assert self.tools.supervisord is not None
        fig = Figures()
        (self.dir / "stamps").mkdir(parents=True)
        (self.dir / "logs").mkdir()
        script = self.dir / "child.sh"
        script.write_text(CHILD)
        # Each program holds pipes for its stdout and stderr in supervisord: raise its fd floor.
        text = _SUPERVISORD.format(dir=self.dir, fds=4 * self.size + 256, procs=self.size + 200)
        for i in range(self.size):
            name = f"s{i:04d}"
            text += _PROGRAM.format(name=name, script=script, stamp=self.dir / "stamps" / name, dir=self.dir)
        self.conf.write_text(text)
        try:
            began = time.monotonic()
            run([str(self.tools.supervisord), "-c", str(self.conf)], self.env)
            pidfile = self.dir / "supervisord.pid"
            wait_for("supervisord's pidfile", lambda: read_pidfile(pidfile) is not None, 30, 0.01)
            self.daemon = read_pidfile(pidfile)
            assert self.daemon is not None
            wait_for(f"{self.size} RUNNING", lambda: len(self.pids()) >= self.size, 600, 0.2)
            fig.took_over = time.monotonic() - began
            time.sleep(2)
            fig.rss = rss_bytes(self.daemon)
            fig.idle_cpu = idle_cpu(self.daemon, self.args.idle)

            def kill(pid: int) -> None:
                os.kill(pid, signal.SIGKILL)

            fig.latencies, fig.lost = kill_rounds(
                self.pids, kill, lambda n: self.dir / "stamps" / n, self.args.rounds, self.args.kills
            )
            fig.rss_after = rss_bytes(self.daemon)
            started = time.perf_counter()
            self.ctl("stop", "all", timeout=600)
            fig.stop_all = time.perf_counter() - started
        finally:
            self.close()
        return fig

    def close(self) -> None:
        if self.daemon is None:
            return
        try:
            self.ctl("shutdown", timeout=120)
        except BenchError as exc:
            print(f"bench: supervisord shutdown: {exc}", file=sys.stderr)
        if not wait_gone(self.daemon, 30):
            os.kill(self.daemon, signal.SIGKILL)
            wait_gone(self.daemon, 5)
        self.daemon = None


MANAGERS: dict[str, type[BgrScale] | type[SupervisordScale]] = {
    "bgr": BgrScale,
    "supervisord": SupervisordScale,
}

ROWS: list[tuple[str, Callable[[Figures], str]]] = [
    ("took over all N", lambda f: _num(f.took_over, 1, "s")),
    ("RSS, all N watched", lambda f: _mib(f.rss)),
    ("RSS after the kill rounds", lambda f: _mib(f.rss_after)),
    ("idle CPU (% of one core)", lambda f: _num(None if f.idle_cpu is None else 100 * f.idle_cpu, 2, "%")),
    ("kill -> running, median", lambda f: _latency(f, "median")),
    ("kill -> running, p95", lambda f: _latency(f, "p95")),
    ("kill -> running, max", lambda f: _latency(f, "maximum")),
    ("not running again within 30 s", lambda f: str(f.lost) if f.latencies or f.lost else "-"),
    ("stop all (guard running)", lambda f: _num(f.stop_all_guarded, 2, "s")),
    ("stop all", lambda f: _num(f.stop_all, 2, "s")),
]


def _num(value: float | None, decimals: int, unit: str) -> str:
    return "-" if value is None else f"{value:,.{decimals}f} {unit}".replace(" %", "%")


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def _latency(fig: Figures, which: str) -> str:
    if not fig.latencies:
        return "-"
    value: float = getattr(Stats(tuple(fig.latencies)), which)
    return f"{value * 1000:,.1f} ms (n={len(fig.latencies)})" if which == "p95" else f"{value * 1000:,.1f} ms"


def table(results: dict[tuple[str, int], Figures], sizes: Sequence[int], managers: Sequence[str]) -> str:
    columns = [(m, n) for n in sizes for m in managers]
    header = ["figure", *(f"{m} {n}" for m, n in columns)]
    body = [[label, *(show(results[c]) if c in results else "-" for c in columns)] for label, show in ROWS]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(cells)
        )

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in body)])


def markdown(results: dict[tuple[str, int], Figures], sizes: Sequence[int], managers: Sequence[str]) -> str:
    columns = [(m, n) for n in sizes for m in managers]
    lines = ["| figure | " + " | ".join(f"{m} {n}" for m, n in columns) + " |"]
    lines.append("|---" * (len(columns) + 1) + "|")
    for label, show in ROWS:
        cells = [show(results[c]) if c in results else "-" for c in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/scale.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,400,1000", help="process counts (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="kill rounds per size (default: 5)")
    parser.add_argument("--kills", type=int, default=20, help="processes killed at once (default: 20)")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU measured (default: 20)")
    parser.add_argument("--interval", type=float, default=5.0, help="bgr-guard's check interval (default: 5)")
    parser.add_argument("--managers", default="bgr,supervisord", help="default: %(default)s")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    keys = [m for m in args.managers.split(",") if m]
    unknown = [m for m in keys if m not in MANAGERS]
    if unknown:
        raise SystemExit(
            f"bench/scale.py: unknown manager {', '.join(unknown)}; known: {', '.join(MANAGERS)}"
        )
    tools = Tools.find(interpreter())
    sandbox = Sandbox.create()
    results: dict[tuple[str, int], Figures] = {}
    print(f"load average before: {load()}; {os.cpu_count()} cores; guard interval {args.interval:g} s")
    print(f"cgroup2: {cgroup_mount()}")
    try:
        for size in sizes:
            for key in keys:
                manager = MANAGERS[key](sandbox, tools, size, args)
                reason = manager.missing()
                if reason:
                    print(f"{key} {size}: skipped: {reason}")
                    continue
                print(f"{key} {size}: measuring ...", flush=True)
                try:
                    results[(key, size)] = manager.measure()
                except BenchError as exc:
                    print(f"{key} {size}: failed: {exc}")
    finally:
        leftovers = sandbox.sweep()
        if leftovers:
            print(f"bench: killed {len(leftovers)} leftover processes by PID")
        sandbox.remove()
    print(f"load average after: {load()}")
    shown = [k for k in keys if any((k, n) in results for n in sizes)]
    print((markdown if args.markdown else table)(results, sizes, shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
