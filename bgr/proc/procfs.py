"""The process table on Linux, read straight from /proc (the host of :mod:`bgr.proc.host`).

Every ``bgr`` listing asks these questions about every row, so they are answered with one
``read(2)`` per /proc file and one pass over /proc per question, never through psutil.
A start token is the boot id plus the start time in clock ticks (field 22 of
/proc/<pid>/stat): exact, and different for every process that ever had the pid.
"""

from __future__ import annotations

import os

from bgr.record import Record

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Iterable

    from bgr.models import Scan

_PR_SET_CHILD_SUBREAPER = 36
_subreaper: list[bool] = []  # [True] once this process became a subreaper


class ProcStat(Record):
    """The fields of /proc/<pid>/stat that bgr needs."""

    pid: int
    state: str
    ppid: int
    pgid: int
    session: int
    start_ticks: int
    rss_pages: int
    cpu_ticks: int

    @property
    def dead(self) -> bool:
        return self.state in ("Z", "X", "x")


def boot_id() -> str:
    """This boot's id: tags start tokens and persisted clock values, which another boot voids."""
    return _boot_id()


_boot_ids: list[str] = []  # read once: a memo, not functools.cache, whose import costs more


def _boot_id() -> str:
    if not _boot_ids:
        _boot_ids.append(_read_small("/proc/sys/kernel/random/boot_id").decode(errors="replace").strip())
    return _boot_ids[0]


# Constants of the running kernel: sysconf reads them without a system call.
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
    """Parse /proc/<pid>/stat, or None when the process does not exist."""
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
        session=int(fields[3]),
        start_ticks=int(fields[19]),
        rss_pages=int(fields[21]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
    )


def all_stats() -> list[ProcStat]:
    """One pass over /proc: every live process's stat."""
    result = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None and not stat.dead:
                result.append(stat)
    return result


def start_token(pid: int) -> str | None:
    """A string that differs for every process that ever had this pid (None if it does not exist)."""
    stat = read_stat(pid)
    return None if stat is None else f"{_boot_id()}:{stat.start_ticks}"


def is_alive(pid: int | None, token: str | None) -> bool:
    """True only if ``pid`` still is the process with this start token, and not a zombie."""
    if not pid or not token:
        return False
    stat = read_stat(pid)
    return stat is not None and not stat.dead and f"{_boot_id()}:{stat.start_ticks}" == token


def pgid_of(pid: int) -> int | None:
    """The process group of ``pid``, or None when it is gone."""
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def group_exists(pgid: int) -> bool:
    """Whether process group ``pgid`` has any member, zombies included: one kill(2), no /proc pass.

    A group is usually empty when bgr asks (an instance that died, a stop that worked), and a pass
    over /proc costs a read per process on the machine: ask the kernel first, scan only if it says
    yes (the scan is what tells live members from zombies).
    """
    if pgid <= 0:
        return True  # 0 and -1 mean "our group" and "everyone" to kill(2): let the scan answer
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's processes
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live members of process group ``pgid``."""
    if not group_exists(pgid):
        return []
    return [stat.pid for stat in all_stats() if stat.pgid == pgid]


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (children, grandchildren, …) that are still attached to it."""
    return scan(()).descendants(pid)


def _environ(pid: int | str) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read().split(b"\0")
    except OSError:  # gone, or another user's: not ours to signal either way
        return []


def scan(markers: Iterable[str]) -> Scan:
    """One pass over /proc: who is whose child, and which live pids carry each of ``markers``
    (``KEY=value`` environment entries) in their environment."""
    from bgr.models import Scan  # only stops and starts scan; the listing never does

    wanted = {marker.encode(): marker for marker in markers}
    found: dict[str, list[int]] = {marker: [] for marker in wanted.values()}
    children: dict[int, list[int]] = {}
    me = os.getpid()
    for stat in all_stats():
        children.setdefault(stat.ppid, []).append(stat.pid)
        if not wanted or stat.pid == me:
            continue
        for var in _environ(stat.pid):
            if var in wanted:
                found[wanted[var]].append(stat.pid)
    return Scan(children=children, marked=found)


