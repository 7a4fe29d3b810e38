"""Who an instance is, and whether it still lives. A pid alone is never trusted.

An instance is pinned by its leader's pid plus a *start token* (see :mod:`bgr.proc.host`), its
process group, and the ``BGR_INSTANCE=<uuid>`` marker every process it starts carries in its
environment, so that descendants which left the group with setsid are found too. Zombies count as
dead. :class:`bgr.models.Identity` carries the four together; a registry row gives one with
``record.identity``.
"""

from __future__ import annotations

from collections.abc import Iterable

from bgr.models import Identity
from bgr.proc import host

INSTANCE_KEY = "BGR_INSTANCE"


def marker(identity: Identity) -> str | None:
    """The ``BGR_INSTANCE=<uuid>`` an instance's processes carry, or None for an unknown one."""
    return None if identity.instance is None else f"{INSTANCE_KEY}={identity.instance}"


def leader_alive(identity: Identity) -> bool:
    """True while the instance's leader (the recorded pid) is the process we started."""
    return host.is_alive(identity.pid, identity.token)


def instance_alive(identity: Identity) -> bool:
    """True while the instance's leader lives, or its process group still holds processes of ours.

    /bin/sh -c forks the command rather than exec-ing it (Debian's dash), so killing the recorded pid
    can leave the real program running in the group: that instance is still running, and a restart
    would start a second copy. The group number cannot be reused while any member exists.
    """
    if leader_alive(identity):
        return True
    return bool(marked_in_group(identity))


def marked_in_group(identity: Identity) -> list[int]:
    """Live members of the instance's process group that carry its marker."""
    pgid, needle = identity.pgid, marker(identity)
    if not pgid or pgid <= 1 or needle is None:
        return []
    return host.group_marked(pgid, needle)


def marked_pids(instances: Iterable[str]) -> dict[str, list[int]]:
    """Live pids carrying ``BGR_INSTANCE=<uuid>``, per instance uuid: one pass for many instances.

    This is how a stop finds descendants that called setsid (they left the process group) and orphans
    of a crashed CLI. Other users' processes are unreadable and so never found: not ours to signal.
    """
    by_marker = host.marked_pids(f"{INSTANCE_KEY}={i}" for i in instances)
    return {marker.partition("=")[2]: pids for marker, pids in by_marker.items()}
