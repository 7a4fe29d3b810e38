"""``bgr --up`` of a 10-process stack with three dependency levels: wall time against the sum of
the processes' own readiness times along the longest dependency chain.

Each process is a small TCP server that starts listening after a delay of its own and has a
``tcp:`` probe; a process of level 2 and 3 depends on level-1 (level-2) processes being healthy.
The readiness time of each process is what ``bgr --up`` itself reports for it ("healthy after
X s": from its spawn to its probe's first pass). The critical path is the largest sum of those along
a chain of dependencies: no scheduler can bring the stack up faster, so ``wall - critical path`` is
what bgr adds (reading the file, the registry, spawns, probe polling). For scale, the sum over
all ten is what starting them one after another would cost.

    .venv/bin/python bench/stack_up.py [--runs N]

Everything runs under a temporary BGR_HOME, removed afterwards (``bgr --nuke`` first).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name → (delay before listening, dependencies that must be healthy)
LEVELS: dict[str, tuple[float, tuple[str, ...]]] = {
    "db1": (0.30, ()),
    "db2": (0.45, ()),
    "cache": (0.20, ()),
    "queue": (0.35, ()),
    "api1": (0.25, ("db1", "cache")),
    "api2": (0.40, ("db2",)),
    "auth": (0.30, ("db1",)),
    "search": (0.20, ("queue", "db2")),
    "web": (0.35, ("api1", "api2", "auth")),
    "worker": (0.25, ("search", "api2")),
}
SERVER = (
    "import socket, sys, time\n"
    "time.sleep(float(sys.argv[2]))\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(64)\n"
    "while True: s.accept()[0].close()\n"
)
READY = re.compile(r"^started (\S+) \(pid \d+\), healthy after ([0-9.]+)s", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_stack(folder: Path) -> None:
    server = folder / "server.py"
    server.write_text(SERVER)
    tables = []
    for name, (delay, deps) in LEVELS.items():
        port = free_port()
        command = shlex.join([sys.executable, str(server), str(port), str(delay)])
        lines = [f"[{name}]", f"command = {json.dumps(command)}", f'health = "tcp:127.0.0.1:{port}"']
        if deps:
            lines.append("depends_on = { " + ", ".join(f'{d} = "healthy"' for d in deps) + " }")
        tables.append("\n".join(lines))
    (folder / "bgr.toml").write_text("\n\n".join(tables) + "\n")


def critical_path(ready: dict[str, float]) -> float:
    """The longest sum of readiness times along a chain of dependencies."""
    finish: dict[str, float] = {}
    for name, (_, deps) in LEVELS.items():  # listed in dependency order
        finish[name] = ready[name] + max((finish[d] for d in deps), default=0.0)
    return max(finish.values())


def bgr(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    bgr_program = [sys.executable, "-m", "bgr"]
    return subprocess.run(
        [*bgr_program, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def one_run(folder: Path, env: dict[str, str]) -> tuple[float, float, float, float]:
    began = time.perf_counter()
    done = bgr(folder, env, "--up", "--grace", "1")
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"bgr --up failed ({done.returncode}): {done.stderr}")
    ready = {name: float(after) for name, after in READY.findall(done.stdout)}
    if set(ready) != set(LEVELS):
        raise SystemExit(f"could not read every readiness time from:\n{done.stdout}")
    second = time.perf_counter()
    again = bgr(folder, env, "--up")
    unchanged = time.perf_counter() - second
    if "10 unchanged" not in again.stdout:
        raise SystemExit(f"a second --up changed something:\n{again.stdout}")
    bgr(folder, env, "--nuke", "--grace", "1")
    return wall, critical_path(ready), sum(ready.values()), unchanged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bgr-bench-stack-") as tmp:
        folder = Path(tmp) / "stack"
        folder.mkdir()
        env = {**os.environ, "BGR_HOME": str(Path(tmp) / "home"), "NO_COLOR": "1"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        rows = []
        try:
            for _ in range(options.runs):
                write_stack(folder)  # fresh ports each run
                rows.append(one_run(folder, env))
        finally:
            bgr(folder, env, "--nuke", "--grace", "0")
    walls, paths, sums, seconds = (list(column) for column in zip(*rows, strict=True))
    overheads = [w - p for w, p in zip(walls, paths, strict=True)]
    print(f"bgr --up, 10 processes in 3 dependency levels, {options.runs} runs (median, min-max):")
    for label, values in (
        ("wall time of bgr --up", walls),
        ("critical path (readiness times along the longest chain)", paths),
        ("wall - critical path (what bgr adds)", overheads),
        ("sum of all readiness times (one after another)", sums),
        ("second bgr --up (nothing to do)", seconds),
    ):
        print(f"  {label:<58} {statistics.median(values):6.2f} s  ({min(values):.2f}-{max(values):.2f})")
    print(
        f"  wall / critical path: {statistics.median(w / p for w, p in zip(walls, paths, strict=True)):.2f}"
    )


if __name__ == "__main__":
    main()
