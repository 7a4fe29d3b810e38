"""Use cases that launch: start and restart, the guard's restart, and recovering from a crashed start.

Each one opens the registry, takes the per-name lock around check → spawn → record (so concurrent
``bgr --name same`` calls give one process and one row), and keeps database transactions tiny:
nothing slow happens while the database is locked.

No instance is ever unaccounted for: before it spawns, a launch records its *intent* (the new
instance's id, and who is launching) in the row; the spawn, the cgroup and every process of the
instance carry that id; recording the instance clears the intent in the same write. A bgr or guard
that dies in between leaves the intent behind, and the next one to take the name's lock adopts
what it started (:func:`recover`).
"""

from __future__ import annotations

import contextlib
import os
import time

from bgr import crashpoints, paths
from bgr.core import definition, pending, startup
from bgr.core.queries import is_running
from bgr.errors import AlreadyRunning, BgrError, LockHeld, PortInUse
from bgr.models import (
    Desired,
    FreedPort,
    Identity,
    ProcessInfo,
    ProcessRecord,
    StartRequest,
    StartResult,
    Status,
)
from bgr.proc import cgroups, host, identity, spawn, stopper
from bgr.proc.locks import name_lock
from bgr.proc.stopper import DEFAULT_GRACE
from bgr.record import Record
from bgr.store import Registry, open_registry

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any, TypeGuard


class ExitNote(Record):
    """How bgr-guard saw an instance end: recorded with the restart that follows, in one write.
    Defined here, not in bgr.models: only the guard's restarts use it, and every record class in
    bgr.models is built by every ``bgr`` call."""

    code: int | None  # None: not known (the guard was not its parent)
    at: float  # wall clock, as ``stopped_at``
    detail: str  # for the "exited" event: "killed by signal 9 (SIGKILL) after 3.0s"


STARTUP_WINDOW = startup.STARTUP_WINDOW
# Backups of the logs a (re)start moves aside, kept per name and stream (bgr-guard --keep, too).
DEFAULT_KEEP = 10


def start(
    request: StartRequest,
    *,
    db: str | None = None,
    grace: float = DEFAULT_GRACE,
    startup_window: float | None = None,
) -> StartResult:
    """Start (or, with ``force``, replace) a named process. Returns once it is launched and the
    start window ended (``startup_window``: None for the default, see ``_settle``).

    A name that is running is refused without ``force``. A stopped or crashed name is started again
    with its stored definition, updated by whatever the request sets.
    """
    name = paths.validate_name(request.name)
    with open_registry(db, create=True) as reg:
        pending.replay(reg)
        with name_lock(reg.layout, name) as held:
            try:
                existing = recover(reg, reg.get(name))
                record = definition.build(existing, request, reg.layout)
            except BaseException:
                if reg.get(name) is None:
                    held.forget()  # a name that never came to exist leaves no lock file
                raise
            running = existing is not None and is_running(existing)
            if running and not request.force:
                assert existing is not None
                raise AlreadyRunning(
                    f"{name} is already running (pid {existing.pid}); "
                    f"use `bgr {name} --restart` or add --force"
                )
            _check_writable(reg)
            pending.prepare(reg.layout)  # after validation: bad input leaves no file behind
            if request.cron:  # a new or changed schedule: define the job; the guard runs it
                if existing is not None and running:
                    _stop(reg, existing, grace)
                return _scheduled(reg, record, existing)
            pulled = _pull(record) if record.fetch else None
            ports = _ports_to_free(record, existing, running) if request.force else set()
            _check_ports(ports)  # another user's listener: refused before anything is stopped
            if existing is not None:
                _stop(reg, existing, grace)
            freed = _free_ports(ports, grace)  # what still listens now is a stray of ours
            reason = "started" if existing is None else ("restarted" if running else "started again")
            launched = launch_instance(
                reg, record._replace(guard={}), existing, reason=reason, backup_logs=True
            )
        outcome = _settle(reg, launched, startup_window)
        return _result(outcome, replaced=running, freed=freed, pulled=pulled)


