"""Read-only queries: the status and live figures of one process or of all, and where its logs are.

Status is derived, never stored: running while the instance lives (its leader, or processes of its
group carrying its marker); otherwise stopped when the user said so, else what the guard decided
(backoff, fatal) or how it ended (exited, crashed). Listing is the hot path (scripts poll it): this
module imports none of the spawn, lock and stop machinery, and psutil only for one process's ports.
"""

from __future__ import annotations

import time

from bgr import paths
from bgr.errors import LockHeld, NoRegistry, NotFound, RegistryError
from bgr.models import Desired, ProcessInfo, ProcessRecord, Status
from bgr.proc import host, identity
from bgr.store import Registry, open_registry

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from collections.abc import Sequence


def _record_pending(reg: Registry) -> None:
    """Record what a full disk kept an earlier stop from writing, now that it may be possible."""
    if reg.full is None and reg.layout.has_pending():
        from bgr.core import pending

        pending.replay(reg)


def settled(reg: Registry, record: ProcessRecord) -> ProcessRecord:
    """``record``, or what it is once settled: an intent its crashed starter left behind (what it
    spawned is adopted), or a leader that is gone while the instance lives on (its eldest live
    process leads now). The common row, with neither, costs one look at its leader."""
    if record.intent:
        if host.is_alive(record.intent.get("pid"), record.intent.get("token")):
            return record  # a start in progress
    elif record.pid is None or identity.leader_alive(record.identity) or not is_running(record):
        return record
    from bgr.core import launch
    from bgr.proc.locks import name_lock

    try:
        with name_lock(reg.layout, record.name, timeout=0):
            current = reg.get(record.name)
            if current is not None and current.intent:
                return launch.recover(reg, current) or record
            if current is not None:
                return launch.follow_in(reg, current) or current
    except (LockHeld, RegistryError):
        pass
    return record


def is_running(record: ProcessRecord) -> bool:
    """True while the record's instance lives: its leader, or marked processes in its group."""
    return identity.instance_alive(record.identity)


def _status(record: ProcessRecord, alive: bool) -> Status:
    if alive:
        return Status.RUNNING
    if record.intent:
        return Status.STARTING
    if record.desired is Desired.STOPPED:
        return Status.STOPPED
    if record.schedule.get("cron"):
        return Status.SCHEDULED
    phase = record.guard.get("phase")
    if phase == "fatal":
        return Status.FATAL
    if phase == "backoff":
        return Status.BACKOFF
    # An unknown code (it died while no bgr was its parent) is no evidence of a crash.
    return Status.EXITED if record.exit_code in (0, None) else Status.CRASHED


def inspect(record: ProcessRecord, *, details: bool = False) -> ProcessInfo:
    """Status and live figures for one record."""
    alive = is_running(record)
    info = ProcessInfo(record=record, status=_status(record, alive), exit_code=record.exit_code)
    if not alive:
        return info
    usage = host.group_usage([record.pgid] if record.pgid else [])
    memory, cpu = usage.get(record.pgid or 0, (None, 0.0))
    if not details:
        return info._replace(memory_rss=memory)
    from bgr.proc import ports  # psutil, and the stopper's target search: only for details

    pids = ports.instance_pids(record.identity)
    uptime = time.time() - (record.started_at or time.time())
    cpu_percent = 100.0 * cpu / uptime if uptime > 0 else None
    return info._replace(memory_rss=memory, cpu_percent=cpu_percent, ports=tuple(ports.listening_ports(pids)))


def get(name: str, *, db: str | None = None, details: bool = True) -> ProcessInfo:
    """Everything known about one process: status, identity, figures, ports."""
    name = paths.validate_name(name)
    with open_registry(db) as reg:
        _record_pending(reg)
        info = inspect(settled(reg, reg.require(name)), details=details)
        remember_ports(reg, info)
    return info


def remember_ports(reg: Registry, info: ProcessInfo) -> None:
    """Add the ports the instance listens on to the ones it was seen on (what ``--force`` frees).
    Best effort: a registry that cannot be written (full, read-only) just does not learn them."""
    record = info.record
    seen = set(record.seen_ports) | set(info.ports)
    if seen != set(record.seen_ports):
        try:  # noqa: SIM105 (contextlib.suppress: an import of contextlib on every call)
            reg.update(record.name, instance=record.instance, seen_ports=tuple(sorted(seen)))
        except RegistryError:
            pass


def list_processes(
    *, db: str | None = None, group: str | None = None, missing_ok: bool = True
) -> list[ProcessInfo]:
    """Every registered process (or one group's), with status and memory, sorted by name; none
    when there is no registry yet (``missing_ok=False``: NoRegistry)."""
    try:
        with open_registry(db) as reg:
            _record_pending(reg)
            records = [settled(reg, r) for r in reg.all(group)]
    except NoRegistry:
        if missing_ok:
            return []
        raise
    alive = {r.name: is_running(r) for r in records}
    usage = host.group_usage(r.pgid for r in records if alive[r.name] and r.pgid)
    infos = []
    for record in records:
        info = ProcessInfo(
            record=record, status=_status(record, alive[record.name]), exit_code=record.exit_code
        )
        if alive[record.name]:
            info = info._replace(memory_rss=usage.get(record.pgid or 0, (None, 0.0))[0])
        infos.append(info)
    return infos


def select(
    names: Sequence[str] = (), *, group: str | None = None, everything: bool = False, db: str | None = None
) -> list[str]:
    """The names an action is for: ``names`` (each must exist, checked before anything is done),
    ``group``'s (NotFound when it has none: likely a typo) or, with ``everything``, all of them
    (none without a registry; otherwise NoRegistry)."""
    wanted = [paths.validate_name(n) for n in names]
    try:
        with open_registry(db) as reg:
            for name in wanted:
                reg.require(name)
            if wanted:
                return list(dict.fromkeys(wanted))
            if everything or group is None:
                return reg.names()
            found = reg.names(group)
            if not found:
                raise NotFound(empty_group(group, reg.groups()))
            return found
    except NoRegistry:
        if everything and not wanted:
            return []
        raise


def empty_group(group: str, groups: Sequence[str]) -> str:
    """What to say about a group with no processes."""
    known = f"the groups are {', '.join(groups)}" if groups else "no process has a group yet"
    return f"no processes in group {group!r} ({known}; set one with --group or BGR_GROUP)"


def groups(*, db: str | None = None) -> list[str]:
    """Every group that has a process (none without a registry)."""
    try:
        with open_registry(db) as reg:
            return reg.groups()
    except NoRegistry:
        return []


def log_paths(name: str, *, db: str | None = None, stream: str = "both") -> list[tuple[str, str]]:
    """The log files of one process: ``[("stdout", path), ("stderr", path)]`` or one of them."""
    name = paths.validate_name(name)
    with open_registry(db) as reg:
        record = reg.require(name)
    chosen = []
    if stream in ("both", "stdout"):
        chosen.append(("stdout", record.stdout))
    if stream in ("both", "stderr") and (record.stderr != record.stdout or stream == "stderr"):
        chosen.append(("stderr", record.stderr))
    return chosen


def logs(
    name: str, *, db: str | None = None, stream: str = "both", lines: int | None = None
) -> dict[str, str]:
    """The last ``lines`` lines (all when None) of a process's logs, per stream, decoded leniently."""
    from bgr.logfiles import reading

    return {
        label: "".join(reading.tail(path, lines)) for label, path in log_paths(name, db=db, stream=stream)
    }
