"""Who an instance is, and whether it still lives. A pid alone is never trusted.

An instance is pinned by its leader's pid plus a *start token* (see :mod:`bgr.proc.host`), its
process group, the processes that left the group (a daemon's setsid) while they could still be
told apart, its cgroup where bgr made one, and two environment markers every process it starts
carries: ``BGR_INSTANCE=<uuid>`` for the instance, ``BGR_OWNER=<registry>:<name>`` for every
instance of a name. Zombies count as dead. :class:`bgr.models.Identity` carries these together; a
registry row gives one with ``record.identity``.
"""

from __future__ import annotations

from bgr.models import Identity, Scan
from bgr.proc import host

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Iterable

INSTANCE_KEY = "BGR_INSTANCE"
OWNER_KEY = "BGR_OWNER"


def marker(identity: Identity) -> str | None:
    """The ``BGR_INSTANCE=<uuid>`` an instance's processes carry, or None for an unknown one."""
    return None if identity.instance is None else f"{INSTANCE_KEY}={identity.instance}"


def owner(registry_id: str, name: str) -> str:
    """The ``BGR_OWNER`` value every instance of ``name`` in this registry carries."""
    return f"{registry_id}:{name}"


def leader_alive(identity: Identity) -> bool:
    """True while the instance's leader (the recorded pid) is the process we started."""
    return host.is_alive(identity.pid, identity.token)


def instance_alive(identity: Identity) -> bool:
    """True while anything of the instance lives: its leader, its cgroup, a recorded member, or a
    process of its group carrying its marker.

    /bin/sh -c forks a compound command rather than exec-ing it (Debian's dash), so killing the
    recorded pid can leave the real program running in the group: that instance is still running,
    and a restart would start a second copy. The group number cannot be reused while any member
    exists. Cheap enough for every row of a listing: no environment is read unless the leader died.
    """
    if leader_alive(identity):
        return True
    if any(host.is_alive(pid, token) for pid, token in identity.members):
        return True
    if identity.cgroup:
        from bgr.proc import cgroups  # only for a row whose leader is gone: not every listing

        # The launcher joins the cgroup before anything of the instance runs, and no process can
        # leave it by forking, setsid or overwriting its environment: an empty cgroup (or one gone,
        # which only an empty one can be) means nothing of the instance lives, and the pass over
        # /proc for marked group members, a read per process on the machine, is not needed.
        return cgroups.populated(identity.cgroup)
    return bool(marked_in_group(identity))


def marked_in_group(identity: Identity) -> list[int]:
    """Live members of the instance's process group that carry its marker."""
    pgid, needle = identity.pgid, marker(identity)
    if not pgid or pgid <= 1 or needle is None:
        return []
    return host.group_marked(pgid, needle)


def scan(instances: Iterable[str] = (), owners: Iterable[str] = ()) -> Scan:
    """One pass over the process table for the processes carrying these instance and owner marks;
    ``Scan.marked`` is keyed by the instance uuid and by the owner value, not the ``KEY=``."""
    markers = {f"{INSTANCE_KEY}={i}": i for i in instances if i}
    markers.update({f"{OWNER_KEY}={o}": o for o in owners})
    seen = host.scan(markers)
    return seen._replace(marked={markers[key]: pids for key, pids in seen.marked.items()})


def marked_pids(instances: Iterable[str]) -> dict[str, list[int]]:
    """Live pids carrying ``BGR_INSTANCE=<uuid>``, per instance uuid: one pass for many instances.

    This is how a stop finds descendants that called setsid (they left the process group) and orphans
    of a crashed CLI. Other users' processes are unreadable and so never found: not ours to signal.
    """
    wanted = list(instances)
    return {i: pids for i, pids in scan(wanted).marked.items() if i in wanted}
