"""The process table through psutil, for systems without Linux's /proc (macOS, the BSDs).

The same functions as :mod:`bgr.proc.procfs`, slower (psutil is imported on first use) and, where
the system cannot pin a pid the way a pidfd does, racy by the microseconds between a check and a
signal. A start token is psutil's ``create_time`` to the hundredth of a second.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from bgr.models import Scan


def boot_id() -> str:
    """Unknown outside Linux: persisted clock values are checked for plausibility instead."""
    return ""


def start_token(pid: int) -> str | None:
    """A string that differs for every process that ever had this pid (None if it does not exist)."""
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return None


def is_alive(pid: int | None, token: str | None) -> bool:
    """True only if ``pid`` still is the process with this start token, and not a zombie."""
    if not pid or not token:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        return f"{proc.create_time():.2f}" == token and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pgid_of(pid: int) -> int | None:
    """The process group of ``pid``, or None when it is gone."""
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def group_members(pgid: int) -> list[int]:
    """Live members of process group ``pgid``."""
    import psutil

    members = (p.pid for p in psutil.process_iter() if pgid_of(p.pid) == pgid)
    return [pid for pid in members if is_alive(pid, start_token(pid))]


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` that are still attached to it."""
    return scan(()).descendants(pid)


def scan(markers: Iterable[str]) -> Scan:
    """One pass over the process table: who is whose child, and which live pids carry each of
    ``markers`` (``KEY=value`` environment entries)."""
    import psutil

    found: dict[str, list[int]] = {marker: [] for marker in markers}
    children: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid", "environ", "status"]):
        if proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        children.setdefault(proc.info.get("ppid") or 0, []).append(proc.pid)
        env = proc.info.get("environ") or {}
        for marker, pids in found.items():
            key, _, wanted = marker.partition("=")
            if env.get(key) == wanted:
                pids.append(proc.pid)
    return Scan(children=children, marked=found)


def marked_pids(markers: Iterable[str]) -> dict[str, list[int]]:
    """Live pids whose environment holds one of ``markers`` (``KEY=value``), per marker."""
    return scan(markers).marked


def alive_groups(pgids: Iterable[int]) -> set[int]:
    """Which of ``pgids`` still have a live member."""
    return {pgid for pgid in set(pgids) if group_members(pgid)}


def become_subreaper() -> bool:
    """Not available here: orphaned descendants go to init (``bgr NAME`` says how it tracks)."""
    return False


def inherited_zombies() -> list[int]:
    """None here: without a subreaper no orphan is ever ours."""
    return []


def environ_value(pid: int, key: str) -> str | None:
    """The value of ``key`` in the environment of ``pid`` (None: absent or unreadable)."""
    import psutil

    try:
        return psutil.Process(pid).environ().get(key)
    except psutil.Error:
        return None


def environ_overwritten(pid: int) -> bool:
    """True when ``pid``'s environment reads as empty (a program that wrote over it)."""
    import psutil

    try:
        return not psutil.Process(pid).environ()
    except psutil.Error:
        return False


def group_marked(pgid: int, marker: str) -> list[int]:
    """Live members of process group ``pgid`` whose environment holds ``marker``."""
    return [pid for pid in marked_pids([marker])[marker] if pgid_of(pid) == pgid]


def group_activity(pgid: int) -> tuple[float, bool]:
    """CPU seconds used by the live members of process group ``pgid``, and whether any of them is
    running right now."""
    import psutil

    cpu, running = 0.0, False
    for pid in group_members(pgid):
        try:
            proc = psutil.Process(pid)
            times = proc.cpu_times()
            cpu += times.user + times.system
            running = running or proc.status() in (psutil.STATUS_RUNNING, psutil.STATUS_DISK_SLEEP)
        except psutil.Error:
            continue
    return cpu, running


def group_usage(pgids: Iterable[int]) -> dict[int, tuple[int, float]]:
    """Resident bytes and CPU seconds summed over each process group."""
    import psutil

    wanted = set(pgids)
    totals: dict[int, tuple[int, float]] = {}
    if not wanted:
        return totals
    for proc in psutil.process_iter():
        pgid = pgid_of(proc.pid)
        if pgid not in wanted:
            continue
        try:
            rss = proc.memory_info().rss
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total_rss, total_cpu = totals.get(pgid, (0, 0.0))
        totals[pgid] = (total_rss + rss, total_cpu + times.user + times.system)
    return totals


def send_signal(pid: int, token: str, sig: int) -> bool:
    """Signal the process pinned by (pid, token). False if it is gone or not ours (never escalate)."""
    if not is_alive(pid, token):
        return False
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
