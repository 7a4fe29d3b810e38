"""The process table of this machine: the one place that decides which platform bgr runs on.

Linux answers from /proc directly (:mod:`bgr.proc.procfs`): the list command asks about every row
and must stay fast. Elsewhere psutil answers the same questions (:mod:`bgr.proc.portable`).
Everything else in bgr asks this module and never branches on the platform itself.
"""

from __future__ import annotations

import sys

LINUX = sys.platform.startswith("linux")

if LINUX:
    from bgr.proc.procfs import (
        alive_groups,
        become_subreaper,
        boot_id,
        descendants,
        environ_overwritten,
        environ_value,
        group_activity,
        group_marked,
        group_members,
        group_usage,
        inherited_zombies,
        is_alive,
        marked_pids,
        pgid_of,
        scan,
        send_signal,
        start_token,
    )
else:  # pragma: no cover (Linux runs the tests)
    from bgr.proc.portable import (
        alive_groups,
        become_subreaper,
        boot_id,
        descendants,
        environ_overwritten,
        environ_value,
        group_activity,
        group_marked,
        group_members,
        group_usage,
        inherited_zombies,
        is_alive,
        marked_pids,
        pgid_of,
        scan,
        send_signal,
        start_token,
    )

__all__ = [
    "LINUX",
    "alive_groups",
    "become_subreaper",
    "boot_id",
    "descendants",
    "environ_overwritten",
    "environ_value",
    "group_activity",
    "group_marked",
    "group_members",
    "group_usage",
    "inherited_zombies",
    "is_alive",
    "marked_pids",
    "pgid_of",
    "scan",
    "send_signal",
    "start_token",
]
