"""bgr --watch latency: from a file write to the restarted process running, minus the debounce.

Runs ``python -m bgr --name bench --watch --debounce MS`` on a scratch directory (and a scratch
BGR_HOME), then RUNS times: write a file, wait for the new instance to write its start time
(``date +%s.%N``, so the interpreter start-up of a Python child is not counted), and take
``start - write - debounce``. Prints the median and spread. Usage::

    python bench/watch_latency.py [RUNS] [DEBOUNCE_MS]
"""

from __future__ import annotations

import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _wait_for_lines(path: Path, count: int, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().split()
            if len(lines) >= count:
                return lines
        time.sleep(0.002)
    raise SystemExit(f"no start #{count} within {timeout}s")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    debounce_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    with tempfile.TemporaryDirectory(prefix="bgr-watch-bench-") as scratch:
        base = Path(scratch)
        app, starts = base / "app", base / "starts.txt"
        app.mkdir()
        env = {**os.environ, "BGR_HOME": str(base / "home")}
        command = f"date +%s.%N >> {shlex.quote(str(starts))}; exec sleep 600"
        watcher = subprocess.Popen(
            [sys.executable, "-m", "bgr", "--name", "bench", "-d", str(app), "-c", command,
             "--watch", "--debounce", str(debounce_ms)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        latencies: list[float] = []
        try:
            _wait_for_lines(starts, 1)
            time.sleep(0.3)  # let the first start settle (startup window, first poll)
            for run in range(runs):
                written = time.time()
                (app / f"change-{run}.txt").write_text(str(run))
                started = float(_wait_for_lines(starts, run + 2)[run + 1])
                latencies.append((started - written) * 1000 - debounce_ms)
                time.sleep(0.15)  # the restart call returns after its startup window
        finally:
            os.killpg(watcher.pid, signal.SIGINT)
            watcher.wait(30)
            subprocess.run(
                [sys.executable, "-m", "bgr", "--stop", "bench"], env=env, capture_output=True, check=False
            )
    latencies.sort()
    print(f"bgr --watch --debounce {debounce_ms}: write → restarted process running, minus debounce")
    print(f"  runs    {len(latencies)}")
    print(f"  median  {statistics.median(latencies):6.1f} ms")
    print(f"  p90     {latencies[int(0.9 * (len(latencies) - 1))]:6.1f} ms")
    print(f"  min/max {latencies[0]:6.1f} / {latencies[-1]:6.1f} ms")


if __name__ == "__main__":
    main()
