"""``python -m bgr.health [--within SECONDS] CHECK``: wait until a probe passes (exit 0), or say
its last answer on stderr and exit 1.

Exported systemd units run this as ``ExecStartPost=`` so that a unit others need *healthy* counts
as started only once its probe passes. A ``cmd:`` check runs in the current directory and
environment: the unit's ``WorkingDirectory=`` and ``Environment=``.
"""

from __future__ import annotations

import os
import sys
import time

from bgr.errors import UsageError
from bgr.health import probes


def main(argv: list[str]) -> int:
    within = 30.0
    if len(argv) >= 2 and argv[0] == "--within":
        try:
            within = float(argv[1])
        except ValueError:
            within = -1.0
        argv = argv[2:]
    if len(argv) != 1 or within < 0:
        sys.stderr.write("usage: python -m bgr.health [--within SECONDS] CHECK\n")
        return 2
    try:
        kind, target = probes.parse(argv[0])
    except UsageError as exc:
        sys.stderr.write(f"bgr.health: {exc}\n")
        return 2
    probe = probes.Probe(kind, target)
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        result = probes.check(
            probe._replace(timeout=max(0.05, min(probe.timeout, left))), directory=os.getcwd(), env=os.environ
        )
        if result.ok:
            return 0
        if time.monotonic() >= deadline:
            sys.stderr.write(
                f"bgr.health: {argv[0]} did not pass within {within:g}s (last: {result.detail})\n"
            )
            return 1
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
