"""Exit statuses: a ``waitpid`` status as the shell reports it, and a code in words.

Codes follow the shell's convention: 0-255 from ``exit``, 128+N for death by signal N (``-N``, as
``subprocess`` reports it, is accepted too). None means unknown: the process was not our child
when it died, so the operating system gave its status to someone else.
"""

from __future__ import annotations

import os

_HINTS = {126: " (command not executable)", 127: " (command not found)"}


def exit_status(wait_status: int) -> int:
    """A waitpid status as the shell reports it: the exit code, or 128+N for death by signal N."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)


def signal_of(code: int | None) -> int:
    """The signal that ended a process with this code, or 0 when it exited by itself."""
    if code is None:
        return 0
    import signal  # its enums cost a listing, which rarely shows an exit

    return -code if code < 0 else code - 128 if 128 < code < 128 + signal.NSIG else 0


def describe_exit(code: int | None) -> str:
    """``exit code 3``, ``exit code 127 (command not found)``, ``killed by signal 9 (SIGKILL)``,
    ``exit code unknown``."""
    if code is None:
        return "exit code unknown"
    signum = signal_of(code)
    if signum <= 0:
        return f"exit code {code}{_HINTS.get(code, '')}"
    import signal

    try:
        return f"killed by signal {signum} ({signal.Signals(signum).name})"
    except ValueError:
        return f"killed by signal {signum}"
