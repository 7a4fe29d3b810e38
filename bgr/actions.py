"""Use cases: start, restart, stop, delete, clean, nuke, inspect, logs.

Each one opens the registry, takes the per-name lock around check → spawn → record (so concurrent
``bgr --name same`` calls give one process and one row), and keeps database transactions tiny: nothing
slow happens while the database is locked. The CLI, the Python API and ``bgr-guard`` all come here.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from bgr import home, procs, spawn
from bgr.errors import AlreadyRunning, SpawnError, UsageError
from bgr.locks import name_lock
from bgr.models import (
    Desired,
    FreedPort,
    ProcessInfo,
    ProcessRecord,
    StartRequest,
    StartResult,
    Status,
    StopResult,
)
from bgr.store import EVENTS_KEPT, Registry, open_registry

TYPE_CHECKING = False  # typing costs 3 ms to import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

DEFAULT_GRACE = 5.0
# How long a start watches its child by default: long enough to report `command not found` (127,
# ~2 ms), "not executable" (126) or a vanished directory, short enough that a start stays fast. A
# crash during the program's own startup (a Python import error: 30-150 ms) needs `--wait`.
STARTUP_WINDOW = 0.02
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TAIL_LINES = 10


def _event(record: ProcessRecord | None, kind: str, detail: str = "") -> list[dict[str, Any]]:
    old = record.events if record else []
    return [*old, {"at": time.time(), "event": kind, "detail": detail}][-EVENTS_KEPT:]


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().absolute())


def _check_directory(directory: str) -> None:
    if not Path(directory).is_dir():
        raise UsageError(f"directory {directory} does not exist; create it or pass --directory")


def _check_env(env: dict[str, str]) -> None:
    for key in env:
        if not ENV_KEY.fullmatch(key):
            raise UsageError(f"invalid environment variable name {key!r} in --env")


def _load_config(directory: str, explicit: str | None) -> tuple[str | None, dict[str, str]]:
    from bgr import config

    path = config.resolve_config(Path(directory), explicit)
    if path is None:
        return None, {}
    return (str(path) if explicit else None), config.load_env(path)


def _definition(existing: ProcessRecord | None, req: StartRequest) -> ProcessRecord:
    """Merge a request into the stored definition (new values win) and validate everything."""
    name = home.validate_name(req.name)
    group = req.group
    if group is not None:
        group = home.validate_name(group, "group")
    _check_env(req.env)
    if existing is None:
        command = req.command
        if command is None:
            raise UsageError(f"no process named {name!r}; give --command to start a new one")
        directory = _absolute(req.directory) if req.directory else os.getcwd()
        out_default, err_default = home.default_log_paths(name)
        record = ProcessRecord(
            name=name,
            directory=directory,
            command=command,
            stdout=_absolute(req.stdout) if req.stdout else str(out_default),
            stderr=_absolute(req.stderr) if req.stderr else str(err_default),
            group=group,
            env=dict(req.env),
            fetch=bool(req.fetch),
            search_path=os.environ.get("PATH"),
        )
    else:
        record = replace(
            existing,
            command=req.command if req.command is not None else existing.command,
            directory=_absolute(req.directory) if req.directory else existing.directory,
            stdout=_absolute(req.stdout) if req.stdout else existing.stdout,
            stderr=_absolute(req.stderr) if req.stderr else existing.stderr,
            group=group if group is not None else existing.group,
            env={**existing.env, **req.env},
            fetch=existing.fetch if req.fetch is None else req.fetch,
            search_path=os.environ.get("PATH") or existing.search_path,
        )
    if not record.command.strip():
        raise UsageError('the command is empty; pass --command "what to run"')
    _check_text(record)
    _check_directory(record.directory)
    # Checked here, before anything is stopped: a --force start must not kill the running instance
    # and then fail to launch the new one.
    _check_log_directories(record)
    explicit = _absolute(req.config) if req.config else record.config_path
    config_path, config_env = _load_config(record.directory, explicit)
    return replace(record, config_path=config_path, config_env=config_env)


def _check_text(record: ProcessRecord) -> None:
    """Refuse bytes that are not UTF-8 (they reach us as surrogate escapes): the registry stores
    text, and writing the row would otherwise fail only after the process was spawned."""
    fields = {
        "command": record.command,
        "directory": record.directory,
        "stdout path": record.stdout,
        "stderr path": record.stderr,
        "PATH": record.search_path or "",
    }
    for what, value in fields.items():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise UsageError(f"the {what} {value!r} is not valid UTF-8; bgr stores it as text") from None


def _check_log_directories(record: ProcessRecord) -> None:
    for path in {record.stdout, record.stderr}:
        if not Path(path).parent.is_dir():
            raise UsageError(f"log directory {Path(path).parent} does not exist; create it first")


def _alive(record: ProcessRecord) -> bool:
    return procs.instance_alive(record.pid, record.pgid, record.start_token, record.instance)


def _declared_ports(record: ProcessRecord) -> set[int]:
    value = record.child_env().get("PORT", "")
    return {int(value)} if value.isdigit() and 0 < int(value) < 65536 else set()


def _stop_records(records: list[ProcessRecord], grace: float) -> list[StopResult]:
    """Stop every live instance in ``records`` at once: one grace period for all of them."""
    marked = procs.marked_pids(r.instance for r in records if r.instance)
    targets = [procs.collect_targets(r.pid, r.pgid, r.start_token, r.instance, marked) for r in records]
    live = [i for i, t in enumerate(targets) if t.members]
    killed, leftover = procs.stop_targets([targets[i] for i in live], grace)
    results = []
    for index, record in enumerate(records):
        if index not in live:
            results.append(StopResult(record.name, was_running=False))
            continue
        position = live.index(index)
        results.append(
            StopResult(
                record.name,
                was_running=True,
                killed=position in killed,
                leftover=tuple(leftover.get(position, ())),
            )
        )
    return results


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
        from bgr import logfiles

        logfiles.move_to_backup(Path(existing.stdout), existing.name, "out")
        if existing.stderr != existing.stdout:
            logfiles.move_to_backup(Path(existing.stderr), existing.name, "err")
    _check_log_directories(record)
    started = spawn.spawn(
        name=record.name,
        command=record.command,
        directory=Path(record.directory),
        stdout=Path(record.stdout),
        stderr=Path(record.stderr),
        overlay=record.child_env(),
        search_path=record.search_path,
        group=record.group,
    )
    launched = replace(
        record,
        desired=Desired.RUNNING,
        pid=started.pid,
        pgid=started.pgid,
        start_token=started.start_token,
        instance=started.instance,
        started_at=started.started_at,
        stopped_at=None,
        exit_code=None,
        restarts=record.restarts + (1 if existing is not None else 0),
        events=_event(existing, reason, f"pid {started.pid}"),
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
    leader = procs.Target(started.pid, started.start_token)
    procs.stop_targets([procs.StopTarget(pgid=started.pgid, members=(leader,))], 0)
    spawn.wait_exit(started.pid, 1.0)


def _watch_startup(reg: Registry, record: ProcessRecord, window: float) -> None:
    """Report a child that dies inside the startup window, with its stderr tail; keep the row."""
    if window <= 0 or record.pid is None:
        return
    code = spawn.wait_exit(record.pid, window)
    if code is None:
        return
    reg.update(record.name, instance=record.instance, exit_code=code, stopped_at=time.time())
    from bgr import logfiles

    tail = "".join(logfiles.tail(Path(record.stderr), _TAIL_LINES)).rstrip("\n")
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
    listeners = procs.listeners_on(ports)
    stopped = procs.kill_listeners(listeners, grace)
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
    name = home.validate_name(request.name)
    with open_registry(db) as reg:
        with name_lock(name):
            existing = reg.get(name)
            record = _definition(existing, request)
            running = existing is not None and _alive(existing)
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
                    ports |= set(procs.listening_ports(_instance_pids(existing)))
            if running and existing is not None:
                _stop_records([existing], grace)
            freed = _free_ports(ports, grace) if request.force else ()
            reason = "started" if existing is None else ("restarted" if running else "started again")
            launched = _launch(reg, replace(record, guard={}), existing, reason=reason, backup_logs=True)
        _watch_startup(reg, launched, startup_window)
        return StartResult(info=inspect(launched), replaced=running, freed=freed, pulled=pulled)


def _pull(record: ProcessRecord) -> str:
    from bgr import git

    return git.pull_if_clean(Path(record.directory)).summary


def _instance_pids(record: ProcessRecord) -> list[int]:
    return procs.instance_pids(record.pid, record.pgid, record.start_token, record.instance)


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
    name = home.validate_name(name)
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
            record = _definition(existing, StartRequest(name=name))
            _check_writable(reg)
            pulled = _pull(record) if record.fetch and pull else None
            running = _alive(existing)
            if running:
                _stop_records([existing], grace)
            launched = _launch(reg, replace(record, guard={}), existing, reason="restarted", backup_logs=True)
        _watch_startup(reg, launched, startup_window)
        return StartResult(info=inspect(launched), replaced=running, pulled=pulled)


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
            or _alive(current)
        ):
            return None
        return _launch(
            reg,
            replace(current, guard=guard_state),
            current,
            reason="restarted by guard",
            backup_logs=False,
        )


def stop(name: str, *, db: str | None = None, grace: float = DEFAULT_GRACE) -> StopResult:
    """Stop the whole process tree (TERM, grace, KILL) and keep the definition."""
    return stop_many([name], db=db, grace=grace)[0]


def stop_many(
    names: Iterable[str], *, db: str | None = None, grace: float = DEFAULT_GRACE
) -> list[StopResult]:
    """Stop several processes in parallel; the guard will not restart them."""
    wanted = [home.validate_name(n) for n in names]
    with open_registry(db) as reg:
        for name in wanted:
            reg.require(name)
        records = _mark_stopped(reg, wanted)
        results = _stop_records(records, grace)
        now = time.time()
        for record, result in zip(records, results, strict=True):
            if result.was_running:
                # instance=: a start that got in after our stop keeps its own row.
                reg.update(
                    record.name, instance=record.instance, stopped_at=now, events=_event(record, "stopped")
                )
        return results


def _mark_stopped(reg: Registry, names: list[str]) -> list[ProcessRecord]:
    """Set desired=stopped, then pass through each name lock so that a restart already in flight
    (the guard's) has recorded its instance before we look; return the fresh rows."""
    with reg.transaction() as conn:
        conn.executemany(
            "UPDATE processes SET desired = ? WHERE name = ?",
            [(Desired.STOPPED.value, n) for n in names],
        )
    records = []
    for name in names:
        with name_lock(name):
            record = reg.get(name)
            if record is not None and record.desired is not Desired.STOPPED:
                # A restart in flight read the row before our UPDATE and wrote it back whole
                # (desired=running): say stopped again, now that nobody else holds the name.
                record = reg.update(name, desired=Desired.STOPPED)
        if record is not None:
            records.append(record)
    return records


def delete(name: str, *, db: str | None = None, grace: float = DEFAULT_GRACE) -> StopResult:
    """Stop the process tree, forget the definition and remove its logs in the state directory."""
    return delete_many([name], db=db, grace=grace)[0]


def delete_many(
    names: Iterable[str], *, db: str | None = None, grace: float = DEFAULT_GRACE
) -> list[StopResult]:
    wanted = [home.validate_name(n) for n in names]
    with open_registry(db) as reg:
        for name in wanted:
            reg.require(name)
        records = _mark_stopped(reg, wanted)
        results = _stop_records(records, grace)
        for record in records:
            with name_lock(record.name):
                current = reg.get(record.name)
                # A start that got in after our stop owns the row (and the log paths) now.
                if current is None or current.instance != record.instance:
                    continue
                reg.delete(record.name)
                _remove_logs(record)
        return results


def _remove_logs(record: ProcessRecord) -> None:
    # Logs the user placed elsewhere (--stdout/--stderr) are theirs to keep; ours go.
    state = home.state_dir()
    for path in {record.stdout, record.stderr}:
        if Path(path).parent == state:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def clean(*, db: str | None = None) -> list[str]:
    """Forget every process that is not running (and remove its logs); return their names."""
    with open_registry(db) as reg:
        dead = [r.name for r in reg.all() if not _alive(r)]
    removed = []
    with open_registry(db) as reg:
        for name in dead:
            with name_lock(name):
                record = reg.get(name)
                if record is None or _alive(record):
                    continue
                reg.delete(name)
                _remove_logs(record)
                removed.append(name)
    return removed


def nuke(*, db: str | None = None, grace: float = DEFAULT_GRACE) -> list[StopResult]:
    """Stop every process (in parallel) and forget all of them."""
    with open_registry(db) as reg:
        names = [r.name for r in reg.all()]
    return delete_many(names, db=db, grace=grace) if names else []


def _status(record: ProcessRecord, alive: bool) -> Status:
    if alive:
        return Status.RUNNING
    if record.desired is Desired.STOPPED:
        return Status.STOPPED
    phase = record.guard.get("phase")
    if phase == "fatal":
        return Status.FATAL
    if phase == "backoff":
        return Status.BACKOFF
    return Status.EXITED if record.exit_code == 0 else Status.CRASHED


def inspect(record: ProcessRecord, *, details: bool = False) -> ProcessInfo:
    """Status and live figures for one record."""
    alive = _alive(record)
    info = ProcessInfo(record=record, status=_status(record, alive), exit_code=record.exit_code)
    if not alive:
        return info
    if procs.LINUX and record.pgid is not None:
        rss, cpu = procs.tree_rss_by_group([record.pgid]).get(record.pgid, (0, 0))
        memory: int | None = rss
    else:
        memory, cpu = (procs.tree_rss(record.pid) if record.pid else None), 0
    if not details:
        return replace(info, memory_rss=memory)
    pids = _instance_pids(record)
    uptime = time.time() - (record.started_at or time.time())
    cpu_percent = 100.0 * cpu / procs.clock_ticks() / uptime if procs.LINUX and uptime > 0 else None
    return replace(info, memory_rss=memory, cpu_percent=cpu_percent, ports=tuple(procs.listening_ports(pids)))


def get(name: str, *, db: str | None = None, details: bool = True) -> ProcessInfo:
    """Everything known about one process: status, identity, figures, ports."""
    name = home.validate_name(name)
    with open_registry(db) as reg:
        return inspect(reg.require(name), details=details)


def list_processes(*, db: str | None = None, group: str | None = None) -> list[ProcessInfo]:
    """Every registered process (or one group's), with status and memory, sorted by name."""
    with open_registry(db) as reg:
        records = reg.all(group)
    alive = {r.name: _alive(r) for r in records}
    usage = procs.tree_rss_by_group(r.pgid for r in records if alive[r.name] and r.pgid)
    infos = []
    for record in records:
        info = ProcessInfo(
            record=record, status=_status(record, alive[record.name]), exit_code=record.exit_code
        )
        if alive[record.name]:
            if procs.LINUX:
                info = replace(info, memory_rss=usage.get(record.pgid or 0, (None, 0))[0])
            elif record.pid:
                info = replace(info, memory_rss=procs.tree_rss(record.pid))
        infos.append(info)
    return infos


def log_paths(name: str, *, db: str | None = None, stream: str = "both") -> list[tuple[str, Path]]:
    """The log files of one process: ``[("stdout", path), ("stderr", path)]`` or one of them."""
    name = home.validate_name(name)
    with open_registry(db) as reg:
        record = reg.require(name)
    chosen = []
    if stream in ("both", "stdout"):
        chosen.append(("stdout", Path(record.stdout)))
    if stream in ("both", "stderr") and (record.stderr != record.stdout or stream == "stderr"):
        chosen.append(("stderr", Path(record.stderr)))
    return chosen


def logs(
    name: str, *, db: str | None = None, stream: str = "both", lines: int | None = None
) -> dict[str, str]:
    """The last ``lines`` lines (all when None) of a process's logs, per stream, decoded leniently."""
    from bgr import logfiles

    return {
        label: "".join(logfiles.tail(path, lines)) for label, path in log_paths(name, db=db, stream=stream)
    }


def record_exit(name: str, instance: str, exit_code: int | None, *, db: str | None = None) -> None:
    """Note that an instance died (used by the guard, which may know the exit code)."""
    with open_registry(db) as reg:
        reg.update(name, instance=instance, exit_code=exit_code, stopped_at=time.time())
