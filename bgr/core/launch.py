"""Use cases that launch: start and restart, and the guard's restart and exit bookkeeping.

Each one opens the registry, takes the per-name lock around check → spawn → record (so concurrent
``bgr --name same`` calls give one process and one row), and keeps database transactions tiny: nothing
slow happens while the database is locked. The CLI, the Python API and ``bgr-guard`` all come here;
stopping and forgetting are in ``teardown``, the read-only queries in ``status``.
"""

from __future__ import annotations

import time

from bgr import paths
from bgr.core import definition
from bgr.core.queries import is_running
from bgr.core.teardown import stop_records
from bgr.errors import AlreadyRunning, SpawnError
from bgr.models import Desired, FreedPort, ProcessInfo, ProcessRecord, StartRequest, StartResult, Status
from bgr.proc import spawn, stopper
from bgr.proc.locks import name_lock
from bgr.proc.ports import instance_pids, kill_listeners, listeners_on, listening_ports
from bgr.proc.stopper import DEFAULT_GRACE
from bgr.store import Registry, open_registry

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: see bgr/record.py
if TYPE_CHECKING:
    from typing import Any

# How long a start watches its child by default: long enough for the shell's own quick failures
# (a syntax error, a command that fails at once: 2-6 ms here), short enough that a start stays
# fast. A command the shell cannot find or execute (127, 126) is waited for whatever the window:
# see spawn.cannot_exec. A crash during the program's own startup (a Python import error: 30-150
# ms) needs `--wait`.
STARTUP_WINDOW = 0.01
# How long to wait for a child that is sure to exit 127/126 (it takes ~2 ms on an idle machine).
_CERTAIN_FAILURE_WAIT = 2.0
_TAIL_LINES = 10


def _declared_ports(record: ProcessRecord) -> set[int]:
    value = record.child_env().get("PORT", "")
    return {int(value)} if value.isdigit() and 0 < int(value) < 65536 else set()


def _launch(
    reg: Registry,
    record: ProcessRecord,
    existing: ProcessRecord | None,
    *,
    reason: str,
    backup_logs: bool,
) -> ProcessRecord:
    """Spawn ``record`` and store the new instance. Caller holds the name lock."""
    _check_writable(reg)
    if existing is not None and backup_logs:
        from bgr.logfiles import backups

        backups.move_to_backup(existing.stdout, existing.name, "out")
        if existing.stderr != existing.stdout:
            backups.move_to_backup(existing.stderr, existing.name, "err")
    definition.check_log_directories(record)
    started = spawn.spawn(
        name=record.name,
        command=record.command,
        directory=record.directory,
        stdout=record.stdout,
        stderr=record.stderr,
        overlay=record.child_env(),
        search_path=record.search_path,
        group=record.group,
    )
    launched = record._replace(
        desired=Desired.RUNNING,
        pid=started.identity.pid,
        pgid=started.identity.pgid,
        start_token=started.identity.token,
        instance=started.identity.instance,
        started_at=started.started_at,
        stopped_at=None,
        exit_code=None,
        restarts=record.restarts + (1 if existing is not None else 0),
        events=definition.with_event(existing, reason, f"pid {started.pid}"),
    )
    try:
        return reg.put(launched)
    except BaseException:
        # An instance nobody recorded could never be stopped by bgr: take it down again.
        _abandon(started)
        raise


def _check_writable(reg: Registry) -> None:
    """Fail before anything is stopped, pulled, moved or spawned when the registry cannot be
    written (locked, read-only): bgr would otherwise act and then be unable to record it."""
    with reg.transaction():
        pass


def _abandon(started: spawn.Spawned) -> None:
    """Kill a just-spawned instance (its group, which cannot be reused while we hold the unreaped
    leader) and reap it."""
    leader = stopper.Target(started.pid, started.identity.token or "")
    stopper.stop_targets([stopper.StopTarget(pgid=started.identity.pgid, members=(leader,))], 0)
    spawn.wait_exit(started.pid, 1.0)


def _watch_startup(reg: Registry, record: ProcessRecord, window: float) -> None:
    """Report a child that dies inside the startup window, with its stderr tail; keep the row."""
    if window <= 0 or record.pid is None:
        return
    search_path = spawn.child_path(record.child_env(), record.search_path)
    if spawn.cannot_exec(record.command, record.directory, search_path):
        window = max(window, _CERTAIN_FAILURE_WAIT)
    # The window counts from the spawn: recording the row already used part of it.
    elapsed = time.time() - (record.started_at or time.time())
    code = spawn.wait_exit(record.pid, min(window, max(0.0, window - elapsed)))
    if code is None:
        return
    reg.update(record.name, instance=record.instance, exit_code=code, stopped_at=time.time())
    from bgr.logfiles import reading

    tail = "".join(reading.tail(record.stderr, _TAIL_LINES)).rstrip("\n")
    if code == 127:
        what = "command not found (exit 127)"
    elif code == 126:
        what = "command not executable or directory unusable (exit 126)"
    elif code > 128:
        what = f"killed by signal {code - 128}"
    else:
        what = f"exit code {code}"
    raise SpawnError(
        f"{record.name} exited right after starting: {what}; the definition is kept "
        f"(fix it, then `bgr {record.name} --restart`)",
        details=tail,
    )


