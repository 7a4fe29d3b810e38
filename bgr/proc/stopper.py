"""Stopping instances: find every process of each, SIGTERM them all, wait the grace, SIGKILL the rest.

An instance's targets are its leader (pinned by pid and start token, see ``identity``), its process
group while something we can vouch for is in it, its recorded members (daemons that left the group)
and their descendants, its cgroup, and the processes carrying its markers: ``BGR_INSTANCE`` (this
instance) and ``BGR_OWNER`` (any instance of the name, so an older one a crash left behind goes too).
Before a signal goes to a single pid, a pidfd pins it so the pid cannot be recycled between the check
and the kill. Many instances are stopped together: one grace period, one pass over the process table
per poll.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable

from bgr import signals
from bgr.models import Identity, Scan
from bgr.proc import cgroups, host
from bgr.record import Record

# SIGTERM → SIGKILL: long enough for a server to finish its requests and flush, short enough
# that a stuck one does not hold a restart for long.
DEFAULT_GRACE = 5.0
_POLL_SECONDS = 0.01


class Target(Record):
    """One process being stopped, pinned by its start token."""

    pid: int
    token: str


class StopTarget(Record):
    """Everything that belongs to one instance: its process group, its pinned processes, its cgroups."""

    pgid: int | None
    members: tuple[Target, ...]
    cgroups: tuple[str, ...] = ()


def collect_targets(identity: Identity, seen: Scan, *, also: Iterable[int] = ()) -> StopTarget:
    """Find the live processes of one instance: the leader and what is attached to it, recorded
    members and theirs, processes carrying its marker, and ``also`` (other processes of its name).

    ``seen`` is ``identity.scan`` for (at least) this instance: one pass over /proc for many.
    """
    members: dict[int, Target] = {}

    def add(candidate: int, with_children: bool = True) -> None:
        candidate_token = host.start_token(candidate)
        if candidate_token and candidate not in members and host.is_alive(candidate, candidate_token):
            members[candidate] = Target(candidate, candidate_token)
            if with_children:
                # Children that scrubbed their environment but are still attached.
                for child in seen.descendants(candidate):
                    add(child, with_children=False)

    pid, token, pgid = identity.pid, identity.token, identity.pgid
    leader_alive = host.is_alive(pid, token)
    if leader_alive and pid is not None and token is not None:
        add(pid)
    for member_pid, member_token in identity.members:
        if host.is_alive(member_pid, member_token):
            add(member_pid)
    for candidate in [*seen.marked.get(identity.instance or "", []), *also]:
        add(candidate)
    # The group is ours to signal only while something we can vouch for is in it: the leader, or a
    # process carrying our marker. Otherwise the pgid may belong to a stranger by now. A marked
    # escapee that left the group (setsid) vouches for nothing there: check membership.
    vouched = leader_alive or any(host.pgid_of(m) == pgid for m in members)
    group = pgid if vouched else None
    own = (identity.cgroup,) if identity.cgroup else ()
    return StopTarget(pgid=group, members=tuple(members.values()), cgroups=own)


def _signal_target(target: StopTarget, sig: int) -> None:
    if target.pgid and target.pgid > 1:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(target.pgid, sig)
    for member in target.members:
        host.send_signal(member.pid, member.token, sig)
    for path in target.cgroups:
        if sig == signals.SIGKILL:
            cgroups.kill(path)
        else:
            cgroups.signal_all(path, sig)


def _remaining(target: StopTarget, live_groups: set[int]) -> list[int]:
    alive = [m.pid for m in target.members if host.is_alive(m.pid, m.token)]
    if not alive and target.pgid in live_groups:
        alive.append(-(target.pgid or 0))  # a group member we did not pin still runs
    for path in target.cgroups:
        if cgroups.populated(path):
            alive.extend(p for p in cgroups.procs(path) if p not in alive)
    return alive


def _live_groups(targets: list[StopTarget]) -> set[int]:
    # Members, not kill(-pgid, 0): zombies still answer that, and they are dead. One pass for all.
    return host.alive_groups(t.pgid for t in targets if t.pgid and t.pgid > 1)


def _wait_gone(targets: list[int], all_targets: list[StopTarget], deadline: float) -> list[int]:
    """Poll until the targets (indexes) are gone or the deadline passes; those still there."""
    pending = targets
    while pending:
        groups = _live_groups([all_targets[i] for i in pending])
        pending = [i for i in pending if _remaining(all_targets[i], groups)]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(_POLL_SECONDS)
    return pending


def stop_targets(targets: list[StopTarget], grace: float) -> tuple[set[int], dict[int, list[int]]]:
    """SIGTERM every target at once, wait up to ``grace``, SIGKILL what is left, then verify.

    Returns (indexes of targets that needed SIGKILL, {index: pids still alive at the end}).
    Stopping many instances in parallel costs one grace period, not one per instance.
    """
    for target in targets:
        _signal_target(target, signals.SIGTERM)
        # A stopped (SIGSTOP) process cannot act on SIGTERM until continued.
        _signal_target(target, signals.SIGCONT)
    pending = _wait_gone(list(range(len(targets))), targets, time.monotonic() + grace)
    for index in pending:
        _signal_target(targets[index], signals.SIGKILL)
    still = _wait_gone(pending, targets, time.monotonic() + 2.0)
    groups = _live_groups([targets[i] for i in still])
    leftover = {i: _remaining(targets[i], groups) for i in still}
    for target in targets:
        for path in target.cgroups:
            cgroups.remove(path)
    return set(pending), leftover
