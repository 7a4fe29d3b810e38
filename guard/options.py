"""What one bgr-guard run was asked to do: its target, its intervals, its limits. Pure data.

``bgr-guard`` parses its command line into :class:`GuardOptions`; the jobs and the scheduler only
read it. Durations are seconds (floats), sizes bytes.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from bgr.guard_api import DEFAULT_GRACE
from guard.policy import PolicyConfig

DEFAULT_INTERVAL = 30.0
DEFAULT_MAX_LOG_SIZE = 10 * 1024**2
DEFAULT_KEEP = 10
DEFAULT_PULL_EVERY = 300.0
# A failing pull (dirty tree, diverged branch, unreachable remote) is retried after pull_every,
# then twice as late each time, up to this: a broken checkout should not be hammered all day.
MAX_PULL_WAIT = 3600.0


class TargetKind(StrEnum):
    """What a guard watches: one name, every process, or one group."""

    NAME = "name"
    ALL = "all"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class Target:
    """``Target(NAME, "web")``, ``Target(ALL)``, ``Target(GROUP, "api")``."""

    kind: TargetKind
    value: str = ""

    def describe(self) -> str:
        if self.kind is TargetKind.ALL:
            return "every process"
        if self.kind is TargetKind.GROUP:
            return f"group {self.value}"
        return self.value

    def lock_name(self, db: str | Path) -> str:
        """The guard's lock file name: unique per target and registry.

        It starts with ``@``, which no process name may, so it never collides with the per-name
        lock files in the same directory; the registry hash keeps guards of two registries apart.
        """
        tag = f"{zlib.crc32(os.fsencode(db)):08x}"
        what = self.kind.value if self.kind is TargetKind.ALL else f"{self.kind.value}-{self.value}"
        return f"@guard-{what}-{tag}.lock"


@dataclass(frozen=True, slots=True)
class GuardOptions:
    """Everything a guard run needs; the defaults are the documented ones."""

    target: Target
    interval: float = DEFAULT_INTERVAL
    once: bool = False
    db: str | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    max_memory: int | None = None  # bytes of resident memory over the process group
    restart_every: float | None = None
    max_log_size: int = DEFAULT_MAX_LOG_SIZE
    keep: int = DEFAULT_KEEP
    rotate_every: float | None = None  # None: every check interval
    pull_every: float = DEFAULT_PULL_EVERY
    grace: float = DEFAULT_GRACE
    on_event: str | None = None  # a shell command run when any guarded process crashes, goes
    # fatal or turns unhealthy (guard/hooks.py)
    # Where the exit watcher cannot hold a pidfd (not Linux, or out of file descriptors), it
    # checks liveness this often.
    poll_interval: float = 0.05

    @property
    def rotation_interval(self) -> float:
        return self.rotate_every if self.rotate_every is not None else self.interval
