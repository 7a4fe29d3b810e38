"""bgr.proc.exits: an exit code in words (pure)."""

from __future__ import annotations

import signal

import pytest

from bgr.proc import exits


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (None, "exit code unknown"),
        (0, "exit code 0"),
        (3, "exit code 3"),
        (127, "exit code 127 (command not found)"),
        (126, "exit code 126 (command not executable)"),
        (128, "exit code 128"),
        (137, "killed by signal 9 (SIGKILL)"),
        (143, "killed by signal 15 (SIGTERM)"),
        (-9, "killed by signal 9 (SIGKILL)"),
        (-11, "killed by signal 11 (SIGSEGV)"),
        (255, "exit code 255"),
    ],
)
def test_describe_exit(code: int | None, text: str) -> None:
    assert exits.describe_exit(code) == text


def test_describe_exit_signal_without_a_name() -> None:
    # Real-time signals between SIGRTMIN and SIGRTMAX have no enum member of their own.
    unnamed = next(n for n in range(1, signal.NSIG) if n not in set(signal.Signals))
    assert exits.describe_exit(-unnamed) == f"killed by signal {unnamed}"
