"""What one bgr-guard run was asked to do: its target, its intervals, its limits. Pure data.

``bgr-guard`` parses its command line into :class:`GuardOptions`; the jobs and the scheduler only
read it. Durations are seconds (floats) here; :func:`parse_duration` turns ``"90s"``, ``"5m"``,
``"1.5h"`` or plain ``"30"`` into them.
"""

from __future__ import annotations

import math
import os
import re
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from bgr.errors import UsageError
from guard.policy import PolicyConfig

DEFAULT_INTERVAL = 30.0
DEFAULT_MAX_LOG_SIZE = 10 * 1024**2
DEFAULT_KEEP = 10
DEFAULT_PULL_EVERY = 300.0
DEFAULT_GRACE = 5.0
# A failing pull (dirty tree, diverged branch, unreachable remote) is retried after pull_every,
# then twice as late each time, up to this: a broken checkout should not be hammered all day.
MAX_PULL_WAIT = 3600.0

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str = "duration") -> float:
    """``"30"`` / ``"0.5"`` (seconds), ``"500ms"``, ``"90s"``, ``"5m"``, ``"1h"``, ``"1d"`` → seconds > 0."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise UsageError(f"{option} takes a duration such as 30, 0.5, 90s, 5m or 1h, not {text!r}")
    seconds = float(match[1]) * _UNITS[(match[2] or "s").lower()]
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"{option} must be more than 0, not {text!r}")
    return seconds


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
    # Where the exit watcher cannot hold a pidfd (not Linux, or out of file descriptors), it
    # checks liveness this often.
    poll_interval: float = 0.05

    @property
    def rotation_interval(self) -> float:
        return self.rotate_every if self.rotate_every is not None else self.interval
