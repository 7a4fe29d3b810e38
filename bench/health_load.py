"""bgr-guard's cost of probing: N sleepers, without probes and then each probed every 5 s. Prints.

    .venv/bin/python bench/health_load.py [--count 100] [--every 5] [--idle 30] [--kinds http,tcp]

One small HTTP server (``python -m http.server``, started by the benchmark) answers every probe,
so what is measured is the guard: its CPU time over ``--idle`` seconds (as a percentage of one
core) and its resident memory, for ``bgr-guard --all 30`` over N sleepers with no probe, then with
``--health http://…`` (a GET per check) and ``--health tcp:…`` (a connection per check). The goal
(issue 13): probing 100 processes every 5 s costs at most 2 % of a core. Every process started
carries the benchmark's marker and is killed by PID at the end.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BenchError, Sandbox, cpu_seconds, interpreter, load, rss_bytes, run, terminate, wait_for
from managers import Tools

POPULATE = """
import sys
import bgr
from bgr.health import probes
directory, count, spec, every = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
health = probes.Probe(*probes.parse(spec), every=every).to_dict() if spec else None
for i in range(count):
    request = bgr.StartRequest(name=f"p{i:03d}", command="sleep 3600", directory=directory, health=health)
    bgr.start(request, startup_window=0)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(
    sandbox: Sandbox, tools: Tools, label: str, spec: str, args: argparse.Namespace
) -> tuple[float, int, int]:
    """(idle CPU as a fraction of a core, RSS once all are guarded, RSS at the end) of one guard."""
    directory = sandbox.path(label)
    directory.mkdir()
    env = {**sandbox.env, "BGR_HOME": str(directory / "home")}
    run(
        [str(tools.python), "-c", POPULATE, str(directory), str(args.count), spec, str(args.every)],
        env,
        timeout=600,
    )
    log_path = directory / "guard.log"
    with log_path.open("ab") as log:
        guard = subprocess.Popen(
            [str(tools.guard), "--all", "30"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        try:

            def guarded() -> bool:
                if guard.poll() is not None:
                    raise BenchError(f"bgr-guard exited {guard.returncode}; see {log_path}")
                return log_path.read_text(errors="replace").count(": guarded (") >= int(args.count)

            wait_for(f"bgr-guard to guard {args.count} processes", guarded, 300, 0.05)
            time.sleep(2 * args.every)  # every probe has run and its pool threads exist
            rss = rss_bytes(guard.pid)
            before = cpu_seconds(guard.pid)
            time.sleep(args.idle)
            cpu = (cpu_seconds(guard.pid) - before) / args.idle
            rss_end = rss_bytes(guard.pid)
        finally:
            terminate(guard, 30)
    failures = log_path.read_text(errors="replace").count("unhealthy")
    if failures:
        print(f"  note: {failures} 'unhealthy' lines in {label}'s guard log (a loaded machine?)")
    run([str(tools.bgr), "--nuke", "--grace", "1"], env, timeout=300)
    return cpu, rss, rss_end


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/health_load.py", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--every", type=float, default=5.0, help="--health-every, seconds")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of CPU time measured")
    parser.add_argument("--kinds", default="http,tcp")
    args = parser.parse_args(argv)
    tools = Tools.find(interpreter())
    sandbox = Sandbox.create()
    port = free_port()
    what = f"{args.count} sleepers, probes every {args.every:g} s"
    print(f"load average before: {load()}; {os.cpu_count()} cores; {what}")
    server = subprocess.Popen(
        [str(tools.python), "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        env=sandbox.env,
        cwd=sandbox.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    specs = {"no probe": "", "http": f"http://127.0.0.1:{port}/", "tcp": f"tcp:127.0.0.1:{port}"}
    rows = []
    try:
        for label in ["no probe", *(k for k in args.kinds.split(",") if k)]:
            if label not in specs:
                raise SystemExit(f"bench/health_load.py: unknown kind {label!r}; known: http, tcp")
            print(f"{label}: measuring ...", flush=True)
            rows.append((label, *measure(sandbox, tools, label.replace(" ", "-"), specs[label], args)))
    finally:
        terminate(server, 10)
        leftovers = sandbox.sweep()
        if leftovers:
            print(f"bench: killed {len(leftovers)} leftover processes by PID")
        sandbox.remove()
    print(f"load average after: {load()}")
    print(f"\n{'probes':<10} {'idle CPU':>10} {'RSS':>10} {'RSS end':>10}")
    for label, cpu, rss, rss_end in rows:
        print(f"{label:<10} {cpu * 100:>9.2f}% {rss / 2**20:>8.1f}Mi {rss_end / 2**20:>8.1f}Mi")
    print("goal: probing 100 processes every 5 s costs at most 2 % of a core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
