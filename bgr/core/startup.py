"""The start window: watch a new instance until it settles, report what fails at once, follow a daemon.

A start returns as soon as the new instance *settles* (it used no CPU for ``SETTLED_AFTER``: it is
waiting for work, or listening), or after ``--wait`` at the most. If the program died meanwhile, the
start fails with its exit code and the tail of its stderr (the definition is kept), or, for exit 0,
says it finished. If it exited but left processes behind (a server that daemonizes:
``redis-server --daemonize yes``, nginx), the instance now *is* those processes: the eldest becomes
its leader, and the row says it daemonized. Processes that left the instance's process group are
recorded with their start tokens (``members``), so they are known after their environment marker
is gone (programs that set their title overwrite it).
"""

from __future__ import annotations

import os
import time

from bgr.errors import SpawnError
from bgr.models import Identity, ProcessRecord
from bgr.proc import cgroups, command, host, identity, spawn
from bgr.proc.exits import describe_exit
from bgr.record import Record
from bgr.store import Registry

# The longest a start watches its child by default: long enough for the common startup failures
# (a Python import error, "address already in use", npm without a package.json), short enough for
# a start by hand. A command the shell cannot find or execute (127, 126) is waited for whatever
# the window (see command.cannot_exec).
STARTUP_WINDOW = 1.0
# How long an instance must use no CPU at all to count as started: a server blocked in accept(),
# a worker waiting on its queue, `sleep`. A program still importing or crashing is busy.
SETTLED_AFTER = 0.05
# How long to wait for a child that is sure to exit 127/126 (milliseconds on an idle machine).
_CERTAIN_FAILURE_WAIT = 2.0
_POLL = 0.01
# Passes over the process table when all it showed had died meanwhile (see follow).
_LOOKS = 3
TAIL_LINES = 10


class Outcome(Record):
    """How a start went: ``how`` is running (still busy when the window ended), settled, daemonized
    (its launcher exited, leaving it running) or finished (it exited 0 at once: a one-off job)."""

    record: ProcessRecord
    how: str
    after: float  # seconds from the spawn to that answer


def watch(reg: Registry, record: ProcessRecord, window: float) -> Outcome:
    """Watch ``record``'s new instance for at most ``window`` seconds from its spawn (see above)."""
    if window <= 0 or record.pid is None:
        return Outcome(record, "running", 0.0)
    began = record.started_at or time.time()
    search_path = spawn.child_path(record.child_env(), record.search_path)
    certain = command.cannot_exec(record.command, record.directory, search_path)
    deadline = began + (max(window, _CERTAIN_FAILURE_WAIT) if certain else window)
    last, quiet_since = _activity(record.identity), time.time()
    daemonized = False
    while True:
        code = spawn.wait_exit(record.pid, 0)
        now = time.time()
        # Its leader exited: a failure, a finished job, or a launcher that left a daemon. A double
        # fork hands over twice (the first child forks the daemon and exits): follow each step,
        # while this bgr is still the subreaper the orphans come to, and settle only after.
        if code is not None or (daemonized and not identity.leader_alive(record.identity)):
            outcome = exited(reg, record, code, now - began)
            if outcome.how != "daemonized":
                return outcome
            record, daemonized = outcome.record, True
            last, quiet_since = _activity(record.identity), now
            continue
        if daemonized:
            record, moved = _regroup(reg, record)
            if moved:  # judge the group it went to, from now on
                last, quiet_since = _activity(record.identity), now
        usage = _activity(record.identity)
        if usage != last:
            last, quiet_since = usage, now
        elif not certain and now - quiet_since >= SETTLED_AFTER:
            return Outcome(_members(reg, record), "daemonized" if daemonized else "settled", now - began)
        if now >= deadline:
            return Outcome(_members(reg, record), "daemonized" if daemonized else "running", now - began)
        time.sleep(_POLL)


def _regroup(reg: Registry, record: ProcessRecord) -> tuple[ProcessRecord, bool]:
    """The row with the process group its followed leader is in now, and whether that moved. A
    step of a double fork calls setsid after we adopted it: its old group is empty then, and would
    look idle (settled) while the daemon is still on its way."""
    pgid = host.pgid_of(record.pid or 0)
    if pgid is None or pgid == record.pgid:
        return record, False
    updated = reg.update(record.name, instance=record.instance, pgid=pgid)
    return (updated or record._replace(pgid=pgid)), True


def _activity(found: Identity) -> object:
    """Something that changes while the instance works: its CPU time (the cgroup's, in
    microseconds; else its process group's, in clock ticks), or a fresh value while any of it runs."""
    if found.cgroup:
        try:
            with open(os.path.join(found.cgroup, "cpu.stat"), encoding="ascii") as fh:
                return fh.readline()  # "usage_usec N"
        except OSError:
            pass
    cpu, running = host.group_activity(found.pgid or found.pid or 0)
    return time.monotonic() if running else cpu


