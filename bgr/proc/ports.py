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
    seen = identity.scan([instance.instance] if instance.instance else [])
    target = stopper.collect_targets(instance, seen)
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


class Listeners(Record):
    """Who listens on some ports: the current user's processes, and anyone else's."""

    own: tuple[Listener, ...]
    foreign: tuple[tuple[int, int | None, str], ...]  # (port, pid or None when hidden, owner)


def listeners_on(ports: Iterable[int]) -> Listeners:
    """The processes that LISTEN on any of ``ports``: the current user's, and other users'.

    Connected clients are never listed. Other users' sockets show without a pid to a non-root
    caller (psutil reports pid=None); a root caller sees them and still tells them apart by uid.
    """
    import psutil

    wanted = set(ports)
    own: dict[tuple[int, int], Listener] = {}
    foreign: dict[tuple[int, int | None], str] = {}
    if not wanted:
        return Listeners((), ())
    uid = os.geteuid()
    for conn in psutil.net_connections(kind="inet"):
        if not conn.laddr or conn.laddr.port not in wanted or not _is_listener(conn):
            continue
        port = conn.laddr.port
        if conn.pid is None:
            foreign[(port, None)] = "another user"
            continue
        if conn.pid == os.getpid():
            continue
        try:
            proc = psutil.Process(conn.pid)
            owner = proc.uids().real
            command = " ".join(proc.cmdline()) or proc.name()
        except psutil.Error:
            continue
        if owner != uid:
            foreign[(port, conn.pid)] = f"uid {owner}"
            continue
        token = host.start_token(conn.pid)
        if token:
            own[(port, conn.pid)] = Listener(port, conn.pid, command, token)
    hidden = [
        (port, pid, who)
        for (port, pid), who in sorted(foreign.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))
    ]
    return Listeners(tuple(own.values()), tuple(hidden))


def kill_listeners(listeners: list[Listener], grace: float) -> list[Listener]:
    """Stop exactly these pinned listener processes (TERM, grace, KILL); return those that went away."""
    targets = [stopper.StopTarget(pgid=None, members=(stopper.Target(li.pid, li.token),)) for li in listeners]
    _, leftover = stopper.stop_targets(targets, grace)
    return [li for i, li in enumerate(listeners) if i not in leftover]
