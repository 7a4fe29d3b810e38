"""A cgroup (v2) per instance, where bgr may make one: everything an instance starts stays in it.

A process cannot leave its cgroup by forking, ``setsid`` or overwriting its environment, so an
instance's cgroup holds its daemons too (``redis-server --daemonize yes``, nginx's master and
workers): a stop empties it, and the instance runs while it is populated. The instance's launcher
joins the cgroup itself, before it runs anything (see ``spawn``).

Where: ``$BGR_CGROUP`` names a cgroup2 directory bgr may create cgroups in (a delegated subtree, e.g.
one made with ``systemd-run --user -p Delegate=yes``); ``BGR_CGROUP=off`` turns cgroups off;
unset, bgr uses the root of the cgroup2 hierarchy when it can write there (root). Otherwise there
are no cgroups, and instances are tracked by markers and recorded pids instead (``bgr NAME`` says
which). Instance cgroups live in ``<base>/bgr-<uid>/<registry id>/<name>/<instance>``: one folder
per name, so what a start or a stop looks for among a name's instances is a listing of that name's
few cgroups, not of every name's (a cost per event, not per registry size).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from functools import cache

_OFF = ("off", "0", "no", "false")


@cache
def _mount() -> tuple[str, tuple[str, ...]] | None:
    """Where the cgroup2 hierarchy is mounted (``/sys/fs/cgroup``, ``/sys/fs/cgroup/unified``), and
    its mount options."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
            return parse_mounts(fh)
    except OSError:  # no /proc/self/mounts: not Linux
        return None


def parse_mounts(lines: Iterable[str]) -> tuple[str, tuple[str, ...]] | None:
    """The first cgroup2 mount in /proc/mounts lines: (where, options)."""
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[2] == "cgroup2":
            return fields[1], tuple(fields[3].split(","))
    return None


def _mount_root() -> str | None:
    mount = _mount()
    return None if mount is None else mount[0]


def slow_joins() -> bool:
    """True when the cgroup2 hierarchy is mounted without ``favordynmods`` (Linux 6.0+). Joining a
    cgroup then waits for an RCU grace period: a start's ``echo 0 > cgroup.procs`` took 6-20 ms on
    Linux 6.18 with 2 cores, against ~0.3 ms with the option (measured; bench/harness.py measures
    it on the machine at hand, since a kernel may keep the fast mode once it was ever enabled)."""
    mount = _mount()
    return mount is not None and "favordynmods" not in mount[1]


def base() -> str | None:
    """The directory instance cgroups are made under, or None when bgr cannot make any."""
    configured = os.environ.get("BGR_CGROUP", "")
    if configured.lower() in _OFF:
        return None
    root = configured or _mount_root()
    if root is None or not os.path.isfile(os.path.join(root, "cgroup.procs")):
        return None
    return root if os.access(root, os.W_OK) else None


def registry_dir(registry_id: str) -> str | None:
    """``<base>/bgr-<uid>/<registry id>`` (not created), or None without cgroups."""
    root = base()
    if root is None or not registry_id:
        return None
    return os.path.join(root, f"bgr-{os.geteuid()}", registry_id)


def name_dir(registry_id: str, name: str) -> str | None:
    """``<base>/bgr-<uid>/<registry id>/<name>`` (not created), or None without cgroups."""
    parent = registry_dir(registry_id)
    return None if parent is None else os.path.join(parent, name)


def instance_path(registry_id: str, name: str, instance: str) -> str | None:
    """Where the cgroup of ``instance`` is (or would be); None without cgroups."""
    folder = name_dir(registry_id, name)
    return None if folder is None or not instance else os.path.join(folder, instance)


def create(registry_id: str, name: str, instance: str) -> str | None:
    """Make the cgroup of a new instance; None when cgroups are unavailable or refused."""
    path = instance_path(registry_id, name, instance)
    if path is None:
        return None
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError:  # not delegated after all, or the kernel refused (max depth, descendants)
        return None
    return path


def of_name(registry_id: str, name: str) -> list[str]:
    """Every instance cgroup of ``name`` in this registry, populated or not."""
    folder = name_dir(registry_id, name)
    if folder is None:
        return []
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    # The folder's own interface files (cgroup.procs, cpu.stat, ...) all have a dot; instance ids none.
    return [os.path.join(folder, e) for e in sorted(entries) if "." not in e]


def remove_empty(registry_id: str, name: str, keep: str | None = None) -> None:
    """Remove the cgroups of ``name``'s instances that are over (rmdir refuses a populated one).

    A stop removes the cgroup it emptied; an instance that died by itself (a crash the guard
    restarts) leaves its cgroup behind, one more per restart of a crash loop, until this runs.
    ``keep``: the instance just started, whose cgroup is empty until its launcher has joined it."""
    for path in of_name(registry_id, name):
        if os.path.basename(path) != keep:
            remove(path)


def procs(path: str | None) -> list[int]:
    """The pids in an instance's cgroup (none when it is gone)."""
    if not path:
        return []
    try:
        with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as fh:
            return [int(line) for line in fh if line.strip()]
    except OSError:
        return []


def populated(path: str | None) -> bool:
    """True while any process is in the cgroup (or in one below it)."""
    if not path:
        return False
    try:
        with open(os.path.join(path, "cgroup.events"), encoding="ascii") as fh:
            return any(line.strip() == "populated 1" for line in fh)
    except OSError:
        return False


def contains(path: str, pid: int) -> bool:
    """True if ``pid`` is in the cgroup at ``path`` now (a pid read from cgroup.procs may be reused)."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return False
    # /proc/PID/cgroup names the cgroup from the root of the hierarchy (of this cgroup namespace).
    root = _mount_root() or ""
    wanted = path[len(root) :] if root and path.startswith(root) else path
    return any(line.startswith("0::") and line[3:] == wanted for line in lines)


def signal_all(path: str, sig: int) -> None:
    """Send ``sig`` to every process in the cgroup, each pinned by a pidfd while it is checked."""
    import signal  # its enums cost a listing, which never signals

    for pid in procs(path):
        with _pinned(pid) as pidfd:
            if pidfd is not None and contains(path, pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    signal.pidfd_send_signal(pidfd, sig)


def kill(path: str) -> None:
    """SIGKILL everything in the cgroup at once (``cgroup.kill``, Linux 5.14), else one by one."""
    try:
        with open(os.path.join(path, "cgroup.kill"), "w", encoding="ascii") as fh:
            fh.write("1")
    except OSError:
        import signal

        signal_all(path, signal.SIGKILL)


def remove(path: str | None) -> None:
    """Remove an instance cgroup once it is empty (a populated one stays)."""
    if path:
        with contextlib.suppress(OSError):
            os.rmdir(path)


def remove_name(registry_id: str, name: str) -> None:
    """Remove a forgotten name's cgroup folder, with the instance cgroups left in it (empty ones;
    the folder stays while any is populated)."""
    remove_empty(registry_id, name)
    remove(name_dir(registry_id, name))


@contextlib.contextmanager
def _pinned(pid: int) -> Iterator[int | None]:
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)