def _members(reg: Registry, record: ProcessRecord) -> ProcessRecord:
    """The row, with the processes that left the group recorded while they can be told apart."""
    followed = follow(record.identity)
    if followed.members == record.members:
        return record
    return reg.update(record.name, instance=record.instance, members=followed.members) or record


def exited(reg: Registry, record: ProcessRecord, code: int | None, after: float) -> Outcome:
    """What the exit of the instance's leader means (``code`` None: it was not our child, so its
    code is unknown): a daemon to follow, a job that finished (exit 0), or a failed start."""
    followed = follow(record.identity)
    if followed.pid != record.pid and followed.pid is not None:
        detail = (
            f"the launcher (pid {record.pid}) exited with {describe_exit(code)}; following pid {followed.pid}"
        )
        return Outcome(daemonized(reg, record, followed, detail) or record, "daemonized", after)
    ended = reg.update(record.name, instance=record.instance, exit_code=code, stopped_at=time.time())
    if code == 0:
        return Outcome(ended or record, "finished", after)
    raise failed(record, code)


def daemonized(reg: Registry, record: ProcessRecord, followed: Identity, detail: str) -> ProcessRecord | None:
    """Record that the instance now is ``followed`` (its launcher left it running), with an event."""
    return reg.update(
        record.name,
        instance=record.instance,
        event=("daemonized", detail),
        pid=followed.pid,
        pgid=followed.pgid,
        start_token=followed.token,
        members=followed.members,
    )


def follow(found: Identity) -> Identity:
    """The instance as it is now: its leader if alive, else the eldest live process of it (a daemon
    its launcher left), plus the live processes that left the leader's process group.

    Looks in the instance's cgroup when it has one; else at this process's children (a start makes
    bgr a subreaper while it watches, so an orphaned daemon becomes its child, not init's), the
    leader's descendants and the processes carrying the instance's marker.
    """
    leader = found.pid if identity.leader_alive(found) else None  # a reused pid is not ours
    tokens: dict[int, str] = {}
    for _ in range(_LOOKS):
        candidates = _candidates(found, leader)
        for pid in candidates:
            token = host.start_token(pid)
            if pid not in tokens and token and host.is_alive(pid, token):
                tokens[pid] = token
        # A pass over /proc lists the table first and reads it after: a step of a double fork
        # that forks the daemon and exits in between leaves only the dead step in view (a zombie
        # we inherited, not listed as alive). The daemon, forked before that step died, is in
        # the next listing.
        if tokens or not (candidates or host.inherited_zombies()):
            break
    if leader in tokens or not tokens:
        leader, pgid = found.pid, found.pgid
    else:
        leader = min(tokens, key=lambda pid: start_order(tokens[pid]))
        pgid = host.pgid_of(leader)
        spawn.adopt(leader)
    members = tuple(
        (pid, token) for pid, token in sorted(tokens.items()) if pid != leader and host.pgid_of(pid) != pgid
    )
    token = tokens.get(leader or 0, found.token)
    return found._replace(pid=leader, pgid=pgid, token=token, members=members)


def _candidates(found: Identity, leader: int | None) -> list[int]:
    """The pids that may belong to the instance (see follow), alive or not."""
    if found.cgroup:
        return cgroups.procs(found.cgroup)
    seen = identity.scan([found.instance] if found.instance else [])
    return [
        *([leader] if leader else []),
        *(seen.descendants(leader) if leader else []),
        # Nothing else can join a group while any member lives (its id is that member's pid).
        *(host.group_members(found.pgid) if found.pgid else []),
        *_orphans(seen.children.get(os.getpid(), []), found.instance),
        *seen.marked.get(found.instance or "", []),
        *(pid for pid, _ in found.members),
    ]


def _orphans(children: list[int], instance: str | None) -> list[int]:
    """Children of ours that we did not spawn, inherited as a subreaper from this instance: they
    carry its marker, or their environment was overwritten (a daemon that set its title). Any other
    child (a long-lived caller's own subprocess) has an environment of its own, without the marker."""
    found = []
    for pid in children:
        if spawn.is_our_child(pid):
            continue
        marker = host.environ_value(pid, identity.INSTANCE_KEY)
        if marker == instance or (marker is None and host.environ_overwritten(pid)):
            found.append(pid)
    return found


def start_order(token: str) -> float:
    """A start token's start time, to order processes by age (both platforms' tokens end in it)."""
    try:
        return float(token.rpartition(":")[2])
    except ValueError:
        return 0.0


def failed(record: ProcessRecord, code: int | None) -> SpawnError:
    """The error of a start whose instance died: its exit and the tail of its stderr."""
    from bgr.logfiles import reading

    tail = "".join(reading.tail(record.stderr, TAIL_LINES)).rstrip("\n")
    return SpawnError(
        f"{record.name} exited right after starting: {describe_exit(code)}; the definition is kept "
        f"(fix it, then `bgr {record.name} --restart`)",
        details=tail,
    )
