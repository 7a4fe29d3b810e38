"""bgr-guard figures: SIGKILL-to-running latency, resident memory, idle CPU. Prints; asserts nothing.

    python bench/guard_latency.py [--kills 50] [--processes 20] [--idle 10]

Everything runs in a throw-away BGR_HOME; every process started here is stopped by PID at the end.

- Latency: one process ``date +%s.%N >> stamps; exec sleep 1000`` under ``bgr-guard NAME``. Each
  round SIGKILLs its process group and takes the time just before the kill; the restarted child
  writes its own start time as its first act. Latency = that stamp minus the kill time, so it
  covers the whole path: the kernel's exit notification (pidfd), the guard's check, the registry
  writes, the spawn of ``/bin/sh`` and its ``date``. The first run is made stable
  (``--stable-after``) so each kill is a plain "restart now", not a backoff.
- Memory and CPU: ``--processes`` sleepers under ``bgr-guard --all INTERVAL`` (30); RSS (psutil) once all
  are guarded, then CPU time (user+system) used over ``--idle`` seconds of doing nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def bgr(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bgr", *args], capture_output=True, text=True, check=True)
    return done.stdout


def guard(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen([sys.executable, "-m", "guard", *args], stderr=err)


def wait_until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(predicate) or not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("bench: timed out")
        time.sleep(0.001)


def row(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(bgr(name, "--json"))
    return data


def latency(work: Path, kills: int) -> list[float]:
    stamps = work / "stamps"
    bgr("--name", "lat", "--command", f"date +%s.%N >> {stamps}; exec sleep 1000")
    proc = guard("lat", "30", "--stable-after", "0.05", log=work / "guard-latency.log")
    try:
        wait_until(lambda: "lat: guarded" in (work / "guard-latency.log").read_text())
        results = []
        for _ in range(kills):
            count = len(stamps.read_text().split())
            pgid = row("lat")["pgid"]
            assert isinstance(pgid, int)
            time.sleep(0.1)  # a stable run, and a quiet machine between rounds
            killed_at = time.time()
            os.killpg(pgid, signal.SIGKILL)
            wait_until(lambda count=count: len(stamps.read_text().split()) > count)
            results.append(float(stamps.read_text().split()[-1]) - killed_at)
        return results
    finally:
        proc.terminate()
        proc.wait()


def footprint(work: Path, processes: int, idle: float, interval: str) -> tuple[int, int, float]:
    for i in range(processes):
        bgr("--name", f"p{i:02d}", "--command", "sleep 1000")
    log = work / "guard-all.log"
    proc = guard("--all", interval, log=log)
    try:
        wait_until(lambda: log.read_text().count(": guarded") >= processes)
        time.sleep(0.5)
        me = psutil.Process(proc.pid)
        memory = me.memory_full_info()
        rss, uss = memory.rss, memory.uss
        before = me.cpu_times()
        time.sleep(idle)
        after = me.cpu_times()
        cpu = (after.user - before.user) + (after.system - before.system)
        return rss, uss, cpu
    finally:
        proc.terminate()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--interval", default="30", help="the --all guard's check interval")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bgr-guard-bench-"))
    os.environ["BGR_HOME"] = str(work / "home")
    os.environ.pop("DB_NAME", None)
    try:
        lat = sorted(latency(work, args.kills))
        bgr("--nuke")
        rss, uss, cpu = footprint(work, args.processes, args.idle, args.interval)
    finally:
        bgr("--nuke")
        shutil.rmtree(work, ignore_errors=True)
    p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
    print(f"SIGKILL to running ({len(lat)} kills): median {statistics.median(lat) * 1000:.1f} ms, "
          f"p95 {p95 * 1000:.1f} ms, min {lat[0] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms")  # fmt: skip
    print(
        f"guard memory with {args.processes} processes under --all: RSS {rss / 1024**2:.1f} MiB "
        f"(USS {uss / 1024**2:.1f} MiB: not counting shared library pages)"
    )
    print(
        f"guard idle CPU over {args.idle:g} s (checks every {args.interval} s): "
        f"{cpu * 1000:.0f} ms ({100 * cpu / args.idle:.2f} %; resolution: one clock tick, 10 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
