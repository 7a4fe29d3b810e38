"""Listening ports: the ports an instance listens on, and the processes listening on given ports.

``bgr NAME`` shows the first; ``--force`` uses the second to free the ports a new instance needs.
Both ask psutil (``net_connections``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from bgr.models import Identity
from bgr.proc import host, identity, stopper
from bgr.record import Record


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


def instance_pids(instance: Identity) -> list[int]:
    """Live pids of one instance (leader, group, marked escapees), for ports and stats."""
    marked = identity.marked_pids([instance.instance]) if instance.instance else {}
    target = stopper.collect_targets(instance, marked)
    pids = {m.pid for m in target.members}
    if target.pgid:
        pids.update(host.group_members(target.pgid))
    return sorted(pids)


class Listener(Record):
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
        token = host.start_token(conn.pid)
        if token:
            found[(conn.laddr.port, conn.pid)] = Listener(conn.laddr.port, conn.pid, command, token)
    return list(found.values())


def kill_listeners(listeners: list[Listener], grace: float) -> list[Listener]:
    """Stop exactly these pinned listener processes (TERM, grace, KILL); return those that went away."""
    targets = [stopper.StopTarget(pgid=None, members=(stopper.Target(li.pid, li.token),)) for li in listeners]
    _, leftover = stopper.stop_targets(targets, grace)
    return [li for i, li in enumerate(listeners) if i not in leftover]
