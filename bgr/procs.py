"""The operating-system side: process identity, liveness, stopping trees, live figures, listening ports.

A PID alone is never trusted. An instance is pinned by its pid plus a *start token* (on Linux the boot id
and the start time in clock ticks from /proc/<pid>/stat, exact; elsewhere psutil's create_time), and every
child carries ``BGR_INSTANCE=<uuid>`` in its environment so a stop also finds descendants that left the
process group with setsid. Zombies count as dead. Before a signal goes to a single pid, a pidfd pins it so
the pid cannot be recycled between the check and the kill.

Linux paths read /proc directly because the list command must stay within a few milliseconds; psutil is
imported lazily for the slower questions (ports, other platforms).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

LINUX = sys.platform.startswith("linux")
_POLL_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of /proc/<pid>/stat that bgr needs."""

    pid: int
    state: str
    ppid: int
    pgid: int
    start_ticks: int
    rss_pages: int
    cpu_ticks: int

    @property
    def dead(self) -> bool:
        return self.state in ("Z", "X", "x")


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


@cache
def _page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


@cache
def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def read_stat(pid: int) -> ProcStat | None:
    """Parse /proc/<pid>/stat (Linux), or None when the process does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=fields[0].decode(),
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        start_ticks=int(fields[19]),
        rss_pages=int(fields[21]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
    )


def start_token(pid: int) -> str | None:
    """A string that differs for every process that ever had this pid (None if it does not exist)."""
    if LINUX:
        stat = read_stat(pid)
        return None if stat is None else f"{_boot_id()}:{stat.start_ticks}"
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return None


def is_alive(pid: int | None, token: str | None) -> bool:
    """True only if ``pid`` still is the process we started (same start token) and not a zombie."""
    if not pid or not token:
        return False
    if LINUX:
        stat = read_stat(pid)
        return stat is not None and not stat.dead and f"{_boot_id()}:{stat.start_ticks}" == token
    import psutil

    try:
        proc = psutil.Process(pid)
        return f"{proc.create_time():.2f}" == token and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def instance_alive(pid: int | None, pgid: int | None, token: str | None, instance: str | None) -> bool:
    """True while the instance's leader lives, or its process group still holds processes of ours.

    /bin/sh -c forks the command rather than exec-ing it (Debian's dash), so killing the recorded pid
    can leave the real program running in the group: that instance is still running, and a restart
    would start a second copy. The group number cannot be reused while any member exists.
    """
    if is_alive(pid, token):
        return True
    if not pgid or pgid <= 1 or not instance:
        return False
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    # The leader is gone but the group is not: orphans of ours, or a stranger reusing the number.
    return bool(group_marked(pgid, instance))


def group_marked(pgid: int, instance: str) -> list[int]:
    """Live members of process group ``pgid`` that carry ``BGR_INSTANCE=<instance>``."""
    if not LINUX:
        return [p for p in marked_pids([instance])[instance] if _pgid_of(p) == pgid]
    needle = f"BGR_INSTANCE={instance}".encode()
    found = []
    for stat in all_stats():
        if stat.pgid != pgid:
            continue
        try:
            with open(f"/proc/{stat.pid}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(stat.pid)
        except OSError:
            continue
    return found


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def all_stats() -> list[ProcStat]:
    """One pass over /proc (Linux): every live process's stat."""
    result = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None and not stat.dead:
                result.append(stat)
    return result


def marked_pids(instances: Iterable[str]) -> dict[str, list[int]]:
    """Live pids whose environment carries ``BGR_INSTANCE=<uuid>``, per instance.

    This is how a stop finds descendants that called setsid (they left the process group) and orphans
    of a crashed CLI. Other users' processes are unreadable and so never found: not ours to signal.
    """
    wanted = {f"BGR_INSTANCE={i}".encode(): i for i in instances}
    found: dict[str, list[int]] = {i: [] for i in wanted.values()}
    if not wanted:
        return found
    if not LINUX:
        import psutil

        for proc in psutil.process_iter(["environ"]):
            env = proc.info.get("environ") or {}
            instance = env.get("BGR_INSTANCE")
            if instance in found:
                found[instance].append(proc.pid)
        return found
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        for var in environ.split(b"\0"):
            if var in wanted:
                found[wanted[var]].append(int(entry))
                break
    return found


@dataclass(frozen=True, slots=True)
class Target:
    """One process being stopped, pinned by its start token."""

    pid: int
    token: str


@dataclass(frozen=True, slots=True)
class StopTarget:
    """Everything that belongs to one instance: its process group and its marked processes."""

    pgid: int | None
    members: tuple[Target, ...]


def collect_targets(
    pid: int | None,
    pgid: int | None,
    token: str | None,
    instance: str | None,
    marked: dict[str, list[int]],
) -> StopTarget:
    """Find the live processes of one instance: the leader, its group, marked escapees, children."""
    members: dict[int, Target] = {}

    def add(candidate: int) -> None:
        candidate_token = start_token(candidate)
        if candidate_token and candidate not in members and is_alive(candidate, candidate_token):
            members[candidate] = Target(candidate, candidate_token)

    leader_alive = is_alive(pid, token)
    if leader_alive and pid is not None and token is not None:
        members[pid] = Target(pid, token)
        with contextlib.suppress(ImportError):
            import psutil

            # Children that scrubbed their environment but are still attached to the leader.
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(pid).children(recursive=True):
                    add(child.pid)
    for candidate in marked.get(instance or "", []):
        add(candidate)
    # The group is ours to signal only while something we can vouch for is in it: the leader, or a
    # process carrying our marker. Otherwise the pgid may belong to a stranger by now. A marked
    # escapee that left the group (setsid) vouches for nothing there: check membership.
    vouched = leader_alive or any(_pgid_of(m) == pgid for m in members)
    group = pgid if vouched else None
    return StopTarget(pgid=group, members=tuple(members.values()))


def _send(target: Target, sig: int) -> bool:
    """Signal one pinned process. False if it is gone or not ours (EPERM: never escalate)."""
    pidfd = -1
    try:
        if LINUX:
            pidfd = os.pidfd_open(target.pid)
        # With the pidfd open the pid cannot be reused, so this check is not racy.
        if not is_alive(target.pid, target.token):
            return False
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(target.pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    except OSError as exc:
        if exc.errno in (errno.ESRCH, errno.EPERM):
            return False
        raise
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _signal_target(target: StopTarget, sig: int) -> None:
    if target.pgid and target.pgid > 1:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(target.pgid, sig)
    for member in target.members:
        _send(member, sig)


def _group_alive(pgid: int | None) -> bool:
    if not pgid or pgid <= 1:
        return False
    if LINUX:
        return any(s.pgid == pgid for s in all_stats())
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _remaining(target: StopTarget) -> list[int]:
    alive = [m.pid for m in target.members if is_alive(m.pid, m.token)]
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


def tree_rss_by_group(pgids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """Resident bytes and CPU ticks summed over each process group (one /proc pass, Linux)."""
    wanted = set(pgids)
    totals: dict[int, tuple[int, int]] = {}
    if not wanted or not LINUX:
        return totals
    for stat in all_stats():
        if stat.pgid in wanted:
            rss, cpu = totals.get(stat.pgid, (0, 0))
            totals[stat.pgid] = (rss + stat.rss_pages * _page_size(), cpu + stat.cpu_ticks)
    return totals


def tree_rss(pid: int) -> int | None:
    """Resident bytes of a process and its descendants (portable, psutil)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def listening_ports(pids: Iterable[int]) -> list[int]:
    """TCP/UDP ports on which any of ``pids`` listens."""
    import psutil

    wanted = set(pids)
    if not wanted:
        return []
    ports: set[int] = set()
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="inet"):
            if conn.pid in wanted and conn.laddr and _is_listener(conn):
                ports.add(conn.laddr.port)
    return sorted(ports)


def _is_listener(conn: object) -> bool:
    import psutil

    status = getattr(conn, "status", "")
    # UDP sockets have no LISTEN state; a bound UDP socket with no peer is the listener.
    return status == psutil.CONN_LISTEN or (status == psutil.CONN_NONE and not getattr(conn, "raddr", None))


def instance_pids(pid: int | None, pgid: int | None, token: str | None, instance: str | None) -> list[int]:
    """Live pids of one instance (leader, group, marked escapees), for ports and stats."""
    marked = marked_pids([instance]) if instance else {}
    target = collect_targets(pid, pgid, token, instance, marked)
    pids = {m.pid for m in target.members}
    if target.pgid and LINUX:
        pids.update(s.pid for s in all_stats() if s.pgid == target.pgid)
    return sorted(pids)


@dataclass(frozen=True, slots=True)
class Listener:
    """A process of the current user listening on a port."""

    port: int
    pid: int
    command: str
    token: str


def listeners_on(ports: Iterable[int]) -> list[Listener]:
    """Processes owned by the current user that LISTEN on any of ``ports``.

    Connected clients are never returned, and neither are other users' processes (psutil reports
    their sockets with pid=None; a root caller still filters by uid).
    """
    import psutil

    wanted = set(ports)
    found: dict[tuple[int, int], Listener] = {}
    if not wanted:
        return []
    uid = os.geteuid()
    for conn in psutil.net_connections(kind="inet"):
        if conn.pid is None or not conn.laddr or conn.laddr.port not in wanted:
            continue
        if not _is_listener(conn) or conn.pid == os.getpid():
            continue
        try:
            proc = psutil.Process(conn.pid)
            if proc.uids().real != uid:
                continue
            command = " ".join(proc.cmdline()) or proc.name()
        except psutil.Error:
            continue
        token = start_token(conn.pid)
        if token:
            found[(conn.laddr.port, conn.pid)] = Listener(conn.laddr.port, conn.pid, command, token)
    return list(found.values())


def kill_listeners(listeners: list[Listener], grace: float) -> list[Listener]:
    """Stop exactly these pinned listener processes (TERM, grace, KILL); return those that went away."""
    targets = [StopTarget(pgid=None, members=(Target(li.pid, li.token),)) for li in listeners]
    _, leftover = stop_targets(targets, grace)
    return [li for i, li in enumerate(listeners) if i not in leftover]
