"""Stopping instances: find every process of each, SIGTERM them all, wait the grace, SIGKILL the rest.

An instance's targets are its leader (pinned by pid and start token, see ``procs``), its process
group while something we can vouch for is in it, and the processes carrying its ``BGR_INSTANCE``
marker (descendants that left the group with setsid). Before a signal goes to a single pid, a pidfd
pins it so the pid cannot be recycled between the check and the kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from bgr.models import Identity
from bgr.proc import host
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
    """Everything that belongs to one instance: its process group and its marked processes."""

    pgid: int | None
    members: tuple[Target, ...]


def collect_targets(identity: Identity, marked: dict[str, list[int]]) -> StopTarget:
    """Find the live processes of one instance: the leader, its group, marked escapees, children.

    ``marked`` is ``identity.marked_pids`` for (at least) this instance: one /proc pass for many.
    """
    members: dict[int, Target] = {}

    def add(candidate: int) -> None:
        candidate_token = host.start_token(candidate)
        if candidate_token and candidate not in members and host.is_alive(candidate, candidate_token):
            members[candidate] = Target(candidate, candidate_token)

    pid, token, pgid = identity.pid, identity.token, identity.pgid
    leader_alive = host.is_alive(pid, token)
    if leader_alive and pid is not None and token is not None:
        members[pid] = Target(pid, token)
        # Children that scrubbed their environment but are still attached to the leader.
        for child in host.descendants(pid):
            add(child)
    for candidate in marked.get(identity.instance or "", []):
        add(candidate)
    # The group is ours to signal only while something we can vouch for is in it: the leader, or a
    # process carrying our marker. Otherwise the pgid may belong to a stranger by now. A marked
    # escapee that left the group (setsid) vouches for nothing there: check membership.
    vouched = leader_alive or any(host.pgid_of(m) == pgid for m in members)
    group = pgid if vouched else None
    return StopTarget(pgid=group, members=tuple(members.values()))


def _signal_target(target: StopTarget, sig: int) -> None:
    if target.pgid and target.pgid > 1:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(target.pgid, sig)
    for member in target.members:
        host.send_signal(member.pid, member.token, sig)


def _group_alive(pgid: int | None) -> bool:
    # Members, not kill(-pgid, 0): zombies still answer that, and they are dead.
    return bool(pgid and pgid > 1 and host.group_members(pgid))


def _remaining(target: StopTarget) -> list[int]:
    alive = [m.pid for m in target.members if host.is_alive(m.pid, m.token)]
    if not alive and _group_alive(target.pgid):
        alive.append(-(target.pgid or 0))  # a group member we did not pin still runs
    return alive


def _wait_gone(targets: list[StopTarget], deadline: float) -> list[StopTarget]:
    pending = targets
    while pending:
        pending = [t for t in pending if _remaining(t)]
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
        _signal_target(target, signal.SIGTERM)
        # A stopped (SIGSTOP) process cannot act on SIGTERM until continued.
        _signal_target(target, signal.SIGCONT)
    pending = _wait_gone(targets, time.monotonic() + grace)
    killed = {targets.index(t) for t in pending}
    for target in pending:
        _signal_target(target, signal.SIGKILL)
    still = _wait_gone(pending, time.monotonic() + 2.0)
    leftover = {targets.index(t): _remaining(t) for t in still}
    return killed, leftover
