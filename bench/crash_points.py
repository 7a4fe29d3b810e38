"""Crash-point and daemon trials: what a dying bgr leaves behind. Prints counts; asserts nothing.

    .venv/bin/python bench/crash_points.py [--trials 20] [--random 100] [--cycles 20]

Everything runs in a throw-away BGR_HOME; every process started here is stopped by PID at the end.

- Named points: for each point of ``bgr.crashpoints`` (``BGR_CRASH_AT``), ``--trials`` starts are
  killed there (SIGKILL, as a power cut or the OOM killer would), then the same start is run
  again; counted: names with more than one live instance, and processes still alive after a
  ``bgr --delete`` (orphans).
- Random moments: ``--random`` starts, each SIGKILLed after a random delay within the time a start
  takes, then the same counts.
- Daemons: ``--cycles`` rounds of start → stop of a fixture that forks, calls ``setsid``, forks
  again and overwrites its environment area (as ``redis-server --daemonize yes`` and nginx do);
  counted: daemons alive after the stop (survivors).

Orphans are found by a token in the command line of every process started here (the daemon wipes
its environment, not its argv), so nothing bgr itself reports is trusted for the count.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent
TOKEN = f"bgr-crash-bench-{uuid.uuid4().hex[:8]}"

DAEMON = textwrap.dedent(
    """
    import ctypes, os, sys, time
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    ctypes.memset(int(fields[47]), 0, int(fields[48]) - int(fields[47]))
    with open(sys.argv[1] + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    while True:
        time.sleep(1)
    """
)


def bgr(
    *args: str, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "bgr"), *args], capture_output=True, text=True, env=env, check=check, timeout=60
    )


def ours() -> list[psutil.Process]:
    """Every live process whose command line carries this run's token."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(TOKEN in part for part in cmdline):
            found.append(proc)
    return found


def sleeper(name: str) -> str:
    """A simple command (exec'd without a shell) whose argv carries the token."""
    return shlex.join([sys.executable, "-c", "import time; time.sleep(3600)", f"{TOKEN}-{name}"])


def instances(name: str) -> int:
    """How many distinct instances of ``name`` run (by the BGR_INSTANCE marker of its processes)."""
    seen = set()
    for proc in ours():
        if f"{TOKEN}-{name}" not in " ".join(proc.info["cmdline"] or []):
            continue
        try:
            marker = proc.environ().get("BGR_INSTANCE")
        except psutil.Error:
            continue
        seen.add(marker)
    return len(seen)


def named_points(trials: int) -> list[tuple[str, int, int]]:
    from bgr import crashpoints

    rows = []
    for point in crashpoints.POINTS:
        doubled = orphans = 0
        for i in range(trials):
            name = f"{point.replace(':', '-')}-{i}"
            command = sleeper(name)
            if point.startswith("stop:"):
                bgr("--name", name, "--command", command, "--wait", "0", check=True)
                bgr("--stop", name, env={**os.environ, "BGR_CRASH_AT": point})
                bgr("--stop", name)
                bgr("--name", name, "--command", command, "--wait", "0")
            else:
                bgr(
                    "--name",
                    name,
                    "--command",
                    command,
                    "--wait",
                    "0",
                    env={**os.environ, "BGR_CRASH_AT": point},
                )
                bgr("--name", name, "--command", command, "--wait", "0")
            doubled += instances(name) > 1
            bgr("--delete", name, "--grace", "1")
            orphans += sum(f"{TOKEN}-{name}" in " ".join(p.info["cmdline"] or []) for p in ours())
        rows.append((point, doubled, orphans))
    return rows


def random_kills(count: int) -> tuple[int, int]:
    rng = random.Random(42)
    doubled = orphans = 0
    for i in range(count):
        name = f"random-{i}"
        command = sleeper(name)
        starter = subprocess.Popen(
            [str(BIN / "bgr"), "--name", name, "--command", command, "--wait", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0, 0.06))  # within the ~40 ms a start takes, and a bit after
        starter.send_signal(signal.SIGKILL)
        starter.wait()
        bgr("--name", name, "--command", command, "--wait", "0")
        doubled += instances(name) > 1
        bgr("--delete", name, "--grace", "1")
        orphans += sum(f"{TOKEN}-{name}" in " ".join(p.info["cmdline"] or []) for p in ours())
    return doubled, orphans


def daemon_cycles(cycles: int, root: Path) -> tuple[int, int]:
    script = root / "daemon.py"
    script.write_text(DAEMON)
    survivors = shown_running = 0
    for i in range(cycles):
        pidfile = root / f"daemon-{i}.pid"
        command = shlex.join([sys.executable, str(script), str(pidfile), f"{TOKEN}-daemon"])
        bgr("--name", "daemon", "--command", command, check=True)
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = int(pidfile.read_text())
        listed = bgr("daemon", "--json").stdout
        shown_running += '"status": "running"' in listed
        bgr("--stop", "daemon", "--grace", "1")
        survivors += psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    bgr("--delete", "daemon")
    return survivors, shown_running


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="kills per named point (default 20)")
    parser.add_argument("--random", type=int, default=100, help="kills at random moments (default 100)")
    parser.add_argument("--cycles", type=int, default=20, help="daemon start/stop cycles (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bgr-crash-bench-") as tmp:
        os.environ["BGR_HOME"] = str(Path(tmp) / "home")
        os.makedirs(os.environ["BGR_HOME"], mode=0o700)
        tracking = (
            "cgroup per instance" if os.environ.get("BGR_CGROUP") != "off" else "markers (BGR_CGROUP=off)"
        )
        try:
            print(f"tracking: {tracking}; token {TOKEN}")
            print(f"{'point':<18} {'trials':>6} {'two instances':>14} {'orphans':>8}")
            for point, doubled, orphans in named_points(args.trials):
                print(f"{point:<18} {args.trials:>6} {doubled:>14} {orphans:>8}")
            doubled, orphans = random_kills(args.random)
            print(f"{'random moment':<18} {args.random:>6} {doubled:>14} {orphans:>8}")
            survivors, running = daemon_cycles(args.cycles, Path(tmp))
            print(f"daemon stop cycles: {args.cycles}, shown running {running}, survivors {survivors}")
        finally:
            bgr("--nuke", "--grace", "1")
            for proc in ours():
                print(f"cleanup: killing leftover pid {proc.pid}", file=sys.stderr)
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
