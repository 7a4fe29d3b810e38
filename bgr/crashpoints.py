"""Named points where a test can make bgr (or bgr-guard) die, as a SIGKILL or a power cut would.

``BGR_CRASH_AT=launch:spawned bgr --name web ...`` kills that bgr right after it spawned the
instance and before it recorded it. The variable is read only here, at these points, and never
passed on to the processes bgr starts. Tests kill at every point and check that nothing is left
that the registry cannot account for (see ``bgr.core.launch.recover``).
"""

from __future__ import annotations

import os

from bgr import signals

VARIABLE = "BGR_CRASH_AT"
POINTS = (
    "launch:intent",  # the intent (name, new instance id) is recorded; nothing is spawned yet
    "launch:spawned",  # the instance runs; the registry does not know its pid yet
    "launch:recorded",  # the instance is recorded; the start window has not begun
    "stop:marked",  # desired=stopped is recorded; nothing is signalled yet
)


def reached(point: str) -> None:
    """Die here if ``$BGR_CRASH_AT`` names this point."""
    if os.environ.get(VARIABLE) == point:
        os.kill(os.getpid(), signals.SIGKILL)
