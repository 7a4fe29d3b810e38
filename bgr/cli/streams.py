"""Standard streams for both programs (bgr, bgr-guard) when they were started with some closed."""

from __future__ import annotations

import os
import sys


def reopen_closed() -> None:
    """Give a closed stdin, stdout or stderr /dev/null (cron, some daemons: ``bgr ... >&-``).

    Python leaves ``sys.stdout``/``sys.stderr`` None then, so printing or logging would raise; and
    the registry, a lock or a log file opened later would get fd 1 or 2, where a stray write would
    corrupt it. Does nothing when all three are open.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            # open() takes the lowest free descriptor: this one, since the lower ones are open now.
            os.open(os.devnull, os.O_RDWR)
    if sys.stdout is None:
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 (lives until exit)
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 (lives until exit)