def restart(
    name: str,
    *,
    db: str | None = None,
    grace: float = DEFAULT_GRACE,
    startup_window: float | None = None,
    force: bool = False,
    pull: bool = True,
) -> StartResult:
    """Stop the process if it runs, re-read its TOML config, and start it with its stored definition.

    ``pull=False`` skips the ``--fetch`` pull (bgr-guard restarts after a pull it just did)."""
    name = paths.validate_name(name)
    if force:
        with open_registry(db) as reg:
            reg.require(name)
        return start(StartRequest(name=name, force=True), db=db, grace=grace, startup_window=startup_window)
    with open_registry(db) as reg:
        with name_lock(reg.layout, name):
            existing = recover(reg, reg.require(name))
            assert existing is not None
            record = definition.build(existing, StartRequest(name=name), reg.layout)
            _check_writable(reg)
            pulled = _pull(record) if record.fetch and pull else None
            running = is_running(existing)
            _stop(reg, existing, grace)
            launched = launch_instance(
                reg, record._replace(guard={}), existing, reason="restarted", backup_logs=True
            )
        outcome = _settle(reg, launched, startup_window)
        return _result(outcome, replaced=running, pulled=pulled)


def _scheduled(reg: Registry, record: ProcessRecord, existing: ProcessRecord | None) -> StartResult:
    """Store a --cron job without running it: the guard starts it at each of its times."""
    from bgr.health import schedule

    cron = str(record.schedule["cron"])
    upcoming = schedule.next_time(cron, time.time())
    job = record._replace(
        schedule={**record.schedule, "next_run": upcoming},
        guard={},
        desired=Desired.RUNNING,
        events=definition.with_event(existing, "scheduled", f"cron {cron}"),
    )
    stored = reg.put(job)
    return StartResult(info=ProcessInfo(stored, Status.SCHEDULED, None), how="scheduled")


def _settle(reg: Registry, record: ProcessRecord, window: float | None) -> startup.Outcome:
    """Watch the new instance: until it settles (at most 1 s by default), or, when it has a probe,
    until the probe first passes (at most 30 s by default). ``window`` 0 returns at once."""
    if not record.health:
        return startup.watch(reg, record, STARTUP_WINDOW if window is None else window)
    from bgr.core import ready  # probes: only for processes that have one

    probe = ready.probe_of(record)
    if probe is None or window == 0 or record.pid is None:
        return startup.Outcome(record, "running", 0.0)
    return ready.watch(reg, record, probe, ready.READY_WINDOW if window is None else window)


def guard_restart(
    name: str,
    dead_instance: str | None,
    *,
    db: str | None = None,
    guard_state: dict[str, Any],
    reg: Registry | None = None,
    instance: str | None = None,
    ended: ExitNote | None = None,
) -> ProcessRecord | None:
    """Restart on behalf of bgr-guard: only if the row still wants to run and still describes the
    dead instance the guard saw. A concurrent --stop/--delete/--restart wins, so this returns None.
    Raises ``LockHeld`` at once, without waiting, while a bgr command holds the name: the exit the
    guard saw is most likely its doing, and the guard's exit watcher must never wait on a lock.

    Logs are appended to, not moved: a crash loop would otherwise scatter its output over backups.
    The stored definition is re-used as is (no config re-read, no git pull). ``reg``: an open
    registry to work on (the guard keeps one per thread) instead of a new connection; ``instance``:
    the new instance's id, chosen by the caller so that ``guard_state`` can name it already;
    ``ended``: how the dead instance ended, recorded in the launch's first write rather than in
    one of its own (this is the crash -> running path). The cgroups of dead instances are left
    for :func:`tidy_cgroups`, so that a burst of restarts does not wait on rmdir.
    """
    with contextlib.ExitStack() as stack:
        if reg is None:
            reg = stack.enter_context(open_registry(db))
        stack.enter_context(name_lock(reg.layout, name, timeout=0))
        current = reg.get(name)
        if not _still_the_guards(current, dead_instance) or is_running(current):
            return None
        if ended is not None:
            current = current._replace(
                exit_code=ended.code,
                stopped_at=ended.at,
                events=definition.with_event(current, "exited", ended.detail),
            )
        try:
            return _relaunch_for_guard(reg, current, guard_state, "restarted by guard", instance)
        except BgrError:
            if ended is not None:
                # Refused before its first write (a log directory gone): the exit is still news.
                with contextlib.suppress(BgrError):
                    _note_exit(reg, current, ended)
            raise