def _free_ports(ports: set[int], grace: float) -> tuple[FreedPort, ...]:
    if not ports:
        return ()
    listeners = listeners_on(ports)
    stopped = kill_listeners(listeners, grace)
    return tuple(FreedPort(li.port, li.pid, li.command) for li in stopped)


def start(
    request: StartRequest,
    *,
    db: str | None = None,
    grace: float = DEFAULT_GRACE,
    startup_window: float = STARTUP_WINDOW,
) -> StartResult:
    """Start (or, with ``force``, replace) a named process. Returns once it is launched.

    A name that is running is refused without ``force``. A stopped or crashed name is started again
    with its stored definition, updated by whatever the request sets.
    """
    name = paths.validate_name(request.name)
    with open_registry(db) as reg:
        with name_lock(name):
            existing = reg.get(name)
            record = definition.build(existing, request)
            running = existing is not None and is_running(existing)
            if running and not request.force:
                assert existing is not None
                raise AlreadyRunning(
                    f"{name} is already running (pid {existing.pid}); "
                    f"use `bgr {name} --restart` or add --force"
                )
            _check_writable(reg)
            pulled = _pull(record) if record.fetch else None
            ports: set[int] = set()
            if request.force:
                ports = _declared_ports(record)
                if running and existing is not None:
                    ports |= set(listening_ports(instance_pids(existing.identity)))
            if running and existing is not None:
                stop_records([existing], grace)
            freed = _free_ports(ports, grace) if request.force else ()
            reason = "started" if existing is None else ("restarted" if running else "started again")
            launched = _launch(reg, record._replace(guard={}), existing, reason=reason, backup_logs=True)
        _watch_startup(reg, launched, startup_window)
        return StartResult(info=_started(launched), replaced=running, freed=freed, pulled=pulled)


def _started(record: ProcessRecord) -> ProcessInfo:
    # It survived the startup window (or it would have raised): running. No /proc scan for figures
    # nobody prints right after a start (bgr NAME shows them).
    return ProcessInfo(record=record, status=Status.RUNNING, exit_code=None)


def _pull(record: ProcessRecord) -> str:
    from bgr import git

    return git.pull_if_clean(record.directory).summary


def restart(
    name: str,
    *,
    db: str | None = None,
    grace: float = DEFAULT_GRACE,
    startup_window: float = STARTUP_WINDOW,
    force: bool = False,
    pull: bool = True,
) -> StartResult:
    """Stop the process if it runs, re-read its TOML config, and start it with its stored definition.

    ``pull=False`` skips the ``--fetch`` pull (bgr-guard restarts after a pull it just did)."""
    name = paths.validate_name(name)
    with open_registry(db) as reg:
        reg.require(name)
    return (
        start(StartRequest(name=name, force=True), db=db, grace=grace, startup_window=startup_window)
        if force
        else _restart(name, db, grace, startup_window, pull=pull)
    )


def _restart(
    name: str, db: str | None, grace: float, startup_window: float, *, pull: bool = True
) -> StartResult:
    with open_registry(db) as reg:
        with name_lock(name):
            existing = reg.require(name)
            record = definition.build(existing, StartRequest(name=name))
            _check_writable(reg)
            pulled = _pull(record) if record.fetch and pull else None
            running = is_running(existing)
            if running:
                stop_records([existing], grace)
            launched = _launch(reg, record._replace(guard={}), existing, reason="restarted", backup_logs=True)
        _watch_startup(reg, launched, startup_window)
        return StartResult(info=_started(launched), replaced=running, pulled=pulled)


def guard_restart(
    name: str, dead_instance: str | None, *, db: str | None = None, guard_state: dict[str, Any]
) -> ProcessRecord | None:
    """Restart on behalf of bgr-guard: only if the row still wants to run and still describes the
    dead instance the guard saw. A concurrent --stop/--delete/--restart wins, so this returns None.

    Logs are appended to, not moved: a crash loop would otherwise scatter its output over backups.
    The stored definition is re-used as is (no config re-read, no git pull).
    """
    with open_registry(db) as reg, name_lock(name):
        current = reg.get(name)
        if (
            current is None
            or current.desired is not Desired.RUNNING
            or current.instance != dead_instance
            or is_running(current)
        ):
            return None
        return _launch(
            reg,
            current._replace(guard=guard_state),
            current,
            reason="restarted by guard",
            backup_logs=False,
        )


def record_exit(name: str, instance: str, exit_code: int | None, *, db: str | None = None) -> None:
    """Note that an instance died (used by the guard, which may know the exit code)."""
    with open_registry(db) as reg:
        reg.update(name, instance=instance, exit_code=exit_code, stopped_at=time.time())