def marked_pids(markers: Iterable[str]) -> dict[str, list[int]]:
    """Live pids whose environment holds one of ``markers`` (``KEY=value``), per marker."""
    return scan(markers).marked


def alive_groups(pgids: Iterable[int]) -> set[int]:
    """Which of ``pgids`` still have a live member (one pass)."""
    wanted = {pgid for pgid in pgids if group_exists(pgid)}
    return {stat.pgid for stat in all_stats() if stat.pgid in wanted} if wanted else set()


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children instead of init's
    (``prctl(PR_SET_CHILD_SUBREAPER)``): a daemon that double-forks stays in view. False if refused.

    The orphans we inherit this way are reaped by ``spawn.reap_spawned`` (see ``inherited_zombies``).
    """
    if _subreaper:
        return True
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        done = bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        done = False
    if done:
        _subreaper.append(True)
    return done


def inherited_zombies() -> list[int]:
    """Dead children of ours from other sessions: orphans inherited as a subreaper.

    Children this process made with ``subprocess`` (GitPython's git) share its session, so their
    exit codes stay theirs to collect; instances bgr spawns, and their descendants, live in
    sessions of their own.
    """
    if not _subreaper:
        return []
    me, session = os.getpid(), os.getsid(0)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None and stat.ppid == me and stat.dead and stat.session != session:
                found.append(stat.pid)
    return found


def environ_value(pid: int, key: str) -> str | None:
    """The value of ``key`` in the environment ``pid`` started with (None: absent or unreadable)."""
    prefix = key.encode() + b"="
    for var in _environ(pid):
        if var.startswith(prefix):
            return var[len(prefix) :].decode(errors="replace")
    return None


def environ_overwritten(pid: int) -> bool:
    """True when the environment area of ``pid`` holds no ``KEY=value`` entry any more: the
    program wrote over it (setproctitle does, to make room for its title)."""
    return not any(b"=" in var for var in _environ(pid))


def group_marked(pgid: int, marker: str) -> list[int]:
    """Live members of process group ``pgid`` whose environment holds ``marker``."""
    needle = marker.encode()
    return [pid for pid in group_members(pgid) if needle in _environ(pid)]


def group_activity(pgid: int) -> tuple[float, bool]:
    """CPU seconds used by the live members of process group ``pgid``, and whether any of them is
    running or in disk wait right now (one pass)."""
    cpu, running = 0.0, False
    for stat in all_stats():
        if stat.pgid == pgid:
            cpu += stat.cpu_ticks / _CLOCK_TICKS
            running = running or stat.state in ("R", "D")
    return cpu, running


def group_usage(pgids: Iterable[int]) -> dict[int, tuple[int, float]]:
    """Resident bytes and CPU seconds summed over each process group, in one pass."""
    wanted = set(pgids)
    totals: dict[int, tuple[int, float]] = {}
    if not wanted:
        return totals
    for stat in all_stats():
        if stat.pgid in wanted:
            rss, cpu = totals.get(stat.pgid, (0, 0.0))
            totals[stat.pgid] = (rss + stat.rss_pages * _PAGE_SIZE, cpu + stat.cpu_ticks / _CLOCK_TICKS)
    return totals


def send_signal(pid: int, token: str, sig: int) -> bool:
    """Signal the process pinned by (pid, token). False if it is gone or not ours (never escalate).

    A pidfd holds the pid while we check the token, so it cannot be recycled in between.
    """
    import signal  # its enums cost a listing, which never signals

    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # gone; or no pidfd support (kernel < 5.3): the same check, racy by microseconds
        return is_alive(pid, token) and _kill(pid, sig)
    try:
        if not is_alive(pid, token):
            return False
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        os.close(pidfd)


def _kill(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