def _note_exit(reg: Registry, noted: ProcessRecord, ended: ExitNote) -> None:
    row = reg.get(noted.name)
    if row is not None and row.instance == noted.instance and row.stopped_at != ended.at:
        changes = {"exit_code": ended.code, "stopped_at": ended.at}
        reg.update(noted.name, instance=noted.instance, event=("exited", ended.detail), **changes)


def tidy_cgroups(name: str, *, reg: Registry) -> bool:
    """Remove the cgroups of ``name``'s dead instances, keeping the current one's (its launcher
    may not have joined it yet). False, having done nothing, while a bgr command holds the name."""
    try:
        with name_lock(reg.layout, name, timeout=0):
            current = reg.get(name)
            cgroups.remove_empty(reg.registry_id, name, keep=current.instance if current else None)
    except LockHeld:
        return False
    return True


def guard_replace(
    name: str,
    instance: str | None,
    *,
    db: str | None = None,
    grace: float = DEFAULT_GRACE,
    guard_state: dict[str, Any],
    relaunch: bool,
) -> ProcessRecord | None:
    """Stop the live instance ``instance`` of ``name`` on behalf of bgr-guard (TERM, ``grace``,
    KILL: all of it, as a stop does) and, with ``relaunch``, start it again: a process that turned
    unhealthy. The row keeps wanting to run, and keeps the guard's policy state (``guard_state``),
    unlike ``bgr --restart``, which starts the count afresh. None when a bgr command got in first
    (the row was stopped, deleted, restarted or is mid-operation), as with ``guard_restart``.
    """
    with open_registry(db) as reg, name_lock(reg.layout, name):
        current = reg.get(name)
        if not _still_the_guards(current, instance):
            return None
        _stop(reg, current, grace)
        if not relaunch:
            return reg.update(name, instance=instance, stopped_at=time.time(), guard=guard_state)
        return _relaunch_for_guard(reg, current, guard_state, "restarted (health)", None)


def _relaunch_for_guard(
    reg: Registry, current: ProcessRecord, guard_state: dict[str, Any], reason: str, instance: str | None
) -> ProcessRecord:
    """Start the stored definition again for bgr-guard, with its policy state; logs appended to."""
    return launch_instance(
        reg,
        current._replace(guard=guard_state),
        current,
        reason=reason,
        backup_logs=False,
        by="bgr-guard",
        instance=instance,
        tidy=False,
    )


def _still_the_guards(current: ProcessRecord | None, instance: str | None) -> TypeGuard[ProcessRecord]:
    """True while the row still wants to run and describes the instance the guard acts on, with
    no bgr command in the middle of an operation on it."""
    return (
        current is not None
        and not current.intent
        and current.desired is Desired.RUNNING
        and current.instance == instance
    )


def record_exit(name: str, instance: str, exit_code: int | None, *, db: str | None = None) -> None:
    """Note that an instance died (used by the guard, which may know the exit code)."""
    with open_registry(db) as reg:
        reg.update(name, instance=instance, exit_code=exit_code, stopped_at=time.time())


def recover_name(name: str, *, db: str | None = None) -> ProcessRecord | None:
    """``recover`` for the guard: LockHeld (at once) while a bgr is working on the name."""
    with open_registry(db) as reg, name_lock(reg.layout, name, timeout=0):
        return recover(reg, reg.get(name))


def follow_daemon(record: ProcessRecord, *, db: str | None = None) -> ProcessRecord | None:
    """The row after following an instance whose leader died: None unless some of it lives on (a
    daemon its launcher left behind), in which case the eldest live process is now its leader."""
    with open_registry(db) as reg:
        return follow_in(reg, record)


def follow_in(reg: Registry, record: ProcessRecord) -> ProcessRecord | None:
    """``follow_daemon`` with an open registry."""
    followed = startup.follow(record.identity)
    if followed.pid == record.pid or not identity.leader_alive(followed):
        return None
    detail = f"the launcher (pid {record.pid}) exited; following pid {followed.pid}"
    return startup.daemonized(reg, record, followed, detail)


