"""The operating-system side of identity: who a pid is, whether an instance lives, live figures.

A PID alone is never trusted. An instance is pinned by its pid plus a *start token* (on Linux the boot id
and the start time in clock ticks from /proc/<pid>/stat, exact; elsewhere psutil's create_time), and every
child carries ``BGR_INSTANCE=<uuid>`` in its environment so a stop also finds descendants that left the
process group with setsid. Zombies count as dead. Stopping is in ``stopper``, ports in ``ports``.

Linux paths read /proc directly because the list command must stay within a few milliseconds; psutil is
imported lazily for the slower questions (other platforms).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable
from functools import cache

from bgr.record import Record

LINUX = sys.platform.startswith("linux")


class ProcStat(Record):
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


def _read_small(path: str) -> bytes:
    """One read(2) of a small /proc file: a third of the cost of open()/read() through io."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""
    finally:
        os.close(fd)


def read_stat(pid: int) -> ProcStat | None:
    """Parse /proc/<pid>/stat (Linux), or None when the process does not exist."""
    data = _read_small(f"/proc/{pid}/stat")
    if not data:
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
        return [p for p in marked_pids([instance])[instance] if pgid_of(p) == pgid]
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


def pgid_of(pid: int) -> int | None:
    """The process group of ``pid``, or None when it is gone."""
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


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (children, grandchildren, …) that are still attached to it."""
    if not LINUX:
        import psutil

        try:
            return [child.pid for child in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    children: dict[int, list[int]] = {}
    for stat in all_stats():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in found:
                found.append(child)
                pending.append(child)
    return found


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
