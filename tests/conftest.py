"""Isolation for every test: a private state directory, and no process left behind.

Every process a test starts (through bgr or directly) inherits ``BGR_HOME=<this test's tmp dir>``;
that is how the teardown finds exactly this test's processes, including grandchildren that called
setsid, without touching anything else on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def processes_with_env(key: str, value: str) -> list[int]:
    """PIDs (not zombies) whose environment holds ``key=value``."""
    needle = f"{key}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def reap_zombie_children() -> None:
    """Collect exited children of the test process itself (in-process starts make it a parent)."""
    from bgr.proc import spawn

    spawn.reap_spawned()


@pytest.fixture(autouse=True)
def bgr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point BGR_HOME (and HOME) at a fresh directory; afterwards kill and report leftovers."""
    home = tmp_path / "bgr-home"
    monkeypatch.setenv("BGR_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.delenv("DB_NAME", raising=False)
    monkeypatch.delenv("BGR_GROUP", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    (tmp_path / "user-home").mkdir()
    yield home
    leftovers = processes_with_env("BGR_HOME", str(home))
    for pid in leftovers:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    survivors = leftovers
    while survivors and time.monotonic() < deadline:
        reap_zombie_children()
        time.sleep(0.02)
        survivors = processes_with_env("BGR_HOME", str(home))
    reap_zombie_children()
    assert not survivors, f"processes survived SIGKILL at teardown: {survivors}"