def recover(reg: Registry, record: ProcessRecord | None) -> ProcessRecord | None:
    """Settle an intent a crashed bgr or guard left in the row; call with the name's lock held.

    Whoever recorded the intent held this lock until it cleared it, so an intent seen under the
    lock is unfinished. Its instance is adopted when any of it runs (found by its marker or its
    cgroup), else the intent is dropped; either way an event says so.
    """
    if record is None or not record.intent:
        return record
    instance = str(record.intent.get("instance", ""))
    seen = identity.scan([instance]) if instance else None
    pids = [] if seen is None else seen.marked.get(instance, [])
    cgroup = cgroups.instance_path(reg.registry_id, record.name, instance)
    cgroup = cgroup if cgroup and os.path.isdir(cgroup) else None
    pids += [p for p in cgroups.procs(cgroup) if p not in pids]
    found = _identity_of(pids, instance, cgroup)
    if found is None:
        cgroups.remove(cgroup)
        event = f"an interrupted {record.intent.get('op', 'start')} left nothing running"
        return (
            reg.update(record.name, intent={}, events=definition.with_event(record, "recovered", event))
            or record
        )
    adopted = record._replace(
        intent={},
        desired=Desired.RUNNING,
        pid=found.pid,
        pgid=found.pgid,
        start_token=found.token,
        instance=instance,
        members=found.members,
        cgroup=cgroup,
        started_at=float(record.intent.get("at") or time.time()),
        stopped_at=None,
        exit_code=None,
    )
    event = f"adopted pid {found.pid}, left running by an interrupted {record.intent.get('op', 'start')}"
    return reg.put(adopted._replace(events=definition.with_event(record, "recovered", event)))


def _identity_of(pids: list[int], instance: str, cgroup: str | None) -> Identity | None:
    """The identity of an instance from its live processes: the eldest is its leader."""
    tokens = {pid: token for pid in pids if (token := host.start_token(pid)) and host.is_alive(pid, token)}
    if not tokens:
        return None
    leader = min(tokens, key=lambda pid: startup.start_order(tokens[pid]))
    pgid = host.pgid_of(leader)
    members = tuple(
        (pid, token) for pid, token in tokens.items() if pid != leader and host.pgid_of(pid) != pgid
    )
    return Identity(leader, pgid, tokens[leader], instance, members, cgroup)


def launch_instance(
    reg: Registry,
    record: ProcessRecord,
    existing: ProcessRecord | None,
    *,
    reason: str,
    backup_logs: bool,
    counts_as_restart: bool = True,
    by: str | None = None,
    instance: str | None = None,
    tidy: bool = True,
) -> ProcessRecord:
    """Record the intent, spawn ``record``, record the new instance. Caller holds the name lock.
    ``by`` names the program that starts it (default: bgr-guard when ``reason`` says so, else bgr);
    ``instance`` the new instance's id (default: a fresh one); ``tidy``: remove the cgroups of the
    name's dead instances afterwards (the guard does that later, see :func:`tidy_cgroups`)."""
    if existing is not None and backup_logs:
        _check_writable(reg)  # nothing is moved aside for a start that could not be recorded
        _move_logs_aside(reg.layout, existing)
    definition.check_log_directories(record)
    instance = instance or spawn.new_instance()
    intent = {
        "op": "restart" if "restarted" in reason else "start",
        "by": by or ("bgr-guard" if "guard" in reason else "bgr"),
        "instance": instance,
        "pid": os.getpid(),
        "token": host.start_token(os.getpid()),
        "at": time.time(),
    }
    reg.put(record._replace(intent=intent))
    crashpoints.reached("launch:intent")
    cgroup = cgroups.create(reg.registry_id, record.name, instance)
    if cgroup is None:
        # Without a cgroup, a daemon that double-forks is reparented to us while we look, not to init.
        host.become_subreaper()
    started = spawn.spawn(
        record, layout=reg.layout, instance=instance, registry_id=reg.registry_id, cgroup=cgroup
    )
    crashpoints.reached("launch:spawned")
    launched = record._replace(
        intent={},
        desired=Desired.RUNNING,
        pid=started.identity.pid,
        pgid=started.identity.pgid,
        start_token=started.identity.token,
        instance=instance,
        members=(),
        cgroup=cgroup,
        started_at=started.started_at,
        stopped_at=None,
        exit_code=None,
        restarts=record.restarts + (1 if existing is not None and counts_as_restart else 0),
        events=definition.with_event(existing, reason, f"pid {started.pid}"),
        health_state=fresh_health(record, started.started_at),
    )
    try:
        recorded = reg.put(launched)
    except BaseException:
        # An instance nobody recorded could never be stopped by bgr: take it down again.
        _abandon(started)
        raise
    crashpoints.reached("launch:recorded")
    if tidy:  # after the spawn: the new instance does not wait for it
        cgroups.remove_empty(reg.registry_id, record.name, keep=instance)
    return recorded


def fresh_health(record: ProcessRecord, started_at: float) -> dict[str, Any]:
    """The health of a new instance: starting, when it has a probe."""
    if not record.health:
        return {}
    from bgr.health import state  # and its probes: only for processes that have one

    return state.fresh(started_at).to_dict()


def _move_logs_aside(layout: paths.Layout, existing: ProcessRecord) -> None:
    from bgr.logfiles import backups

    directory = layout.backup_dir()
    backups.move_to_backup(existing.stdout, existing.name, "out", DEFAULT_KEEP, directory=directory)
    if existing.stderr != existing.stdout:
        backups.move_to_backup(existing.stderr, existing.name, "err", DEFAULT_KEEP, directory=directory)


def _stop(reg: Registry, record: ProcessRecord, grace: float) -> None:
    """Stop the instance a start or restart replaces (teardown: only imported when there is one)."""
    from bgr.core import teardown

    teardown.stop_records([record], grace, reg.registry_id)


def _check_writable(reg: Registry) -> None:
    """Fail before anything is stopped, pulled, moved or spawned when the registry cannot be
    written (locked, read-only, full): bgr would otherwise act and then be unable to record it."""
    with reg.transaction():
        pass


def _abandon(started: spawn.Spawned) -> None:
    """Kill a just-spawned instance (its group, which cannot be reused while we hold the unreaped
    leader, and its cgroup) and reap it."""
    leader = stopper.Target(started.pid, started.identity.token or "")
    cgroup = (started.identity.cgroup,) if started.identity.cgroup else ()
    stopper.stop_targets(
        [stopper.StopTarget(pgid=started.identity.pgid, members=(leader,), cgroups=cgroup)], 0
    )
    spawn.wait_exit(started.pid, 1.0)


def _ports_to_free(record: ProcessRecord, existing: ProcessRecord | None, running: bool) -> set[int]:
    """What "its ports" are: declared with --port, $PORT, seen listening before, listening now."""
    ports = set(record.ports)
    value = record.child_env().get("PORT", "")
    if value.isdigit() and 0 < int(value) < 65536:
        ports.add(int(value))
    if existing is not None:
        ports |= set(existing.seen_ports)
        if running:
            from bgr.proc.ports import instance_pids, listening_ports

            ports |= set(listening_ports(instance_pids(existing.identity)))
    return ports


def _check_ports(ports: set[int]) -> None:
    """PortInUse when another user's process listens on one of ``ports``: bgr never stops those."""
    if not ports:
        return
    from bgr.proc.ports import listeners_on

    foreign = listeners_on(ports).foreign
    if foreign:
        held = ", ".join(f"{port} (pid {pid or '?'}, {who})" for port, pid, who in foreign)
        raise PortInUse(
            f"port {held} is held by another user's process; bgr stops only your own, so nothing was "
            "stopped or started (ask its owner, or pick another port)"
        )


def _free_ports(ports: set[int], grace: float) -> tuple[FreedPort, ...]:
    """Stop the user's own processes that still listen on ``ports`` (a copy started by hand)."""
    if not ports:
        return ()
    from bgr.proc.ports import kill_listeners, listeners_on

    stopped = kill_listeners(list(listeners_on(ports).own), grace)
    return tuple(FreedPort(li.port, li.pid, li.command) for li in stopped)


def _result(
    outcome: startup.Outcome, *, replaced: bool, pulled: str | None, freed: tuple[FreedPort, ...] = ()
) -> StartResult:
    # It survived the startup window (or it would have raised): running, unless it finished. No
    # /proc scan for figures nobody prints right after a start (bgr NAME shows them).
    record = outcome.record
    status = Status.EXITED if outcome.how == "finished" else Status.RUNNING
    info = ProcessInfo(
        record=record, status=status, exit_code=record.exit_code if outcome.how == "finished" else None
    )
    return StartResult(
        info=info, replaced=replaced, freed=freed, pulled=pulled, how=outcome.how, after=outcome.after
    )


def _pull(record: ProcessRecord) -> str:
    from bgr import git

    return git.pull_if_clean(record.directory).summary
